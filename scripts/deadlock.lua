-- deadlock.lua: two workers take two locks in opposite orders (the classic).
--
-- What it shows: main holds lock a and wants b; the worker holds b and wants
-- a. Neither can go on, and neither has a timeout. Python would hang here
-- for ever; gilvm sees the cycle, names who waits for what held by whom,
-- and stops with exit status 4. The shared value `ready` makes sure both
-- hold their first lock before either asks for its second, so the deadlock
-- happens on every run, not only when the scheduler is unlucky.
-- The fix: take locks in one global order, or acquire with a timeout.
--
-- usage: gilvm scripts/deadlock.lua        (exits with status 4)
local a, b, ready = gil.lock(), gil.lock(), gil.value(0)
local w = gil.spawn(function(a, b, ready)
  b:acquire()
  ready:add(1)
  while ready:get() < 2 do gil.sleep(0.001) end
  a:acquire()                              -- waits for main, which waits for us
  return "not reached"
end, a, b, ready)
a:acquire()
ready:add(1)
while ready:get() < 2 do gil.sleep(0.001) end
b:acquire()                                -- waits for the worker
print("not reached", w:join())
