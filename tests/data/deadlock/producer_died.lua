-- producer_died.lua: the only producer fails before putting anything; main waits for its item.
local q = gil.queue()
gil.thread(function(q) error("producer failed") end, q)
print(q:get())
