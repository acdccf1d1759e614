-- event.lua: workers wait on an event until main sets it; timeouts answer false.
local e, started, passed = gil.event(), gil.value(0), gil.value(0)
print("initially", e:is_set(), e:wait(0), e:wait(0.01))
local function waiter(e, started, passed)
  started:add(1)
  local ok = e:wait()
  passed:add(1)
  return ok
end
local ws = { gil.spawn(waiter, e, started, passed), gil.spawn(waiter, e, started, passed),
             gil.process(waiter, e, started, passed) }
while started:get() < 3 do gil.sleep(0.001) end
print("before set", passed:get())
e:set()
for i, w in ipairs(ws) do print("waiter", i, w:join()) end
print("passed", passed:get(), e:is_set(), e:wait(), e:wait(0))
e:clear()
print("cleared", e:is_set(), e:wait(0.01))
