-- lock_counter.lua: a lock protects v:set(v:get() + 1) across 3 processes and
-- the mode's workers. usage: lock_counter.lua [n per worker]
local n = tonumber(arg[1]) or 1000
local l, v = gil.lock(), gil.value(0)
local function work(count)
  for _ = 1, count do
    l:acquire()
    v:set(v:get() + 1)
    l:release()
  end
  return count
end
local hs = {}
for i = 1, 3 do hs[#hs + 1] = gil.process(work, n) end
for i = 1, 2 do hs[#hs + 1] = gil.spawn(work, n) end
local sum = 0
for _, h in ipairs(hs) do sum = sum + h:join() end
print("locked total " .. v:get() .. " expected " .. #hs * n .. " returned " .. sum)
print("locked at end", l:locked())
