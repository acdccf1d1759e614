-- ref_to_process.lua (gil mode): an item put by reference cannot be received
-- by a process; an item put after a process was started is a copy and can.
local q = gil.queue()
q:put({ 1 })
local h = gil.process(function() return q:get() end)
print("process", pcall(h.join, h))
q:put({ 2 })
local h2 = gil.process(function() local t = q:get() return t[1] end)
print("process", pcall(h2.join, h2))
print("left", q:size())
