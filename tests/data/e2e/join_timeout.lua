-- join_timeout.lua: join with a timeout on a worker that sleeps.
-- It sleeps until main wakes it (a queue), so the first join times out
-- however slow the machine.
local wake = gil.queue()
local function sleeper() wake:get() return "woke" end
local h = gil.spawn(sleeper)
local t0 = gil.now()
local a, b = h:join(0.05)
local waited = gil.now() - t0
print("timed out", a, b, select("#", h:join(0)))
print("waited at least 0.04", waited >= 0.04)
wake:put(true)
print("joined", h:join())
print("join(5) on a finished worker", h:join(5))
