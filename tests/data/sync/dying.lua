-- dying.lua: a process dies while waiting on a condition, a semaphore and an
-- event: a notify is not lost on it, and the objects keep working.
local c, waiting = gil.condition(), gil.value(0)
local p = gil.process(function(c, waiting)
  -- a thread of this process ends it once the waiter below sleeps in c:wait
  gil.thread(function(c, waiting)
    while waiting:get() < 1 do gil.sleep(0.001) end
    c:acquire() -- only free once the waiter gave the lock up inside wait
    c:release()
    os.exit(3)
  end, c, waiting)
  c:acquire()
  waiting:add(1)
  c:wait()
  return "not reached"
end, c, waiting)
print("died", pcall(p.join, p))
local live = gil.spawn(function(c, waiting)
  c:acquire()
  waiting:add(1)
  local ok = c:wait(60)
  c:release()
  return ok
end, c, waiting)
while waiting:get() < 2 do gil.sleep(0.001) end
c:acquire() -- the live waiter is inside wait once we hold the lock
c:notify(1)
c:release()
print("live waiter notified", live:join())
-- a process dies blocked on a semaphore and on an event: others still get through
local s, e, n = gil.semaphore(0), gil.event(), gil.value(0)
local q = gil.process(function(s, e, n)
  gil.thread(function(n) while n:get() < 2 do gil.sleep(0.001) end; os.exit(3) end, n)
  gil.thread(function(e, n) n:add(1); e:wait() end, e, n)
  n:add(1)
  s:acquire()
end, s, e, n)
print("died", pcall(q.join, q))
s:release()
e:set()
print("semaphore", s:acquire(60), "event", e:wait(60))
