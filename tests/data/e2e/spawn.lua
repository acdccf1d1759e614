-- spawn.lua: arguments in, several results out (nil included), with
-- gil.spawn and gil.thread; a worker spawning and joining its own worker.
local function work(a, b, c, t)
  return a + b, c, nil, t.k * 2, select("#", a, b, c, t)
end
local h = gil.spawn(work, 3, 4, "three", { k = 21 })
local r = table.pack(h:join())
print("spawn", r.n, r[1], r[2], r[3], r[4], r[5])
local t = gil.thread(function(...) return select("#", ...), ... end, "x", nil, 5)
print("thread", t:join())
local nested = gil.spawn(function(n)
  local inner = gil.spawn(function(x) return x * 2 end, n)
  return inner:join() + 1
end, 20)
print("nested", nested:join())
print("none", select("#", gil.spawn(function() end):join()))
print("twice", h:join())
