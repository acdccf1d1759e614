-- states.lua: a worker in each state a timeline knows, each for a few ms.
-- Used by tests/test_timeline.c: every state must show up, named, in the trace.
-- Each state is entered whatever the timing: the lock is held by main until
-- the end and nothing is ever put in the queue, so both waits block until
-- their timeout.
local l = gil.lock()
local q = gil.queue()
l:acquire()
local sleeper = gil.spawn(function() gil.sleep(0.02) end)            -- blocked: sleep
local locker = gil.spawn(function() return l:acquire(0.02) end)      -- blocked: lock
local getter = gil.spawn(function() return q:get(0.02) end)          -- blocked: queue
local native = gil.spawn(function() gil.native(0.02, true) end)      -- C code without the GIL
local busy = gil.spawn(function() gil.compute(0.02) end)             -- running with the GIL
local waiter = gil.spawn(function() os.execute("sleep 0.02") end)    -- blocked: io
sleeper:join()                                                       -- main: blocked: join
locker:join()
getter:join()
native:join()
busy:join()
waiter:join()
l:release()
print("done")
