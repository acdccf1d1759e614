-- threads20.lua: twenty workers, joined: a report (and --json) of some size.
local hs = {}
for i = 1, 20 do hs[i] = gil.spawn(function() return i end) end
for i = 1, 20 do hs[i]:join() end
print("ready")
io.stdout:flush()
if arg[1] == "wait" then io.read() end
