-- not_deadlocks.lua: waits that look like a deadlock for a while and are not.
-- 1. opposite orders, but one side waits with a timeout: it gives up, releases, the other goes on.
local a, b, ready = gil.lock(), gil.lock(), gil.value(0)
local w = gil.spawn(function(a, b, ready)
  b:acquire()
  ready:add(1)
  while ready:get() < 2 do gil.sleep(0.001) end
  local got = a:acquire(0.05)
  b:release()
  return got
end, a, b, ready)
a:acquire()
ready:add(1)
while ready:get() < 2 do gil.sleep(0.001) end
b:acquire()
b:release()
a:release()
print("timeout side", w:join())
-- 2. a sleeper holds the lock and will release it
local l, held = gil.lock(), gil.value(0)
local s = gil.spawn(function(l, held)
  l:acquire()
  held:set(1)
  gil.sleep(0.05)
  l:release()
  return "slept"
end, l, held)
while held:get() == 0 do gil.sleep(0.001) end
l:acquire()
l:release()
print("sleeper", s:join())
-- 3. a process holds the lock while main waits for it, then gives it back
local p = gil.process(function(l, held)
  l:acquire()
  held:set(2)
  gil.sleep(0.05)
  l:release()
  return "process"
end, l, held)
while held:get() ~= 2 do gil.sleep(0.001) end
l:acquire()
l:release()
print("process", p:join())
-- 4. main joins a thread that waits (no timeout) for a lock a third thread holds for a while
local m = gil.lock()
local t3 = gil.spawn(function(m, held) m:acquire(); held:set(3); gil.sleep(0.05); m:release() end, m, held)
while held:get() ~= 3 do gil.sleep(0.001) end
local t2 = gil.spawn(function(m) m:acquire(); m:release(); return "joined" end, m)
print("chain", t2:join())
t3:join()
