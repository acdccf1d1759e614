-- countdown.lua: the countdown of "Python behind the scenes #13" (how the
-- GIL works), for bench/run row 12. A total of n decrements,
-- `while n > 0 do n = n - 1 end`, done by one thread or split evenly over
-- several; the time from the first spawn to the last join, timed with
-- gil.now() inside the script so start-up is not counted, is printed in
-- seconds. Under a GIL the work is serial whatever the thread count, so
-- time(8 threads) / time(1 thread) shows what the forced switches cost:
-- the shorter the switch interval (-s), the more of them.
--
-- usage: gilvm -q [-s INTERVAL] bench/countdown.lua threads total
local nthreads = tonumber(arg and arg[1]) or 1
local total = tonumber(arg and arg[2]) or 100000000

function countdown(n)
  while n > 0 do
    n = n - 1
  end
end

local workers = {}
local t0 = gil.now()
for t = 1, nthreads do
  workers[t] = gil.spawn(countdown, total // nthreads)
end
for t = 1, nthreads do
  workers[t]:join()
end
print(("%.6f"):format(gil.now() - t0))
