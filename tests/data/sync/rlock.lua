-- rlock.lua: gil.rlock is re-entrant for its owner, a lock for everybody else.
local n = tonumber(arg[1]) or 200
local r, total = gil.rlock(), gil.value(0)
print("acquire twice", r:acquire(), r:acquire(0))
r:release()
print("still locked", r:locked())
r:release()
print("free", r:locked())
print("extra release", pcall(r.release, r))
-- workers bump a counter with a non-atomic read-then-write, nested acquires
local function bump(r, total, n)
  for _ = 1, n do
    r:acquire()
    r:acquire()
    local v = total:get()
    total:set(v + 1)
    r:release()
    r:release()
  end
end
local ws = {}
for i = 1, 3 do ws[i] = gil.spawn(bump, r, total, n) end
ws[4] = gil.process(bump, r, total, n)
for _, w in ipairs(ws) do w:join() end
print("total", total:get(), "expected", 4 * n)
-- another worker cannot release it, nor get it while held
r:acquire()
local w = gil.spawn(function(r)
  local ok, err = pcall(r.release, r)
  return ok, r:acquire(0.01)
end, r)
print("other worker", w:join())
r:release()
-- a process that dies holding it: the next acquire says so, then it works
local h = gil.process(function(r) r:acquire(); r:acquire(); os.exit(1) end, r)
pcall(h.join, h)
print("owner died", pcall(r.acquire, r))
print("then", r:acquire(1), r:locked())
r:release()
do
  local _ <close> = r:hold()
  local _ <close> = r:hold()
  print("held twice", r:locked())
end
print("hold released", r:locked())
print("with error", pcall(function() local _ <close> = r:hold(); error("boom", 0) end))
print("after error", r:locked())
