-- queue_fifo.lua: items come out in the order they went in, across a worker.
local n = tonumber(arg[1]) or 500
local q = gil.queue()
local function producer(count)
  for i = 1, count do q:put(i) end
  q:put({ last = true, s = "text", f = 1.5, nested = { 1, 2, 3 } })
  return "produced"
end
local h = gil.spawn(producer, n)
local ok = true
for i = 1, n do
  local x = q:get()
  if x ~= i then ok = false print("out of order", i, x) break end
end
local last = q:get()
print("fifo", ok, last.last, last.s, last.f, #last.nested, math.type(last.f))
print("worker", h:join())
print("empty", q:empty(), q:size())
-- the main thread alone, mixed values (nil is refused: get's nil means closed or timeout)
q:put("a") q:put(false) q:put(2) print("put nil", pcall(q.put, q, nil)) q:put(3.25)
local got = {}
for i = 1, 4 do got[i] = tostring(q:get()) end
print("mixed", table.concat(got, ","))
