-- woken_queued.lua: main sleeps 1 ms while two workers spin; woken, it waits
-- for a core (under --sim 1 -m nogil) or for the GIL (-m gil) before it runs
-- again. Its `blocked` is the sleep alone: the wait after it is `no CPU`'s
-- (or `GIL wait`'s), never counted twice.
local function spin() local x = 0; for i = 1, 3000000 do x = x + i end; return x end
local a, b = gil.spawn(spin), gil.spawn(spin)
gil.sleep(0.001)
local x = 0; for i = 1, 300000 do x = x + i end
