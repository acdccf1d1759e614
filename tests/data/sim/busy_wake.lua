-- busy_wake.lua: main puts an item on a queue a free thread waits on, then
-- computes for 0.5 ms before it joins. With a free core (--sim 2 -m nogil) the
-- waiter runs a wake-up (`wake`) later; with the one core busy (--sim 1) it
-- has no idle core to wake: it queues and runs a context switch (`switch`)
-- after main blocks in the join. Prints how long after the put it ran, in us.
local q = gil.queue()
local w = gil.spawn(function(q)
  q:get()
  return gil.now()
end, q)
gil.sleep(0.001) -- the waiter is blocked in get by now: virtual time is exact
local put = gil.now()
q:put(1)
gil.compute(0.0005)
print(string.format("ran %.3f us after the put", (w:join() - put) * 1e6))
