-- Contention by construction: the spinner starts a thread that needs the
-- GIL to end the spin, so the GIL must pass to it while the spinner runs
-- (a drop request under cpython and fifo, a check-interval release under legacy).
local started = gil.value(0)
local function spinner()
  local other = gil.spawn(function() started:set(1) end)
  while started:get() == 0 do end
  other:join()
end
gil.spawn(spinner):join()
print("done")
