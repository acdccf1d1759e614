-- condition.lua: producer/consumer with a condition, notify(n), timeouts, errors.
local c, items, waiting, woken = gil.condition(), gil.array(1), gil.value(0), gil.value(0)
print("wait unheld", pcall(c.wait, c))
print("notify unheld", pcall(c.notify, c))
c:acquire()
print("timeout", c:wait(0.01), "still held", c:locked())
c:release()
-- consumers wait for items; main produces them one by one under the lock
local function consumer(c, items, waiting, woken)
  c:acquire()
  waiting:add(1)
  c:wait_for(function() return items[1] > 0 end)
  items:add(1, -1)
  woken:add(1)
  c:release()
  return true
end
local ws = { gil.spawn(consumer, c, items, waiting, woken), gil.spawn(consumer, c, items, waiting, woken),
             gil.process(consumer, c, items, waiting, woken) }
while waiting:get() < 3 do gil.sleep(0.001) end
-- notify(1) with one item: one consumer gets through (the others find none left)
c:acquire()
items[1] = 1
c:notify(1)
c:release()
while woken:get() < 1 do gil.sleep(0.001) end
print("after one item", woken:get())
c:acquire()
items[1] = 2
c:notify_all()
c:release()
for i, w in ipairs(ws) do print("consumer", i, w:join()) end
print("left", items[1], woken:get())
-- a condition over a plain lock, handed to a process
local l = gil.lock()
local c2, flag = gil.condition(l), gil.value(0)
local p = gil.process(function(c2, flag)
  c2:acquire()
  local ok = c2:wait_for(function() return flag:get() == 1 end, 30)
  c2:release()
  return ok
end, c2, flag)
do
  local _ <close> = c2:hold()
  flag:set(1)
  c2:notify()
end
print("process waiter", p:join())
print("its lock", c2:lock() == l, pcall(gil.condition, 5))
