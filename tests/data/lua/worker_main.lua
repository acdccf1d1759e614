-- A worker's body answers coroutine.running, isyieldable and a stray yield
-- as a main thread does; inside a coroutine it is a coroutine as usual.
local function probe()
  local _, ismain = coroutine.running()
  local ok, err = pcall(coroutine.yield, 1)
  local inner = coroutine.wrap(function()
    local _, m = coroutine.running()
    return tostring(m) .. " " .. tostring(coroutine.isyieldable())
  end)()
  return string.format("ismain %s yieldable %s yield %s %s inner %s",
    tostring(ismain), tostring(coroutine.isyieldable()), tostring(ok), err, inner)
end
print("main   " .. probe())
print("worker " .. gil.spawn(probe):join())
