-- queue_close.lua: close wakes a getter blocked in another worker; a closed
-- queue drains, then says "closed"; put raises.
local q = gil.queue()
local function getter()
  local v, why = q:get()
  return tostring(v), why
end
local h = gil.spawn(getter)
gil.sleep(0.2)
q:close()
print("getter", h:join())
local q2 = gil.queue()
q2:put(1) q2:put(2)
q2:close()
print("closed", q2:closed())
print("drain", q2:get(), q2:get())
print("after", q2:get())
print("put", pcall(q2.put, q2, 3))
