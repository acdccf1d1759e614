-- compute.lua [seconds]: how long gil.compute takes in wall time.
local s = tonumber(arg[1]) or 0.05
local t0 = gil.now()
local x = gil.compute(s)
local wall = gil.now() - t0
print(("compute %s returned %s wall %.6f"):format(s, math.type(x), wall))
print("bad arg", pcall(gil.compute, -1))
