-- spawn.lua: worker spawn+join cost under gilvm, for bench/run rows 5 and 9.
-- Spawns and joins one worker at a time, N times, timed with gil.now()
-- inside the script so process start-up is not counted, and prints the
-- mean microseconds per gil.spawn(f):join() (after a short untimed
-- warm-up). The worker is whatever -m makes: a thread under the GIL (row
-- 5), a thread with an interpreter of its own (-m nogil), a process (-m
-- fork). With "noglobals" the script first empties its global table, so
-- that a nogil worker has (almost) no globals to copy in. Run it with -q:
-- the report would list every worker.
--
-- usage: gilvm -q [-m MODE] bench/spawn.lua [n] [noglobals]
local n = tonumber(arg and arg[1]) or 2000
local gil, print = gil, print

local function nothing() end

if arg[2] == "noglobals" then
  local G = _G
  for k in pairs(G) do G[k] = nil end
end

local function spawn_join(count)
  for _ = 1, count do gil.spawn(nothing):join() end
end

spawn_join(50)
local t0 = gil.now()
spawn_join(n)
print(("%.2f"):format((gil.now() - t0) / n * 1e6))
