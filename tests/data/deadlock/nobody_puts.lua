-- nobody_puts.lua: main waits for an item that only a worker could put, and
-- the worker waits for an event that only main could set.
local q, e = gil.queue(), gil.event()
local w = gil.spawn(function(q, e)
  e:wait()
  q:put("never")
end, q, e)
print("ready")
io.stdout:flush()
print(q:get())
