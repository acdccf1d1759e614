-- join_timeout.lua: join with a timeout on a worker that sleeps.
local function sleeper() gil.sleep(0.5) return "woke" end
local h = gil.spawn(sleeper)
local t0 = gil.now()
local a, b = h:join(0.05)
local waited = gil.now() - t0
print("timed out", a, b, select("#", h:join(0)))
print("waited at least 0.04", waited >= 0.04)
print("joined", h:join())
print("join(5) on a finished worker", h:join(5))
