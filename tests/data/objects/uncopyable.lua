-- uncopyable.lua: a copied queue item that cannot be copied names its path.
if gil.mode() == "gil" then gil.process(function() end):join() end  -- from now on, copies
local q = gil.queue()
print(pcall(q.put, q, { cb = io.stdout }))
print(pcall(q.put, q, { list = { 1, 2, coroutine.create(print) } }))
print("size", q:size())
