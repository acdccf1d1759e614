-- value_add.lua: 4 workers add to one shared value; then the same with a racy
-- read-modify-write. usage: value_add.lua [n per worker]
local n = tonumber(arg[1]) or 2000
local v, racy = gil.value(), gil.value()
local function adder(count)
  for _ = 1, count do v:add(1) end
  return count
end
local function racer(count)
  for _ = 1, count do racy:set(racy:get() + 1) end
end
local hs = {}
for i = 1, 4 do hs[i] = gil.spawn(adder, n) end
local sum = 0
for i = 1, 4 do sum = sum + hs[i]:join() end
print("add total " .. v:get() .. " expected " .. 4 * n .. " returned " .. sum)
for i = 1, 4 do hs[i] = gil.spawn(racer, n) end
for i = 1, 4 do hs[i]:join() end
print("racy total " .. racy:get() .. " expected " .. 4 * n)
local f = gil.value(0.5)
print("float add " .. f:add(1) .. " " .. math.type(f:get()))
local i = gil.value(7)
print("int add " .. i:add(-2) .. " " .. math.type(i:get()))
i:set(2.5)
print("set " .. i:get())
