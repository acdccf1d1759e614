-- cond_retake.lua: a notified condition waiter can never take its lock back:
-- main notifies it, then, still holding the lock, waits for an item only the
-- waiter would put after its wait (every worker waits, no cycle).
local c, started, q = gil.condition(), gil.event(), gil.queue()
local w = gil.spawn(function(c, started, q)
  c:acquire()
  started:set()
  c:wait()
  q:put("woken")
  c:release()
end, c, started, q)
started:wait()
c:acquire() -- taken only once the worker waits on c: it gave the lock up there
c:notify()
print(q:get())
