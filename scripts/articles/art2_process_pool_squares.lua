-- Article: "Multithreading in Python, Lets clear the confusion between
-- Multithreading and Multiprocessing" (seed 001), example
-- "ProcessPoolExecutor": the same square-with-sleep map, with
-- ProcessPoolExecutor(max_workers=8).
--
-- Claim: "the output will be same. It is just that multiple processes will
-- be launched."
-- gilvm shows (always a process pool here: gil.pool(n, "process")):
--   gil:   the same list in the same two sleeps; the report shows 8
--          processes, their start-up (a fork each) and the bytes copied
--          (every item and result crosses a pipe).
--   nogil: the same.
--   fork:  the same.
-- Too simple: the output is the same, the cost is not: for work that waits,
-- processes add start-up, memory and copying and buy nothing; compare the
-- report's start-up, copied and peak memory with art2_thread_pool_squares.lua.
--
-- usage: gilvm [-m MODE] scripts/articles/art2_process_pool_squares.lua [items] [workers] [seconds]
local n = tonumber(arg and arg[1]) or 10
local workers = tonumber(arg and arg[2]) or 8
local seconds = tonumber(arg and arg[3]) or 0.1

function square(a)
  gil.sleep(seconds)
  return a * a
end

local data = {}
for i = 1, n do data[i] = i end

local t0 = gil.now()
do
  local pool <close> = gil.pool(workers, "process")
  local res = pool:map(square, data)
  print("[" .. table.concat(res, ", ") .. "]")
end
gil.report("wall_s", gil.now() - t0)
print("Done")
