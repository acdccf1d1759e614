-- gc_release.lua: collected handles give their objects back to the arena
-- (run with a small GILVM_ARENA_MB: without releases it fills up).
local n = tonumber(arg[1]) or 20000
local item = string.rep("x", 200)
for i = 1, n do
  local q, l, v = gil.queue(), gil.lock(), gil.value(i)
  q:put(item)          -- left in the queue: freed with it
  l:acquire()
  -- a lock dropped while held is freed too (only a few at a time: TSan
  -- follows at most 64 mutexes held by one thread, and each held lock is one)
  if i % 100 ~= 0 then l:release() end
  if i % 500 == 0 then collectgarbage() end
end
print("created", n)
-- handles decoded in other interpreters (nogil) or processes are theirs to release
local q = gil.queue()
for i = 1, 20 do
  local v = gil.value(i)
  gil.spawn(function(vv) return vv:get() end, v):join()
end
collectgarbage()
print("done")
