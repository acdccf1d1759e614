local n = 500
local function nothing() end
for _ = 1, 50 do gil.spawn(nothing):join() end
local ts, tj = 0, 0
for _ = 1, n do
  local a = gil.now(); local w = gil.spawn(nothing); local b = gil.now(); w:join(); local c = gil.now()
  ts, tj = ts + (b - a), tj + (c - b)
end
print(("spawn %.1f us  join %.1f us"):format(ts / n * 1e6, tj / n * 1e6))
