-- Article: "Concurrency in Python with Threading and Multiprocessing"
-- (devasservice, seed 002), example "Inter-Process Communication (IPC)":
-- main puts 0..9 on a multiprocessing.Queue; four processes each run
-- `while not queue.empty(): item = queue.get(); print(...)`.
--
-- Claim: a Queue shares data between processes; every item is processed once.
-- gilvm shows (gil.spawn workers and a gil.queue, in every mode):
--   gil:   "Processing 0".."Processing 9", each once, in an order and by
--          workers the scheduler picks; the queue passes references.
--   nogil: the same lines; the queue passes copies.
--   fork:  the article's processes: the same lines; every item is copied
--          across processes (the report's "copied").
-- Too simple: `while not queue.empty(): queue.get()` is check-then-act. When
-- two workers both see one item left, one gets it and the other blocks in
-- get() for ever: the article's program can hang. Here get() has a timeout
-- (the second argument), and the figure "gets_that_found_nothing" counts
-- how often the race struck. The robust way: close the queue (or put one
-- sentinel per worker) and let get() answer "closed".
--
-- usage: gilvm [-m MODE] scripts/articles/art3_queue_workers.lua [items] [get timeout]
local n = tonumber(arg and arg[1]) or 10
local patience = tonumber(arg and arg[2]) or 0.2

local function worker(queue, missed)
  while not queue:empty() do               -- check ...
    local item = queue:get(patience)       -- ... then act: another worker may have won
    if item == nil then
      missed:add(1)
    else
      io.write(("Processing %d\n"):format(item))
      io.stdout:flush()
    end
  end
end

local queue, missed = gil.queue(), gil.value(0)
for i = 0, n - 1 do queue:put(i) end

local processes = {}
for i = 1, 4 do processes[i] = gil.spawn(worker, queue, missed) end
for _, p in ipairs(processes) do p:join() end
gil.report("gets_that_found_nothing", missed:get())
print("All processes have finished.")
