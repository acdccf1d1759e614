-- Article: "Concurrency Control in Python: Threads vs. Multiprocessing"
-- (seed 000), example "Hybrid Approaches" (given in words, no code): threads
-- fetch, processes compute, with ThreadPoolExecutor and ProcessPoolExecutor.
--
-- Claim: a hybrid gives the best of both: I/O overlaps on threads, CPU work
-- runs in parallel in processes.
-- gilvm shows (the pools' kinds are fixed, so every mode runs the hybrid):
--   gil:   the fetches overlap (wall of the fetch phase about one fetch) and
--          the process pool computes in parallel; bytes copied are the pages
--          sent to the processes and the sums sent back.
--   nogil: the same, except the fetching threads are free threads.
--   fork:  the same again: main is the only process that makes pools.
-- Too simple: the hybrid pays for copying every page to a process; when the
-- work per byte is small (try `6 0.1 1`), the copy costs more than it saves:
-- compare the "compute_s" figure against a thread pool doing it under the GIL.
--
-- usage: gilvm scripts/articles/art1_hybrid_executors.lua [pages] [fetch seconds] [work rounds]
local npages = tonumber(arg and arg[1]) or 6
local seconds = tonumber(arg and arg[2]) or 0.1
local rounds = tonumber(arg and arg[3]) or 4000

function fetch(i)
  gil.sleep(seconds)                       -- the web request
  local page = {}
  for k = 1, 1000 do page[k] = (i * 7919 + k) % 1000 end
  return page
end

function crunch(page)
  local s = 0
  for _ = 1, rounds do
    for k = 1, #page do s = (s + page[k] * k) % 1000000007 end
  end
  return s
end

local ids = {}
for i = 1, npages do ids[i] = i end
local t0 = gil.now()
local pages
do
  local io_pool <close> = gil.pool(npages, "thread")
  pages = io_pool:map(fetch, ids)
end
local t1 = gil.now()
local sums
do
  local cpu_pool <close> = gil.pool(gil.cpu_count(), "process")
  sums = cpu_pool:map(crunch, pages)
end
local t2 = gil.now()
gil.report("fetch_s", t1 - t0)
gil.report("compute_s", t2 - t1)
print(("fetched %d pages"):format(#pages))
print("sums: " .. table.concat(sums, " "))
