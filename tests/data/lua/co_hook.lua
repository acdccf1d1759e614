-- debug.sethook(co, f, "l") set before the coroutine runs survives its
-- resumes (the Lua suite's db.lua:767, coroutine.lua:348).
local lines = {}
local function trace(event, line) lines[#lines + 1] = line end
local co = coroutine.create(function(x)
  local a = x + 1
  coroutine.yield(a)
  local b = a * 2
  return b
end)
debug.sethook(co, trace, "l")
print(coroutine.resume(co, 1))
print(debug.gethook(co) == trace)
print(coroutine.resume(co))
print(table.concat(lines, " "))
print(debug.gethook() == nil)
