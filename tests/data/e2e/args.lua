-- args.lua: prints `...` and the arg table, like lua5.4 sets them.
print("n", select("#", ...))
print("dots", ...)
local lo = 0
while arg[lo - 1] ~= nil do lo = lo - 1 end
for i = lo, #arg do print(i, arg[i]) end
