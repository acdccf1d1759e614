-- Article: "Python is often criticized for being slow or single-threaded..."
-- (an untitled guide to threading and multiprocessing; seed 003),
-- example "Concurrent Web Scraping":
-- download_site(url) on a thread per URL, for google.com and python.org
-- 25 times each, then "Downloaded 50 sites in X seconds".
-- Here a request is gil.sleep (the network) and the page length is made up
-- from the URL, so the output is the same on every run.
--
-- Claim: while one thread waits for a response, the interpreter switches to
-- another to start a second request.
-- gilvm shows (the figure "duration_s" is the article's X):
--   gil:   50 threads, all blocked at once: about one request's time,
--          not 50; "GIL held" near 0%.
--   nogil: the same, but each thread starts a fresh interpreter and copies
--          the globals: start-up is higher.
--   fork:  50 processes: the same wall time plus 50 forks; compare peak memory.
-- Too simple: it works because each response is waited for, not parsed. And
-- 50 threads for 50 requests is fine; 50,000 is not: a pool of threads
-- (gil.pool(n, "thread")) bounds them, as the article's tip says.
--
-- usage: gilvm [-m MODE] scripts/articles/art4_web_scraping.lua [copies of the 2 sites] [seconds per request]
local copies = tonumber(arg and arg[1]) or 25
local seconds = tonumber(arg and arg[2]) or 0.2

local function download_site(url)
  gil.sleep(seconds)                       -- requests.get(url)
  local length = 0
  for i = 1, #url do length = length + url:byte(i) * 97 end
  io.write(("Read %d from %s\n"):format(length, url))
  io.stdout:flush()
end

local function download_all_sites(sites)
  local threads = {}
  for _, url in ipairs(sites) do threads[#threads + 1] = gil.spawn(download_site, url) end
  for _, task in ipairs(threads) do task:join() end
end

local sites = {}
for _ = 1, copies do
  sites[#sites + 1] = "https://www.google.com"
  sites[#sites + 1] = "https://www.python.org"
end
local start_time = gil.now()
download_all_sites(sites)
gil.report("duration_s", gil.now() - start_time)
print(("Downloaded %d sites"):format(#sites))
