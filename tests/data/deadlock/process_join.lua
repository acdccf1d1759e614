-- process_join.lua: main joins a process worker that waits for an item only main could put.
local q = gil.queue()
local p = gil.process(function(q) return q:get() end, q)
p:join()
