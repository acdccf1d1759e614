-- queue_timeout.lua: get on an empty queue with a timeout.
local q = gil.queue()
local t0 = gil.now()
local v, why = q:get(0.1)
local waited = gil.now() - t0
print("get", v, why, waited >= 0.09, waited < 5)
print("get(0)", q:get(0))
q:put("x")
print("get(0) with an item", q:get(0))
