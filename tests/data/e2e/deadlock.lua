-- deadlock.lua: two threads take two locks in opposite orders and wait for
-- each other forever; main joins them. Only a stop ends it.
local a, b = gil.lock(), gil.lock()
local function one() a:acquire() gil.sleep(0.05) b:acquire() end
local function two() b:acquire() gil.sleep(0.05) a:acquire() end
local t1, t2 = gil.spawn(one), gil.spawn(two)
print("ready")
io.stdout:flush()
t1:join()
t2:join()
print("not reached")
