-- three_way.lua: three workers in a ring, each holding one lock and wanting the next.
local locks, ready = { gil.lock(), gil.lock(), gil.lock() }, gil.value(0)
local function ring(i, locks, ready)
  locks[i]:acquire()
  ready:add(1)
  while ready:get() < 3 do gil.sleep(0.001) end
  locks[i % 3 + 1]:acquire()
end
local ws = {}
for i = 1, 3 do ws[i] = gil.thread(ring, i, locks, ready) end
for _, w in ipairs(ws) do w:join() end
print("not reached")
