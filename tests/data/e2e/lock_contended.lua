-- lock_contended.lua: main tries a lock a worker holds.
-- The worker keeps it until main says so (a queue), so every "while held"
-- line runs while it is held, however slow the machine.
local l, go = gil.lock(), gil.queue()
local held, released_at = false, nil
local function holder()
  l:acquire()
  held = true
  go:get()               -- GIL released, lock kept
  released_at = gil.now()
  l:release()
  return "released"
end
local h = gil.spawn(holder)
while not held do gil.sleep(0.001) end
local t0 = gil.now()
local got = l:acquire(0.05)
local waited = gil.now() - t0
print("acquire(0.05) while held", got, waited >= 0.04)
print("acquire(0) while held", l:acquire(0))
print("locked", l:locked())
print("release other's", pcall(l.release, l))
go:put(true)
print("acquire() waits for the release", l:acquire(), released_at ~= nil)
print("worker", h:join())
l:release()
print("locked at end", l:locked())
