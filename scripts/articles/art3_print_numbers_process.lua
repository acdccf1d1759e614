-- Article: "Concurrency in Python with Threading and Multiprocessing"
-- (devasservice, seed 002), example "How Multiprocessing Works": the same
-- print_numbers() in a multiprocessing.Process.
--
-- Claim: processes "run in separate memory spaces" and "are truly
-- concurrent and can run on different CPU cores".
-- gilvm shows (always a process: gil.process, in every mode):
--   gil:   the same five lines and last line as the thread version; the row
--          is a process, its start-up a fork.
--   nogil: the same.
--   fork:  the same.
-- Too simple: true concurrency needs something to run concurrently: here
-- the process sleeps and main waits, so a process costs a fork and buys
-- nothing. The print order is the same because main waits in join.
--
-- usage: gilvm [-m MODE] scripts/articles/art3_print_numbers_process.lua [count] [seconds]
local count = tonumber(arg and arg[1]) or 5
local seconds = tonumber(arg and arg[2]) or 0.02

local function print_numbers()
  for i = 0, count - 1 do
    io.write(("Number: %d\n"):format(i))
    io.stdout:flush()                      -- the child's stdout buffer is its own
    gil.sleep(seconds)
  end
end

local process = gil.process(print_numbers)
process:join()
print("Process has finished executing")
