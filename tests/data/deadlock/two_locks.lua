-- two_locks.lua: two threads take two locks in opposite orders (the classic).
local a, b, ready = gil.lock(), gil.rlock(), gil.value(0)
local w = gil.spawn(function(a, b, ready)
  b:acquire()
  ready:add(1)
  while ready:get() < 2 do gil.sleep(0.001) end
  a:acquire()
  return "not reached"
end, a, b, ready)
a:acquire()
ready:add(1)
while ready:get() < 2 do gil.sleep(0.001) end
b:acquire()
print("not reached")
