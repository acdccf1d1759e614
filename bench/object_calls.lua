-- object_calls.lua: what a call of a shared object's method costs, beyond its
-- Lua instructions (the measurement behind --sim-cost object):
--
--   chrt -f 1 build/gilvm -q bench/object_calls.lua      # real
--   build/gilvm -q --sim 2 bench/object_calls.lua        # what the model charges
--
-- Each loop runs in one worker, alone (nothing contends), best of 3. A real
-- call's cost is its loop's time per iteration less the same loop's Lua
-- instructions (the simulated run with --sim-cost object=0 prices those at
-- --sim-insn), divided by its calls per iteration: value_get_set makes two,
-- value_add one, lock_pair two (an acquire and a release).
local per = tonumber(arg and arg[1]) or 200000
counter = 0
local function nothing() end
local loops = {
  { "empty", function() for _ = 1, per do end end },
  { "plain", function() for _ = 1, per do counter = counter + 1 end end },
  { "call", function() for _ = 1, per do local v = counter; nothing(); counter = v + 1 end end },
}
local lock, shared = gil.lock(), gil.value(0)
loops[#loops + 1] = { "lock_pair", function()
  for _ = 1, per do lock:acquire(); local v = counter; nothing(); counter = v + 1; lock:release() end
end }
loops[#loops + 1] = { "value_get_set", function() for _ = 1, per do shared:set(shared:get() + 1) end end }
loops[#loops + 1] = { "value_add", function() for _ = 1, per do shared:add(1) end end }
for _, l in ipairs(loops) do
  local best = math.huge
  for _ = 1, 3 do
    local t = gil.now()
    gil.spawn(l[2]):join()
    best = math.min(best, gil.now() - t)
  end
  print(("%-14s %9.3f ms  %7.1f ns an iteration"):format(l[1], best * 1e3, best * 1e9 / per))
end
