-- cpu_bound.lua: a fixed amount of CPU work (a sum of squares) split over
-- N threads.
--
-- What it shows: under a GIL only one thread runs Lua at a time, so 2
-- threads on 2 cores take as long as 1 thread (CPython 3.11 measures 1.01x
-- here). Look at: the wall time, "parallelism" (about 1.0x under the GIL),
-- and how the GIL was shared: switches, forced drops, each thread's wait.
-- Run without gilvm (`lua5.4 scripts/cpu_bound.lua`) it does the same work
-- on one thread, as a baseline.
--
-- usage: gilvm scripts/cpu_bound.lua [threads] [total iterations]
local nthreads = tonumber(arg and arg[1]) or 2
local total = tonumber(arg and arg[2]) or 40000000

function sum_of_squares(from, to)
  local s = 0
  for i = from, to do s = s + (i * i) % 7 end
  return s
end

local chunk = total // nthreads
local results = {}
if gil then
  local workers = {}
  for t = 1, nthreads do
    local from = (t - 1) * chunk + 1
    local to = t == nthreads and total or t * chunk
    workers[t] = gil.spawn(sum_of_squares, from, to)
  end
  for t = 1, nthreads do results[t] = workers[t]:join() end
else
  for t = 1, nthreads do
    results[t] = sum_of_squares((t - 1) * chunk + 1, t == nthreads and total or t * chunk)
  end
end

local sum = 0
for _, r in ipairs(results) do sum = sum + r end
print(("threads=%d iterations=%d sum=%d"):format(nthreads, total, sum))
