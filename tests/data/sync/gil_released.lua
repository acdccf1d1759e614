-- gil_released.lua: a worker blocked in each new call lets main run Lua. Were
-- the GIL kept while blocked, main (which waits for the worker's signal with
-- gil.sleep and then runs Lua) would never get it back: the run would hang.
local function blocked_while(name, block, release)
  local ready = gil.value(0)
  local w = gil.thread(function(ready)
    ready:set(1)
    return block()
  end, ready)
  while ready:get() == 0 do gil.sleep(0.001) end
  gil.sleep(0.01) -- let it reach the wait (if it has not, release wakes it anyway)
  local sum = 0
  for i = 1, 10000 do sum = sum + i end -- Lua in main while the worker waits
  release()
  print(name, sum == 50005000, w:join())
end
local e = gil.event()
blocked_while("event", function() return e:wait() end, function() e:set() end)
local s = gil.semaphore(0)
blocked_while("semaphore", function() return s:acquire() end, function() s:release() end)
local c, flag = gil.condition(), gil.value(0)
blocked_while("condition", function()
  c:acquire()
  local ok = c:wait_for(function() return flag:get() == 1 end)
  c:release()
  return ok
end, function() c:acquire(); flag:set(1); c:notify(); c:release() end)
local b = gil.barrier(2)
blocked_while("barrier", function() return b:wait() >= 0 end, function() b:wait() end)
local r = gil.rlock()
r:acquire()
blocked_while("rlock", function() local ok = r:acquire(); r:release(); return ok end, function() r:release() end)
local x, y = gil.pipe()
blocked_while("pipe", function() return y:recv() end, function() x:send(true) end)
local q = gil.queue()
q:put(1)
blocked_while("join", function() return q:join() end, function() q:get(); q:task_done() end)
