-- deadlock.lua: two threads take two locks in opposite orders and wait for
-- each other forever; main joins them. gilvm sees the cycle and stops the
-- run (exit status 4). Each holds its
-- first lock before either asks for its second (they spin, holding the GIL,
-- until both do), so the deadlock happens however the threads are scheduled.
local a, b = gil.lock(), gil.lock()
local holding = gil.value(0)
local function both_hold() holding:add(1) while holding:get() < 2 do end end
local function one() a:acquire() both_hold() b:acquire() end
local function two() b:acquire() both_hold() a:acquire() end
local t1, t2 = gil.spawn(one), gil.spawn(two)
print("ready")
io.stdout:flush()
t1:join()
t2:join()
print("not reached")
