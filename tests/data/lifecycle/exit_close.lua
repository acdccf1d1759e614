-- gil mode: a worker calls os.exit(0, true); closing the state runs a
-- finalizer that sleeps (releasing the GIL) while another thread spins and
-- writes. Nothing may run Lua between "[gc" and "gc]".
local keep = setmetatable({}, { __gc = function() io.write("[gc") io.flush() gil.sleep(0.3) io.write("gc]") end })
local ready = gil.value(0)
gil.thread(function()
  ready:set(1)
  while true do io.write("S") gil.compute(0.001) end
end)
while ready:get() == 0 do gil.sleep(0.001) end
gil.thread(function() os.exit(3, true) end):join()
