-- Article: "Python is often criticized for being slow or single-threaded..."
-- (an untitled guide to threading and multiprocessing; seed 003),
-- example: the warning under "The Deadly Side of
-- Multiprocessing": multiprocessing.Value and Array "introduce
-- synchronization overhead that can negate the benefits of parallelism".
-- (The article gives no code for it; this is the experiment it describes.)
-- Workers count the multiples of 3 below n, either adding 1 to a shared
-- gil.value for each (synchronized on every step) or counting locally and
-- adding once; both print the same total. A gil.array gets each worker's
-- local count in its own slot.
--
-- Claim: shared Value/Array cost synchronization that can eat the gain.
-- gilvm shows (figures "shared_each_s" and "local_then_once_s"):
--   gil:   both ways serialised by the GIL; the per-step way is several
--          times slower: every add is a call into the shared arena.
--   nogil: the local way runs in parallel; the per-step way still pays an
--          atomic operation per step, and the two cores fight over one value.
--   fork:  as nogil, between processes.
-- Too simple: the overhead is per operation, not per object: one add per
-- worker costs nothing; one per item dominates. Share results, not steps.
--
-- usage: gilvm [-m MODE] scripts/articles/art4_value_overhead.lua [workers] [n per worker]
local nworkers = tonumber(arg and arg[1]) or 2
local n = tonumber(arg and arg[2]) or 1000000

local function shared_each(total)
  for i = 1, n do if i % 3 == 0 then total:add(1) end end
end

local function local_then_once(total, slots, k)
  local c = 0
  for i = 1, n do if i % 3 == 0 then c = c + 1 end end
  slots[k] = c
  total:add(c)
end

local function run(fn, ...)
  local t0 = gil.now()
  local ws = {}
  for k = 1, nworkers do ws[k] = gil.spawn(fn, ...) end
  for _, w in ipairs(ws) do w:join() end
  return gil.now() - t0
end

local a, b, slots = gil.value(0), gil.value(0), gil.array(nworkers, 0)
gil.report("shared_each_s", run(shared_each, a))
local t0 = gil.now()
local ws = {}
for k = 1, nworkers do ws[k] = gil.spawn(local_then_once, b, slots, k) end
for _, w in ipairs(ws) do w:join() end
gil.report("local_then_once_s", gil.now() - t0)
print(("value added each step: %d"):format(a:get()))
print(("value added once per worker: %d"):format(b:get()))
print(("array of local counts: %s"):format(table.concat(slots:totable(), " ")))
