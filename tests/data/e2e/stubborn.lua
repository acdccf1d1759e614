-- stubborn.lua: every thread swallows the stop error with pcall and goes on.
-- gilvm must still end: it gives the threads 3 s, then exits on its own.
local function stubborn()
  while true do pcall(function() while true do end end) end
end
gil.spawn(stubborn)
gil.spawn(stubborn)
print("ready")
io.stdout:flush()
while true do
  pcall(gil.sleep, 600)
  pcall(function() while true do end end)
end
