-- outside_server.lua: an echo server run for real (not simulated), for sim/outside.lua
local srv = gil.listen(0)
print(srv:port())
io.stdout:flush()
local c = srv:accept()
while true do
  local m = c:recv()
  if not m or m == "bye" then break end
  c:send(m)
end
