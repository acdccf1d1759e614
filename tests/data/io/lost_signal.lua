-- A CPU thread in plain Lua, and the main thread that needs the GIL back from
-- it after each sleep. Run with GILVM_LOSE_SIGNALS=1: the first request's
-- signal (to the CPU thread) is lost, as Lua can lose one, and main gets the
-- GIL back only if the request is signalled again.
local started, stop = gil.value(0), gil.value(0)
local hog = gil.spawn(function()
  started:set(1)
  local x = 0
  while stop:get() == 0 do
    for i = 1, 1000 do x = x + i end
  end
  return x
end)
while started:get() == 0 do gil.sleep(0.001) end
for _ = 1, 5 do gil.sleep(0.001) end
stop:set(1)
hog:join()
print("done")
