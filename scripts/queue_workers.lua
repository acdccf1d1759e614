-- queue_workers.lua: a queue of jobs drained by four workers.
--
-- What it shows: the producer/consumer pattern with gil.queue. Each worker
-- takes jobs until the queue is closed and empty, does a little CPU work per
-- job, and puts its answer on a results queue. In gil mode the queues pass
-- references (like Python's queue.Queue); in nogil and fork modes they pass
-- copies (like multiprocessing.Queue) — the script cannot tell the
-- difference, and prints the same totals in every mode.
-- Look at: each worker's "blocked" time (waiting on the queue) and the
-- report's bytes copied in nogil and fork modes.
--
-- usage: gilvm [-m MODE] scripts/queue_workers.lua [jobs] [workers]
local njobs = tonumber(arg and arg[1]) or 200
local nworkers = tonumber(arg and arg[2]) or 4

local function worker(jobs, results)
  local done = 0
  while true do
    local job = jobs:get()
    if job == nil then break end          -- closed and drained
    local s = 0
    for i = 1, job.size do s = s + i % 7 end
    results:put({ id = job.id, sum = s })
    done = done + 1
  end
  return done
end

local jobs, results = gil.queue(), gil.queue()
local workers = {}
for i = 1, nworkers do workers[i] = gil.spawn(worker, jobs, results) end
for id = 1, njobs do jobs:put({ id = id, size = 20000 + id }) end
jobs:close()

local total, seen = 0, 0
for _ = 1, njobs do
  local r = results:get()
  total = total + r.sum
  seen = seen + 1
end
local handled = 0
for i = 1, nworkers do handled = handled + workers[i]:join() end
print(("%d jobs, %d handled by %d workers, %d results, total %d"):format(njobs, handled, nworkers, seen, total))
