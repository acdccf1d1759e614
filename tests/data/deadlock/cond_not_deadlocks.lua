-- cond_not_deadlocks.lua: condition and barrier waits that are not deadlocks,
-- each held while the detector has looked at least twice (gil._debug().checks).
-- 1. main waits on a condition; the notifier sleeps (not on the board) through two looks, then notifies
local c, ready = gil.condition(), gil.value(0)
local n = gil.thread(function(c, ready)
  while gil._debug().waits < 1 do gil.sleep(0.001) end -- main is waiting on the condition
  local c0 = gil._debug().checks
  while gil._debug().checks < c0 + 2 do gil.sleep(0.01) end
  c:acquire()
  ready:set(1)
  c:notify()
  c:release()
  return "notified"
end, c, ready)
c:acquire()
while ready:get() == 0 do c:wait() end
c:release()
print("sleeping notifier", n:join())
-- 2. a worker waits at a barrier without a timeout; main waits on a condition with one, through two looks
local b = gil.barrier(2)
local w = gil.thread(function(b) return b:wait() end, b)
while gil._debug().waits < 1 do gil.sleep(0.001) end -- the worker is at the barrier
local c0 = gil._debug().checks
c:acquire()
local timed_out = 0
while gil._debug().checks < c0 + 2 do
  if not c:wait(0.02) then timed_out = timed_out + 1 end
end
c:release()
b:wait()
print("waiter with a timeout", timed_out > 0, math.type(w:join()))
