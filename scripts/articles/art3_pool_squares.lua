-- Article: "Concurrency in Python with Threading and Multiprocessing"
-- (devasservice, seed 002), example "Multiprocessing for CPU-Bound Tasks":
-- multiprocessing.Pool().map(compute_square, [1, 2, 3, 4, 5]).
--
-- Claim: the pool distributes the squares across processes, for CPU-bound
-- work.
-- gilvm shows (gil.pool of gil.cpu_count() workers of the mode's kind; the
-- figure "map_s" times the map, "serial_s" the same squares in a plain loop):
--   gil:   Squares: [1, 4, 9, 16, 25]; threads under the GIL.
--   nogil: the same list; each worker first gets a copy of the globals.
--   fork:  the same list; every number and result crosses a pipe.
-- Too simple: x*x over five numbers is nanoseconds of work: in every mode
-- the map (map_s, milliseconds: starting the workers, passing each number
-- and result) costs hundreds of times the plain loop (serial_s,
-- microseconds). The pool pays only when each item is real work: with
-- `6 3000000` (the second argument is loop rounds per item) nogil and fork
-- beat the loop and gil does not.
--
-- usage: gilvm [-m MODE] scripts/articles/art3_pool_squares.lua [numbers] [rounds per item]
local n = tonumber(arg and arg[1]) or 5
local rounds = tonumber(arg and arg[2]) or 0

function compute_square(number)
  local s = 0
  for i = 1, rounds do s = (s + i * number) % 1000003 end  -- optional extra work
  return number * number + s * 0
end

local numbers = {}
for i = 1, n do numbers[i] = i end

local t0 = gil.now()
local serial = {}
for i, x in ipairs(numbers) do serial[i] = compute_square(x) end
local t1 = gil.now()
local results
do
  local pool <close> = gil.pool(gil.cpu_count())
  results = pool:map(compute_square, numbers)
end
local t2 = gil.now()
gil.report("serial_s", t1 - t0)
gil.report("map_s", t2 - t1)
print("Squares: [" .. table.concat(results, ", ") .. "]")
