-- Article: "Python is often criticized for being slow or single-threaded..."
-- (an untitled guide to threading and multiprocessing; seed 003),
-- example "Race Conditions in Threading":
-- `with counter_lock: counter += 1` on a global counter.
-- Here 4 workers call increment() 20000 times each, three ways.
--
-- Claim: threads share memory, so shared state needs a threading.Lock.
-- gilvm shows (gil.spawn workers; the output differs by mode, and that is
-- the lesson):
--   gil:   "global counter with a lock: 80000": threads share the global.
--          The figure "lost_without_lock" counts updates lost by the same
--          loop without the lock, with a call between the read and the write
--          (where the GIL can switch). It is often 0: a switch must fall
--          exactly on that call; scripts/race.lua shows lost updates better.
--   nogil: "global counter with a lock: 0": each worker has its own
--          interpreter and adds to its own copy of `counter`; main's never
--          moves. The lock is shared, the counter is not.
--   fork:  0 as well: each process has its own copy.
--   In every mode a shared gil.value under the same lock counts 80000.
-- Too simple: a lock protects shared state only where state is shared.
-- Between processes (or isolated interpreters) the fix is a shared object
-- (multiprocessing.Value, here gil.value), not a lock around a global.
--
-- usage: gilvm [-m MODE] scripts/articles/art4_lock_counter.lua [workers] [increments each]
local nworkers = tonumber(arg and arg[1]) or 4
local per = tonumber(arg and arg[2]) or 20000

local counter_lock = gil.lock()
counter = 0
unlocked = 0
local shared = gil.value(0)

local function pause() end

local function increment()
  do
    local _ <close> = counter_lock:hold()  -- with counter_lock:
    counter = counter + 1
  end
  local v = unlocked                       -- the same without the lock,
  pause()                                  -- a check point in between
  unlocked = v + 1
  local _ <close> = counter_lock:hold()
  shared:set(shared:get() + 1)
end

local function work()
  for _ = 1, per do increment() end
end

local workers = {}
for i = 1, nworkers do workers[i] = gil.spawn(work) end
for _, w in ipairs(workers) do w:join() end
if gil.mode() == "gil" then gil.report("lost_without_lock", nworkers * per - unlocked) end
print(("global counter with a lock: %d"):format(counter))
print(("gil.value with a lock: %d"):format(shared:get()))
