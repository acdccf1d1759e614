-- native.lua release seconds: two threads each run gil.native(seconds, release).
-- Prints the wall time and how far apart the two threads started their
-- native call. With release=true the second starts while the first runs
-- (the GIL is free); with release=false it cannot start until the first
-- has finished, since a thread in gil.native(s, false) never lets go.
-- (End times are not comparable: a thread returning from native may be
-- made to drop the GIL before it can read the clock.)
local release = arg[1] == "true"
local s = tonumber(arg[2]) or 0.25
local function work()
  local t0 = gil.now()
  gil.native(s, release)
  return t0
end
local t0 = gil.now()
local a, b = gil.spawn(work), gil.spawn(work)
local s1, s2 = a:join(), b:join()
local wall = gil.now() - t0
print(("wall %.6f start_gap %.6f"):format(wall, math.abs(s2 - s1)))
