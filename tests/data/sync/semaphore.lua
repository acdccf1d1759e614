-- semaphore.lua: at most k holders at a time, across threads and processes.
local k, rounds = 2, tonumber(arg[1]) or 100
local s, inside, most = gil.semaphore(k), gil.value(0), gil.value(0)
local function work(s, inside, most, rounds)
  for _ = 1, rounds do
    s:acquire()
    local now = inside:add(1)
    if now > most:get() then most:set(now) end -- racy max, only ever too low
    inside:add(-1)
    s:release()
  end
end
local ws = {}
for i = 1, 3 do ws[i] = gil.spawn(work, s, inside, most, rounds) end
ws[4] = gil.process(work, s, inside, most, rounds)
for _, w in ipairs(ws) do w:join() end
print("most inside <= k", most:get() <= k, "value", s:value())
print("take all", s:acquire(), s:acquire(), "timeout", s:acquire(0), s:acquire(0.01))
s:release(2)
local b = gil.semaphore(1, true)
print("bounded", b:acquire(), pcall(b.release, b), pcall(b.release, b))
print("zero", gil.semaphore(0):acquire(0.01), pcall(gil.semaphore, -1))
-- a blocked acquirer gets in once another worker releases
local z = gil.semaphore(0)
local w = gil.spawn(function(z) return z:acquire() end, z)
z:release()
print("released to waiter", w:join())
do
  local _ <close> = b:hold()
  print("held", b:value())
end
print("hold released", b:value())
