-- cond_barrier.lua: a producer/consumer over a condition, then a barrier of N workers, in virtual time.
local n = tonumber(arg[1]) or 5
local c, q = gil.condition(), gil.queue()
local cons = gil.spawn(function(c, q, n)
  local got = 0
  c:acquire()
  for _ = 1, n do
    c:wait_for(function() return q:size() > 0 end)
    got = got + q:get()
  end
  c:release()
  return got
end, c, q, n)
for i = 1, n do
  gil.sleep(0.001)
  c:acquire()
  q:put(i)
  c:notify()
  c:release()
end
print("consumer got", cons:join(), ("%.6f"):format(gil.now()))
local b = gil.barrier(n)
local ws = {}
for k = 1, n - 1 do ws[k] = gil.spawn(function(b, k) gil.sleep(0.001 * k) return b:wait(), gil.now() end, b, k) end
local idx = { b:wait() }
local last = gil.now()
for k = 1, n - 1 do
  local i, t = ws[k]:join()
  idx[#idx + 1] = i
  if t > last then last = t end
end
table.sort(idx)
print("barrier", table.concat(idx, ","), ("%.6f"):format(last))
local c2 = gil.condition()
c2:acquire()
print("wait with a timeout", c2:wait(0.25), ("%.6f"):format(gil.now()))
