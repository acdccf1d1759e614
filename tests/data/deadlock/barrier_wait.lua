-- barrier_wait.lua: a barrier of 3 parties that only 2 workers reach.
local b = gil.barrier(3)
local w = gil.spawn(function(b) return b:wait() end, b)
b:wait()
