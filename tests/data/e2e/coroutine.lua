-- coroutine.lua wrap|resume|nested: a thread spins inside a coroutine, never
-- yielding, until another thread sets `done`. That other thread (and main,
-- which must take the GIL back to spawn it) can only run if the eval breaker
-- interrupts the coroutine that is running, not just the thread's own state.
local how = arg[1] or "wrap"
local started, done = false, false

local function spin_body()
  started = true
  local x = 0
  while not done do x = x + 1 end
  coroutine.yield(x)
end

local function spinner()
  if how == "wrap" then
    local gen = coroutine.wrap(spin_body)
    return gen() > 0
  elseif how == "resume" then
    local co = coroutine.create(spin_body)
    local ok, x = coroutine.resume(co)
    return ok and x > 0
  else  -- nested: the spinning coroutine runs inside another coroutine
    local outer = coroutine.wrap(function()
      local inner = coroutine.wrap(spin_body)
      coroutine.yield(inner())
    end)
    return outer() > 0
  end
end

local function setter() done = true return "setter ran" end

local a = gil.spawn(spinner)
while not started do gil.sleep(0.001) end
local b = gil.spawn(setter)
print(b:join())
print("spinner saw done", a:join())
