-- processes.lua: two processes take two locks in opposite orders; main joins one.
local a, b, ready = gil.lock(), gil.lock(), gil.value(0)
local function side(x, y, ready)
  x:acquire()
  ready:add(1)
  while ready:get() < 2 do gil.sleep(0.001) end
  y:acquire()
end
local p1 = gil.process(side, a, b, ready)
local p2 = gil.process(side, b, a, ready)
p1:join()
p2:join()
print("not reached")
