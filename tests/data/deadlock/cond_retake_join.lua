-- cond_retake_join.lua: a notified condition waiter can never take its lock
-- back: main notifies it, then joins it still holding the lock (a cycle).
local c, started = gil.condition(), gil.event()
local w = gil.spawn(function(c, started)
  c:acquire()
  started:set()
  c:wait()
  c:release()
end, c, started)
started:wait()
c:acquire() -- taken only once the worker waits on c: it gave the lock up there
c:notify()
w:join()
print("not reached")
