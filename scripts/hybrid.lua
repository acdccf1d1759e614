-- hybrid.lua: the usual advice in one program: threads for I/O, processes
-- for CPU.
--
-- What it shows: gil.thread and gil.process choose a worker's kind whatever
-- the mode. Four threads "download" (sleep, GIL released) at the same time;
-- then two processes crunch the downloaded data in parallel, each on its own
-- copy, and send their answers back by copy. Under the GIL the downloads
-- overlap but the crunching could not; here it does.
-- Look at: the report's rows (threads blocked, processes with CPU), the
-- wall time (about one download plus half the crunching), and bytes copied.
--
-- usage: gilvm scripts/hybrid.lua [downloads] [seconds each]
local ndownloads = tonumber(arg and arg[1]) or 4
local seconds = tonumber(arg and arg[2]) or 0.5

local function download(i)
  gil.sleep(seconds)                       -- the network: no GIL needed
  local data = {}
  for k = 1, 2000 do data[k] = (i * 7919 + k) % 1000 end
  return data
end

local function crunch(pages)
  local s = 0
  for _, page in ipairs(pages) do
    for _ = 1, 3000 do                       -- CPU-heavy per byte
      for k = 1, #page do s = (s + page[k] * k) % 1000000007 end
    end
  end
  return s
end

local fetchers = {}
for i = 1, ndownloads do fetchers[i] = gil.thread(download, i) end
local pages = {}
for i = 1, ndownloads do pages[i] = fetchers[i]:join() end

local half = ndownloads // 2
local left, right = {}, {}
for i = 1, ndownloads do table.insert(i <= half and left or right, pages[i]) end
local a = gil.process(crunch, left)
local b = gil.process(crunch, right)
local ra, rb = a:join(), b:join()
print(("downloaded %d pages; checksums %d and %d"):format(ndownloads, ra, rb))
