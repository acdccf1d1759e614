-- pipe.lua: gil.pipe, two-way and one-way, across workers; closing an end.
local a, b = gil.pipe()
local w = gil.spawn(function(b)
  local n = 0
  while true do
    local v, why = b:recv()
    if v == nil then return n, why end
    n = n + v.x
    b:send(n)
  end
end, b)
for i = 1, 10 do a:send({ x = i }); assert(a:recv() == i * (i + 1) // 2) end
print("timeout", a:recv(0.01))
a:close()
print("worker", w:join())
print("closed end", pcall(a.send, a, 1))
local r, s = gil.pipe(false)
print("one-way", pcall(r.send, r, 1), pcall(s.recv, s))
local p = gil.process(function(s) for i = 1, 3 do s:send(i) end; s:close() end, s)
p:join()
s:close()
local got = {}
while true do
  local v, why = r:recv()
  if v == nil then got[#got + 1] = why break end
  got[#got + 1] = v
end
print("from a process", table.concat(got, " "))
local ok, err = pcall(function() local x = gil.pipe(); x:send(nil) end)
print("send nil", ok, (err:gsub("^.-:%d+: ", ""))) -- no file:line: paths differ
