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
--   4. a shared gil.value with `v:set(v:get() + 1)`: a read-modify-write
--      across two calls, which loses updates in every mode — and in nogil
--      and fork modes, where workers truly run at once, it loses many.
--   5. the same value with `v:add(1)`: atomic, exact in every mode.
-- The GIL protects the interpreter, not your invariants. The number lost in
-- cases 2 and 4 depends on timing, so it differs between runs.
-- In nogil and fork modes cases 1-3 lose *everything*: each worker adds to
-- its own copy of the global `counter`, and main's stays 0. Only shared
-- objects (gil.value, gil.queue) are shared there; that difference is the
-- lesson, and `gilvm compare scripts/race.lua` points at it.
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

local shared = gil.value(0)
local function value_get_set()
  for _ = 1, per do shared:set(shared:get() + 1) end
end
local function value_add()
  for _ = 1, per do shared:add(1) end
end

local function run_value(label, fn)
  shared:set(0)
  local ws = {}
  for i = 1, nthreads do ws[i] = gil.spawn(fn) end
  for i = 1, nthreads do ws[i]:join() end
  local lost = nthreads * per - shared:get()
  gil.report("lost_" .. label, lost)
  print(("%-22s expected %d, got %d: %d lost updates"):format(label, nthreads * per, shared:get(), lost))
end

run("plain x = x + 1", plain)
run("call between r/w", with_call)
run("call, under a lock", with_lock)
run_value("value get/set", value_get_set)
run_value("value add", value_add)
