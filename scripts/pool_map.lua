-- pool_map.lua: the "squares" example of every process-pool tutorial.
--
-- What it shows: a pool of workers mapping a function over a list, with
-- results in order. Each item costs about 50 ms of CPU, so the pool's kind
-- matters: under the GIL (gilvm -m gil) the work is serialised; with
-- interpreters of their own (-m nogil) or processes (-m fork) two cores
-- share it. The results are identical in every mode; only the time changes.
-- Look at: the wall time and parallelism in the report, or run
-- `gilvm compare scripts/pool_map.lua`.
--
-- usage: gilvm [-m gil|nogil|fork] scripts/pool_map.lua [items] [seconds per item]
local n = tonumber(arg and arg[1]) or 16
local cost = tonumber(arg and arg[2]) or 0.05

function square(x)
  gil.compute(cost)        -- pretend each square is expensive
  return x * x
end

local items = {}
for i = 1, n do items[i] = i end

local pool = gil.pool(gil.cpu_count())
local t0 = gil.now()
local squares = pool:map(square, items)
gil.report("map_s", gil.now() - t0)
pool:close()

print(table.concat(squares, " "))
