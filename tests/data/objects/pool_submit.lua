-- pool_submit.lua: futures: results, several values, timeouts.
local p = gil.pool(2)
local f = p:submit(function(a, b) return a + b, a * b, nil, "x" end, 3, 4)
print("result", f:result())
print("again", select("#", f:result()))
local go = gil.queue()  -- the slow task ends only when told: the first wait times out
local slow = p:submit(function(q) q:get() return "slow done" end, go)
print("timeout", slow:result(0.01))
go:put(true)
print("slow", slow:result())
local fs = {}
for i = 1, 20 do fs[i] = p:submit(function(x) return x * 2 end, i) end
local sum = 0
for i = 20, 1, -1 do sum = sum + fs[i]:result() end
print("sum", sum)
local t = p:submit(function(t) t.seen = true return t end, { 1, 2 }):result()
print("table", #t, t.seen)
p:close()
print("submit after close", pcall(p.submit, p, print))
