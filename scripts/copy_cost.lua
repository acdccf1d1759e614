-- copy_cost.lua: the price of handing data to a worker.
--
-- What it shows: a worker receives a table of n records and returns a
-- summary. In gil mode the worker is a thread of the same interpreter: it
-- gets the very table, nothing is copied. In nogil mode it gets a copy made
-- by gilvm's marshaller (as pickle does for multiprocessing's spawn start
-- method): the report's "copied" grows with the data. In fork mode the child
-- inherits the parent's memory at fork (copy-on-write, as with the fork
-- start method): only the two results cross, and the price is the fork of
-- a big process and its memory. The figure "handoff_s" (spawn to join) is
-- that price next to "work_alone_s", the same pass over the records in main.
-- Look at: `gilvm compare scripts/copy_cost.lua`: copied bytes and wall per mode.
--
-- usage: gilvm [-m MODE] scripts/copy_cost.lua [records]
local n = tonumber(arg and arg[1]) or 50000

local records = {}
for i = 1, n do records[i] = { id = i, name = "item" .. i, vals = { i * 1.5, i * 2.5, i } } end

local function summarise(list)
  local s = 0
  for _, r in ipairs(list) do s = s + r.vals[3] end
  return #list, s
end

local t0 = gil.now()
local count, sum = gil.spawn(summarise, records):join()
gil.report("handoff_s", gil.now() - t0)
local t1 = gil.now()
summarise(records)
gil.report("work_alone_s", gil.now() - t1)
print(("%d records, sum of ids %d"):format(count, sum))
