-- debug.gethook shows what the script set, never gilvm's own hook; a count
-- hook counts as in lua5.4 (the Lua suite's db.lua:579-591).
print("before", debug.gethook())
local function h() end
debug.sethook(h, "lc", 7)
local f, m, c = debug.gethook()
print("set", f == h, m, c)
local a = 0
debug.sethook(function() a = a + 1 end, "", 1)
a = 0; for i = 1, 1000 do end
print("count1", 1000 < a and a < 1012)
debug.sethook(function() a = a + 1 end, "", 4)
a = 0; for i = 1, 1000 do end
print("count4", 250 < a and a < 255)
debug.sethook(function() a = a + 1 end, "", 4000)
a = 0; for i = 1, 1000 do end
print("count4000", a == 0)
debug.sethook()
print("after", debug.gethook())
