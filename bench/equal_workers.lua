-- equal_workers.lua n iterations: n workers each run the same loop of
-- `iterations`, all let go at once by an event, so their spawning is left
-- out; each times its own loop with gil.now(). Prints the fastest and the
-- slowest worker's own time, the span from the event to the last end, and
-- the stagger: from the event to the last worker's start (their waking up),
-- and the first start: from the event to the first worker's start (when
-- workers outnumber cores, the later ones wait for a core: the stagger then
-- includes their wait, the first start does not).
-- For bench/run row 2c and tests/test_sim_figures.c: under
-- `gilvm --sim 64 -m nogil`, 64 of them each take as long as one alone.
--
-- usage: gilvm -q --sim 64 -m nogil bench/equal_workers.lua 64 1000000
local n, iterations = tonumber(arg[1]), tonumber(arg[2])
local go = gil.event()

local function work(ev, iters)
  ev:wait()
  local t0, s = gil.now(), 0
  for i = 1, iters do
    s = s + i % 7
  end
  local t1 = gil.now()
  return t1 - t0, t0, t1
end

local workers = {}
for k = 1, n do
  workers[k] = gil.spawn(work, go, iterations)
end
local t0 = gil.now()
go:set()
local fastest, slowest, last, latest, earliest = math.huge, 0, 0, 0, math.huge
for k = 1, n do
  local own, started, ended = workers[k]:join()
  fastest, slowest = math.min(fastest, own), math.max(slowest, own)
  last, latest = math.max(last, ended), math.max(latest, started)
  earliest = math.min(earliest, started)
end
print(("%.9f %.9f %.9f %.9f %.9f"):format(fastest, slowest, last - t0, latest - t0, earliest - t0))
