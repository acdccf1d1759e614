-- lost_update.lua: the smallest lost update, to read with `gilvm dis`.
--
-- What it shows: why `x = x + 1` loses nothing under -g cpython while
-- `local v = x; f(); x = v + 1` does. The eval breaker hands the GIL over
-- only at check points; `gilvm dis scripts/lost_update.lua` marks them (>>).
-- In `plain` the only check point is the loop's back jump, between one
-- increment and the next; in `with_call` the call to `nothing` is one, and
-- it sits between the read of `counter` and the write: another thread can
-- run there, and its updates are overwritten.
-- The old GIL (-g legacy) counts instructions and can switch anywhere: with
-- `-g legacy --check-interval 101`, `plain` loses updates too. With the
-- default 100, a multiple of plain's 4-instruction loop, every switch falls
-- on the same instruction, which happens to be a safe one: luck, not safety.
-- Look at: "lost" for each function; then the marks in `gilvm dis`.
--
-- usage: gilvm -s 100us scripts/lost_update.lua [threads] [increments per thread]
local nthreads = tonumber(arg and arg[1]) or 4
local per = tonumber(arg and arg[2]) or 100000

counter = 0
local function nothing() end

local function plain()
  for _ = 1, per do counter = counter + 1 end
end

local function with_call()
  for _ = 1, per do
    local v = counter
    nothing()
    counter = v + 1
  end
end

for _, case in ipairs({ { "plain", plain }, { "with_call", with_call } }) do
  counter = 0
  local ws = {}
  for i = 1, nthreads do ws[i] = gil.thread(case[2]) end
  for _, w in ipairs(ws) do w:join() end
  print(("%-10s expected %d, got %d: lost %d"):format(case[1], nthreads * per, counter, nthreads * per - counter))
end
