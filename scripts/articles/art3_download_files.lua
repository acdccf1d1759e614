-- Article: "Concurrency in Python with Threading and Multiprocessing"
-- (devasservice, seed 002), example "Threading for I/O-Bound Tasks":
-- download_file(name) for file1.zip..file3.zip, a thread each, 2 s of
-- simulated download.
--
-- Claim: separate threads handle the downloads "simultaneously, improving
-- overall efficiency". The article's output shows the three starts, then
-- the three finishes, in file order.
-- gilvm shows:
--   gil:   the three starts, then the three finishes; about one download's
--          wall time; the GIL is nearly never held.
--   nogil: the same.
--   fork:  the same, each download a process.
-- Too simple: the order within the starts and within the finishes is the
-- scheduler's, not the list's: file3 may start or finish first.
--
-- usage: gilvm [-m MODE] scripts/articles/art3_download_files.lua [files] [seconds]
local n = tonumber(arg and arg[1]) or 3
local seconds = tonumber(arg and arg[2]) or 0.2

local function download_file(file_name)
  io.write(("Starting download of %s...\n"):format(file_name))
  io.stdout:flush()
  gil.sleep(seconds)                       -- simulate download time
  io.write(("Finished downloading %s\n"):format(file_name))
  io.stdout:flush()
end

local t0 = gil.now()
local threads = {}
for i = 1, n do threads[i] = gil.spawn(download_file, ("file%d.zip"):format(i)) end
for _, t in ipairs(threads) do t:join() end
gil.report("wall_s", gil.now() - t0)
print("All files have been downloaded.")
