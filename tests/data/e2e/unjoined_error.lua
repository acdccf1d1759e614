-- unjoined_error.lua: a worker fails and nobody joins it; main ends normally.
local function bad() error("boom in a worker nobody joined") end
gil.spawn(bad)
gil.sleep(0.05)
print("end of main")
