-- pool_unclosed.lua: a pool nobody closes does not keep the run alive.
local p = gil.pool(2)
print("map", table.concat(p:map(function(x) return x + 1 end, { 1, 2, 3 }), " "))
local q = gil.pool(2, "process")
print("submit", q:submit(function() return "p" end):result())
