-- echo.lua: an echo over a loopback socket between two simulated workers
local n = tonumber(arg[1]) or 5
local ports = gil.queue()
local server = gil.thread(function(ports, n)
  local srv = gil.listen(0)
  ports:put(srv:port())
  local c = srv:accept()
  local total = 0
  for i = 1, n do
    local m = c:recv()
    total = total + #m
    c:send(m)
  end
  c:close()
  srv:close()
  return total
end, ports, n)
local c = gil.connect("127.0.0.1", ports:get())
for i = 1, n do
  c:send("ping " .. i)
  print(c:recv(), string.format("%.6f", gil.now()))
end
print("end", c:recv())
c:close()
print("server saw", server:join())
