-- Article: "Multithreading in Python, Lets clear the confusion between
-- Multithreading and Multiprocessing" (seed 001), example "Thread Pool -
-- ThreadPoolExecutor": square(a) sleeps 1 s and returns a*a; map it over
-- 1..10 with max_workers=8.
--
-- Claim: a pool manages the threads for you; the results come back in order.
-- gilvm shows:
--   gil:   [1, 4, ..., 100] in order; the wall time is two sleeps, not ten:
--          8 workers take the first 8 items, 2 of them then take the last 2.
--   nogil: the same list and the same two sleeps (free threads).
--   fork:  the pool's workers are processes (gil.pool follows the mode): the
--          same list and time, with 8 forks' start-up and the copies.
-- Too simple: the pool only helps because square() waits. With 8 workers and
-- 10 items the last 2 items make a second round: the time is
-- ceil(items / workers) sleeps.
--
-- usage: gilvm [-m MODE] scripts/articles/art2_thread_pool_squares.lua [items] [workers] [seconds]
local n = tonumber(arg and arg[1]) or 10
local workers = tonumber(arg and arg[2]) or 8
local seconds = tonumber(arg and arg[3]) or 0.1

function square(a)
  gil.sleep(seconds)                       -- time.sleep(1)
  return a * a
end

local data = {}
for i = 1, n do data[i] = i end

local t0 = gil.now()
do
  local pool <close> = gil.pool(workers)   -- with Executor(max_workers=8) as workers:
  local res = pool:map(square, data)
  print("[" .. table.concat(res, ", ") .. "]")
end
gil.report("wall_s", gil.now() - t0)
gil.report("rounds", (n + workers - 1) // workers)
print("Finish")
