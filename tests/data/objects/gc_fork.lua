-- gc_fork.lua: a worker (a fork child, or another interpreter) that drops its
-- copy of a handle and collects must not destroy the creator's object.
local v, q = gil.value(5), gil.queue()
q:put("still here")
local function drop()
  v, q = nil, nil
  collectgarbage()
  collectgarbage()
  return "collected"
end
print("process", gil.process(drop):join())
print("worker", gil.spawn(function(vv, qq) vv, qq = nil, nil collectgarbage() collectgarbage() return "collected" end, v, q):join())
collectgarbage()
print("value", v:get(), v:add(1))
print("queue", q:get(0))
local w = gil.value(100)
print("new value", w:get(), v:get())
