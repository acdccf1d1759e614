-- fork_cost.lua: what a process worker costs its spawner, for --sim's fork cost (README, "Simulated runs").
-- Spawns and joins one process at a time, n times (after an untimed warm-up), and prints the mean
-- time of the gil.spawn call itself (the fork, made with the GIL held) and of the join (the child's
-- start, run, exit and reaping), timed with gil.now().
--
-- usage: gilvm -q -m fork bench/fork_cost.lua
local n = 500
local function nothing() end
for _ = 1, 50 do gil.spawn(nothing):join() end
local ts, tj = 0, 0
for _ = 1, n do
  local a = gil.now(); local w = gil.spawn(nothing); local b = gil.now(); w:join(); local c = gil.now()
  ts, tj = ts + (b - a), tj + (c - b)
end
print(("spawn %.1f us  join %.1f us"):format(ts / n * 1e6, tj / n * 1e6))
