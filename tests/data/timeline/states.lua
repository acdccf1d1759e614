-- states.lua: a worker in each state a timeline knows, each for a few ms.
-- Used by tests/test_timeline.c: every state must show up, named, in the trace.
local l = gil.lock()
local q = gil.queue()
l:acquire()
local sleeper = gil.spawn(function() gil.sleep(0.02) end)            -- blocked: sleep
local locker = gil.spawn(function() l:acquire(); l:release() end)    -- blocked: lock
local getter = gil.spawn(function() return q:get() end)              -- blocked: queue
local native = gil.spawn(function() gil.native(0.02, true) end)      -- C code without the GIL
local busy = gil.spawn(function() gil.compute(0.02) end)             -- running with the GIL
gil.sleep(0.03)
l:release()
q:put(1)
sleeper:join()                                                       -- main: blocked: join
locker:join()
getter:join()
native:join()
busy:join()
print("done")
