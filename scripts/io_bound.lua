-- io_bound.lua: three "downloads" of 2 s each, one thread apiece.
--
-- What it shows: gil.sleep() releases the GIL while it waits, the way a
-- socket read does in CPython. Three 2-second waits on three threads finish
-- in about 2 s, not 6: threads are the right tool for I/O, GIL or not.
-- Look at: the wall time below and in the report (about 2 s), "GIL held"
-- (nearly 0%), and each thread's "blocked" column (about 2 s).
--
-- usage: gilvm scripts/io_bound.lua [downloads] [seconds]
local n = tonumber(arg and arg[1]) or 3
local seconds = tonumber(arg and arg[2]) or 2

local function download(i)
  gil.sleep(seconds)          -- waiting on the network: no GIL needed
  return ("file%d: %d bytes"):format(i, 1000 * i)
end

local t0 = gil.now()
local workers = {}
for i = 1, n do workers[i] = gil.spawn(download, i) end
for i = 1, n do print(workers[i]:join()) end
local wall = gil.now() - t0
gil.report("downloads", n)
gil.report("wall_s", wall)
print(("%d downloads of %g s each: %s"):format(n, seconds,
  wall < seconds * 1.5 and "they overlapped" or "they ran one after another"))
