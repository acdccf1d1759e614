-- An error raised by a __close handler while a wrapped coroutine dies is the
-- one the caller gets, as in lua5.4 (the Lua suite's locals.lua:980/1000).
local function closer(f) return setmetatable({}, { __close = f }) end
local co = coroutine.wrap(function()
  local xx <close> = closer(function(_, msg) error("@YYY: after " .. tostring(msg), 0) end)
  local xv <close> = closer(function() error("@XXX", 0) end)
  coroutine.yield(100)
  error("@ZZZ", 0)
end)
print(co())
print(pcall(co))
print(pcall(co))
