-- outside.lua: a simulated run talks to a server outside the simulation (a
-- real gilvm started with io.popen): each call costs a wake-up of virtual
-- time, whatever it took for real. arg[1]: gilvm, arg[2]: outside_server.lua
local p = io.popen(("%q -q %q"):format(arg[1], arg[2]))
local c = gil.connect("127.0.0.1", tonumber(p:read("l")))
local t0 = gil.now()
c:send("hello")
local reply = c:recv()
print(reply, ("%.6f"):format(gil.now() - t0))
local none, why = c:recv(nil, 0.05) -- times out in real time
print(none, why, ("%.6f"):format(gil.now() - t0))
c:send("bye")
c:close()
p:close()
