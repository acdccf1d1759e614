-- cond_wait.lua: main waits on a condition that only a worker could notify,
-- and the worker waits for an item that only main could put.
local c, q = gil.condition(), gil.queue()
local w = gil.spawn(function(q) return q:get() end, q)
c:acquire()
c:wait()
