-- resume_cold.lua: a CPU thread holds the GIL; a second thread waits one
-- switch interval, takes the GIL at a forced switch and runs a loop of about
-- 1 ms. Prints that thread's CPU time in us: its first `resume` of work
-- counts twice (cold caches), so with --sim-cost resume=1s it is about 2 ms,
-- not 1 s.
local stop = gil.value(0)
local hog = gil.spawn(function()
  local x = 0
  while stop:get() == 0 do
    for i = 1, 1000 do x = x + i end
  end
end)
local late = gil.spawn(function()
  gil.sleep(0.002) -- back to find the CPU thread holding the GIL, main in its join
  local c0, x = os.clock(), 0
  for i = 1, 160000 do x = x + i end
  stop:set(1)
  return os.clock() - c0
end)
local cpu = late:join()
hog:join()
print(string.format("cpu %.3f us", cpu * 1e6))
