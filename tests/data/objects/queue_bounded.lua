-- queue_bounded.lua: a full bounded queue blocks put until a get makes room.
local q, done, ready = gil.queue(2), gil.value(0), gil.value(0)
print("put 1", q:put(1))
print("put 2", q:put(2))
print("size", q:size(), "maxsize", q:maxsize())
local t0 = gil.now()
local r, why = q:put(3, 0.05)
print("put 3 with timeout", r, why, gil.now() - t0 >= 0.04)
local function putter()
  ready:set(1)
  q:put(3)            -- blocks: the queue is full
  done:set(1)
  return "put"
end
local h = gil.spawn(putter)
-- once the putter has started (however slow its start), it is one statement away from its put
while ready:get() == 0 do gil.sleep(0.001) end
gil.sleep(0.1)
print("putter still blocked", done:get() == 0, q:size())
print("get", q:get())
print("putter", h:join(), done:get())
print("rest", q:get(), q:get(), q:size())
