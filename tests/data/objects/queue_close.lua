-- queue_close.lua: close wakes a getter blocked in another worker; a closed
-- queue drains, then says "closed"; put raises.
-- Main closes only once the getter has started (however slow its start) and
-- is one statement away from its get.
local q, ready = gil.queue(), gil.value(0)
local function getter()
  ready:set(1)
  local v, why = q:get()
  return tostring(v), why
end
local h = gil.spawn(getter)
while ready:get() == 0 do gil.sleep(0.001) end
gil.sleep(0.1)
q:close()
print("getter", h:join())
local q2 = gil.queue()
q2:put(1) q2:put(2)
q2:close()
print("closed", q2:closed())
print("drain", q2:get(), q2:get())
print("after", q2:get())
print("put", pcall(q2.put, q2, 3))
