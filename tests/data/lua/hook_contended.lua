-- A script's call hook keeps firing while another thread forces switches.
-- A thread computes beside the main one; the main thread sets a call hook
-- that counts the calls of f, and calls f until it has seen the other
-- thread run 20 times in the middle of its loop (the GIL was taken from it
-- there), then prints how many calls the hook saw and how many were made.
local ticks = gil.value(0)
local stop = gil.value(0)
local spinner = gil.thread(function()
  while stop:get() == 0 do
    ticks:add(1)
    local x = 0
    for i = 1, 2000 do x = x + i end
  end
end)
while ticks:get() == 0 do end  -- the other thread is running

local function f() end
local hits, calls, seen, last = 0, 0, 0, ticks:get()
debug.sethook(function()
  if debug.getinfo(2, "f").func == f then hits = hits + 1 end
end, "c")
while seen < 20 do
  calls = calls + 1
  f()
  local t = ticks:get()
  if t ~= last then seen, last = seen + 1, t end
end
local fn, mask = debug.gethook()
debug.sethook()
stop:set(1)
spinner:join()
print("calls " .. calls)
print("hits " .. hits)
print("seen " .. seen)
print("mask " .. tostring(mask))
