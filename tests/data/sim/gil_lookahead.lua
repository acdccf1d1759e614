-- gil_lookahead.lua: an echo server thread beside a CPU thread under one
-- GIL (-g iopri: the server asks for the GIL at once), its client a process.
-- Prints the median round trip in us. The process makes the run's workers
-- free of each other (a lookahead), but not the two threads that share the
-- GIL: the CPU thread hands over as soon as the server is woken, whatever
-- the length of its inner loop (argument 1).
local inner, n = tonumber(arg[1]) or 20000, tonumber(arg[2]) or 50
local ports, stop = gil.queue(), gil.value(0)
local hog = gil.spawn(function()
  local x = 0
  while stop:get() == 0 do
    for i = 1, inner do x = x + i end
  end
end)
local server = gil.spawn(function()
  local srv = gil.listen(0)
  ports:put(srv:port())
  local c = srv:accept()
  while true do
    local m = c:recv()
    if not m then break end
    c:send(m)
  end
  c:close()
  srv:close()
end)
local port = ports:get()
local trips = gil.process(function()
  local c, t = gil.connect("127.0.0.1", port), {}
  for i = 1, n do
    local t0 = gil.now()
    c:send("x")
    assert(c:recv(1) == "x")
    t[i] = gil.now() - t0
  end
  c:close()
  table.sort(t)
  return t[(n + 1) // 2]
end):join()
stop:set(1)
hog:join()
server:join()
print(string.format("median round trip %.3f us", trips * 1e6))
