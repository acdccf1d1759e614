-- Article: "Multithreading in Python, Lets clear the confusion between
-- Multithreading and Multiprocessing" (seed 001), example "Multiprocessing":
-- the foo/bar code again with multiprocessing.Process instead of Thread.
--
-- Claim: the code is almost the same; just processes instead of threads,
-- each with its own GIL.
-- gilvm shows (always processes here: gil.process, whatever the mode):
--   gil:   the same lines as art2_foo_bar_threads.lua and about the same
--          wall time; the report's rows are processes, start-up is a fork
--          (hundreds of microseconds, against tens for a thread).
--   nogil: the same: gil.process forks in every mode.
--   fork:  the same.
-- Too simple: "the same code" holds because foo and bar share nothing. Let
-- them update a global and only the process that changed it sees the change
-- (see art4_lock_counter.lua). And for sleeping, a process is pure overhead.
--
-- usage: gilvm [-m MODE] scripts/articles/art2_foo_bar_processes.lua [seconds per line]
local seconds = tonumber(arg and arg[1]) or 0.05

local function foo(n)
  for i = 0, n - 1 do
    io.write("foo  " .. i .. "\n")
    io.stdout:flush()                     -- a process's stdout is its own buffer
    gil.sleep(seconds)
  end
end

local function bar(n)
  for i = 0, n - 1 do
    io.write("bar  " .. i .. "\n")
    io.stdout:flush()
    gil.sleep(seconds)
  end
end

local t1 = gil.process(foo, 3)
local t2 = gil.process(bar, 5)

t1:join()
print("foo finish")
io.stdout:flush()
t2:join()
print("bar finish")
