-- lines.lua: a file read line by line beside a CPU thread (the reader's GIL
-- takes, in the report, count refills and forced switches, not lines).
local name = assert(arg[1], "a file name")
local f = assert(io.open(name, "w"))
for i = 1, 20000 do f:write(i, "\n") end
f:close()
local stop = gil.value(0)
local cpu = gil.spawn(function() while stop:get() == 0 do gil.compute(0.001) end end)
local n = 0
for _ in io.lines(name) do n = n + 1 end
stop:set(1)
cpu:join()
print(n)
