-- busy_not_deadlocked.lua: many blocking waits without timeouts, handed back
-- and forth; at every moment someone can still end someone's wait.
local rounds = tonumber(arg[1]) or 300
local q, back, sem, ev, l = gil.queue(1), gil.queue(), gil.semaphore(0), gil.event(), gil.lock()
local function ping(q, back, sem, l, rounds)
  for i = 1, rounds do
    local v = q:get()
    l:acquire()
    l:release()
    sem:release()
    back:put(v)
  end
end
local t1 = gil.thread(ping, q, back, sem, l, rounds)
local t2 = gil.thread(function(ev, sem, rounds) ev:wait() for _ = 1, rounds do sem:acquire() end end, ev, sem, rounds)
local sum = 0
for i = 1, rounds do
  l:acquire()
  q:put(i)
  l:release()
  sum = sum + back:get()
  if i == rounds // 2 then ev:set() end
end
t1:join()
t2:join()
print("sum", sum == rounds * (rounds + 1) // 2)
-- a producer process keeps main waiting on a queue: not a deadlock
local pq = gil.queue()
local p = gil.process(function(pq) gil.sleep(0.3) pq:put("late") end, pq)
print("from process", pq:get())
p:join()
-- a sleeper sets the event main waits for
local e2 = gil.event()
local s = gil.thread(function(e2) gil.sleep(0.3) e2:set() end, e2)
print("after sleeper", e2:wait())
s:join()
