-- queue_throughput.lua: gil.queue throughput, one producer and one consumer, for
-- bench/run row 11. A worker (gil.spawn: a thread under the GIL with -m gil,
-- a forked process with -m fork) puts the integers 1..n into an unbounded
-- queue; the main thread gets them and checks their sum. Prints items per
-- second, from spawning the producer to the last get, timed with gil.now().
--
-- usage: gilvm -q -m gil|fork bench/queue_throughput.lua [n]
local n = tonumber(arg and arg[1]) or 1000000

local function produce(q, count)
  for i = 1, count do q:put(i) end
end

local q = gil.queue()
local t0 = gil.now()
local producer = gil.spawn(produce, q, n)
local sum = 0
for _ = 1, n do sum = sum + q:get() end
local t1 = gil.now()
producer:join()
assert(sum == n * (n + 1) // 2, "items lost or changed")
print(("%.0f"):format(n / (t1 - t0)))
