-- Article: "Concurrency in Python with Threading and Multiprocessing"
-- (devasservice, seed 002), example "How Threading Works": print_numbers()
-- prints 0..4 a second apart on one thread; main joins it and prints
-- "Thread has finished executing".
--
-- Claim: start() runs the function on a thread, join() waits for it.
-- gilvm shows (a gil.spawn worker: a thread, a free thread or a process
-- by mode, printing the same five lines and the last one in every mode):
--   gil:   one thread, almost all of it blocked in sleep; main blocked in join.
--   nogil: the same, with the worker in its own interpreter.
--   fork:  the same, with the worker in a process (start-up is a fork).
-- Too simple: one thread beside a main that only waits is no concurrency at
-- all: the wall time is the worker's, as if main had called it directly.
--
-- usage: gilvm [-m MODE] scripts/articles/art3_print_numbers_thread.lua [count] [seconds]
local count = tonumber(arg and arg[1]) or 5
local seconds = tonumber(arg and arg[2]) or 0.02

local function print_numbers()
  for i = 0, count - 1 do
    io.write(("Number: %d\n"):format(i))
    io.stdout:flush()
    gil.sleep(seconds)
  end
end

local thread = gil.spawn(print_numbers)    -- threading.Thread(target=print_numbers).start()
thread:join()
print("Thread has finished executing")
