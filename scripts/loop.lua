-- loop.lua: one thread, a plain numeric loop, no gil calls at all.
--
-- What it shows: the price of gilvm when nothing contends. It runs
-- unchanged under lua5.4; bench/run times both to measure the eval
-- breaker's overhead (no hook is installed while nobody waits for the GIL).
--
-- usage: gilvm scripts/loop.lua [iterations]
local n = tonumber(arg and arg[1]) or 50000000
local s = 0
for i = 1, n do s = s + i % 3 end
print(s)
