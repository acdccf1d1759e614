-- join_cycle.lua: main holds a lock and joins a thread that waits for it.
local l = gil.lock()
l:acquire()
local w = gil.spawn(function(l)
  l:acquire()
  return "not reached"
end, l)
w:join()
print("not reached")
