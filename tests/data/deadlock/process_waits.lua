-- process_waits.lua: a process worker and main both wait on queues nobody fills.
local q, r = gil.queue(), gil.queue()
local p = gil.process(function(q) return q:get() end, q)
print(r:get())
