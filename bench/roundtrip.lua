-- roundtrip.lua: the marshaller's round trip under gilvm, for bench/run row 10.
-- Builds n records shaped {id=i, name="item"..i, vals={i*1.5, i*2.5, i}},
-- then puts the whole list through a gil.queue and gets it back, in the same
-- interpreter. Run it with -m nogil: there a queue item is always a copy, so
-- q:put encodes the list into the shared arena (vm/marshal.c) and q:get
-- decodes it into fresh tables (under -m gil it would pass a reference).
-- Times each half with gil.now(), `rounds` times, and prints the best
-- round's figures:
--   records/s of put+get   put (encode) s   get (decode) s   build s
-- where build is the time the script's own loop took to make the records:
-- the same tables, built by Lua, the floor a decoder is measured against.
--
-- usage: gilvm -q -m nogil bench/roundtrip.lua [n] [rounds]
local n = tonumber(arg and arg[1]) or 100000
local rounds = tonumber(arg and arg[2]) or 3
assert(gil.mode() == "nogil", "run with -m nogil (a gil-mode queue passes references)")

local t0 = gil.now()
local records = {}
for i = 1, n do records[i] = { id = i, name = "item" .. i, vals = { i * 1.5, i * 2.5, i } } end
local build = gil.now() - t0

local q = gil.queue()
local best_put, best_get = math.huge, math.huge
for _ = 1, rounds do
  collectgarbage()  -- each round starts from the same heap: the last copy is garbage
  local a = gil.now()
  q:put(records)
  local b = gil.now()
  local copy = q:get()
  local c = gil.now()
  local last = copy[n]
  assert(#copy == n and last.id == n and last.name == "item" .. n and last.vals[2] == n * 2.5
         and math.type(last.vals[3]) == "integer", "the copy differs from the records")
  if (b - a) + (c - b) < best_put + best_get then best_put, best_get = b - a, c - b end
end
print(("%.0f %.6f %.6f %.6f"):format(n / (best_put + best_get), best_put, best_get, build))
