-- spawn.lua: thread spawn+join cost under gilvm, for bench/run row 5.
-- Spawns and joins one worker at a time, N times, timed with gil.now()
-- inside the script so process start-up is not counted, and prints the
-- mean microseconds per gil.spawn(f):join() (after a short untimed
-- warm-up). Run it with -q: the report would list every worker.
--
-- usage: gilvm -q bench/spawn.lua [n]
local n = tonumber(arg and arg[1]) or 2000

local function nothing() end

local function spawn_join(count)
  for _ = 1, count do gil.spawn(nothing):join() end
end

spawn_join(50)
local t0 = gil.now()
spawn_join(n)
print(("%.2f"):format((gil.now() - t0) / n * 1e6))
