-- race.lua: several threads add 1 to a shared counter, three ways.
--
-- What it shows: where a GIL can switch threads. gilvm, like CPython 3.10+,
-- switches only at check points (jumps and calls), never in the middle of
-- `x = x + 1`. So:
--   1. plain `counter = counter + 1`: the read and the write sit between two
--      check points, so no update is lost, even with no lock.
--   2. a call between the read and the write (`local v = counter; f();
--      counter = v + 1`): a switch can happen at the call, another thread
--      writes in the meantime, and its updates are overwritten: lost updates.
--   3. the same with a gil.lock() around it: nothing is lost again.
-- The GIL protects the interpreter, not your invariants. The number lost in
-- case 2 depends on timing, so it differs between runs.
--
-- usage: gilvm scripts/race.lua [threads] [increments per thread]
local nthreads = tonumber(arg and arg[1]) or 4
local per = tonumber(arg and arg[2]) or 200000

counter = 0
local function nothing() end

local function plain()
  for _ = 1, per do counter = counter + 1 end
end

local function with_call()
  for _ = 1, per do
    local v = counter
    nothing()               -- a check point: the GIL may change hands here
    counter = v + 1
  end
end

local lock = gil.lock()
local function with_lock()
  for _ = 1, per do
    lock:acquire()
    local v = counter
    nothing()
    counter = v + 1
    lock:release()
  end
end

local function run(label, fn)
  counter = 0
  local ws = {}
  for i = 1, nthreads do ws[i] = gil.spawn(fn) end
  for i = 1, nthreads do ws[i]:join() end
  local lost = nthreads * per - counter
  gil.report("lost_" .. label, lost)
  print(("%-22s expected %d, got %d: %d lost updates"):format(label, nthreads * per, counter, lost))
end

run("plain x = x + 1", plain)
run("call between r/w", with_call)
run("call, under a lock", with_lock)
