-- convoy.lua: an "I/O" thread that sleeps 1 ms at a time, next to a thread
-- that computes.
--
-- What it shows: the convoy effect. Each time the I/O thread wakes up it
-- needs the GIL back, and the CPU thread holds it; under the cpython policy
-- the waiter asks for it after one switch interval (5 ms by default), so a
-- 1 ms sleep costs about 1 ms + one interval. Change the interval with -s
-- (gilvm -s 1ms scripts/convoy.lua) or the policy with -g and watch the
-- extra latency follow it. Look at: the printed median and p99 extra
-- latency, and the report's forced switches and handoff latency.
-- The printed latencies are measurements, so they differ between runs and
-- between modes: in nogil and fork modes the sleeper has no GIL to wait for.
--
-- usage: gilvm scripts/convoy.lua [sleeps] [sleep seconds]
local sleeps = tonumber(arg and arg[1]) or 200
local nap = tonumber(arg and arg[2]) or 0.001

local done = gil.value(0)       -- shared in every mode (a plain local would be copied)

local function hog()
  local rounds = 0
  while done:get() == 0 do
    gil.compute(0.002)
    rounds = rounds + 1
  end
  return rounds
end

local function io_thread()
  local extra = {}
  for i = 1, sleeps do
    local t0 = gil.now()
    gil.sleep(nap)
    extra[i] = gil.now() - t0 - nap
  end
  done:set(1)
  return extra
end

local cpu = gil.spawn(hog)
local io = gil.spawn(io_thread)
local extra = io:join()
cpu:join()

table.sort(extra)
local median = extra[#extra // 2 + 1]
local p99 = extra[math.min(#extra, math.floor(#extra * 0.99) + 1)]
gil.report("io_extra_median_ms", median * 1000)
gil.report("io_extra_p99_ms", p99 * 1000)
print(("switch interval %.3g ms: extra latency per %.3g ms sleep: median %.2f ms, p99 %.2f ms")
  :format(gil.getswitchinterval() * 1000, nap * 1000, median * 1000, p99 * 1000))
