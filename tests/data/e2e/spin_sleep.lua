-- spin_sleep.lua [join]: two workers loop forever on the CPU; main sleeps
-- (or joins one of them). Only a stop (timeout, Ctrl-C) ends it.
local function spin() local x = 0 while true do x = x + 1 end end
local a, b = gil.spawn(spin), gil.spawn(spin)
print("ready")
io.stdout:flush()
if arg[1] == "join" then a:join() else gil.sleep(600) end
print("not reached")
