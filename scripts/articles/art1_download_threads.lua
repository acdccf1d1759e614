-- Article: "Concurrency Control in Python: Threads vs. Multiprocessing"
-- (seed 000), example "Using Threads for I/O Tasks": download_file(i) on
-- three threads, each sleeping 2 s to simulate the I/O delay.
--
-- Claim: threads are best for I/O-bound work: while one waits, the others run.
-- gilvm shows (the report, or `gilvm compare scripts/articles/art1_download_threads.lua`):
--   gil:   wall about one download, not three: gil.sleep releases the GIL;
--          "GIL held" is near 0% and each thread's "blocked" is the whole delay.
--   nogil: the same wall time: there was no GIL to get around.
--   fork:  the same wall time again, plus the start-up of three processes and
--          their memory (peak memory): processes buy nothing for waiting.
-- Too simple: "threads for I/O" holds while the threads mostly wait; give
-- them CPU work between waits and the GIL is back (see art1_hybrid_executors).
--
-- usage: gilvm [-m gil|nogil|fork] scripts/articles/art1_download_threads.lua [files] [seconds]
local n = tonumber(arg and arg[1]) or 3
local seconds = tonumber(arg and arg[2]) or 0.2

local function download_file(file_id)
  io.write(("Downloading file %d...\n"):format(file_id))
  gil.sleep(seconds)                       -- time.sleep(2): simulated I/O
  io.write(("File %d downloaded!\n"):format(file_id))
end

local t0 = gil.now()
local threads = {}
for i = 0, n - 1 do threads[#threads + 1] = gil.spawn(download_file, i) end
for _, t in ipairs(threads) do t:join() end
gil.report("wall_s", gil.now() - t0)
gil.report("one_download_s", seconds)
