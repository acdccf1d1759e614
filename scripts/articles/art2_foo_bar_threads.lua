-- Article: "Multithreading in Python, Lets clear the confusion between
-- Multithreading and Multiprocessing" (seed 001), example "Multithreading
-- Code": foo(3) and bar(5) on two threads, printing and sleeping 1 s a line;
-- main joins foo, prints 'foo finish', joins bar, prints 'bar finish'.
--
-- Claim: join() waits for a thread; without it 'foo finish' would come early.
-- The article's output interleaves foo and bar line by line.
-- gilvm shows (always threads here: gil.thread):
--   gil:   the same lines; foo and bar sleep with the GIL released, so the
--          run takes about 5 sleeps, not 8. Which of 'foo i' and 'bar i'
--          comes first is up to the scheduler: they wake at the same moment.
--   nogil: free threads: the same lines, the same time.
--   fork:  threads under the GIL of the main process, as in gil mode.
-- Too simple: the article's output is one possible order; 'foo i' before
-- 'bar i' is not promised (run it a few times), only each thread's own order
-- and that 'foo finish' follows 'foo 2'. And print() writes the text and
-- the newline separately: free threads (nogil) printing at the same moment
-- can give "foo  0bar  0" and an empty line, as Python's print can. The
-- gallery's workers write each line with one io.write.
--
-- usage: gilvm [-m MODE] scripts/articles/art2_foo_bar_threads.lua [seconds per line]
local seconds = tonumber(arg and arg[1]) or 0.05

local function foo(n)
  for i = 0, n - 1 do
    io.write("foo  " .. i .. "\n")
    gil.sleep(seconds)
  end
end

local function bar(n)
  for i = 0, n - 1 do
    io.write("bar  " .. i .. "\n")
    gil.sleep(seconds)
  end
end

local t1 = gil.thread(foo, 3)
local t2 = gil.thread(bar, 5)

t1:join()
print("foo finish")
t2:join()
print("bar finish")
