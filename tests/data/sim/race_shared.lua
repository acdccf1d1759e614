-- race_shared.lua: two workers add 1 to shared objects, racy and safe ways (tests/test_sim.c, race points).
-- usage: race_shared.lua [increments per worker]
local per = tonumber(arg and arg[1]) or 2000
local v, lock, arr = gil.value(0), gil.lock(), gil.array(1)
local start = gil.barrier(2) -- both begin together: their loops overlap

local function run(label, fn)
  v:set(0)
  arr[1] = 0
  local function go()
    start:wait()
    fn()
  end
  local a, b = gil.spawn(go), gil.spawn(go)
  a:join()
  b:join()
  local got = label:find("array") and arr[1] or v:get()
  gil.report("lost " .. label, 2 * per - got)
end

run("value get/set", function() for _ = 1, per do v:set(v:get() + 1) end end)
run("value add", function() for _ = 1, per do v:add(1) end end)
run("value under a lock", function()
  for _ = 1, per do
    lock:acquire()
    v:set(v:get() + 1)
    lock:release()
  end
end)
run("array get/set", function() for _ = 1, per do arr[1] = arr[1] + 1 end end)
run("array add", function() for _ = 1, per do arr:add(1, 1) end end)
