-- figures.lua: publishes figures of its own with gil.report.
gil.report("answer", 42)
gil.report("ratio", 0.125)
gil.report("label", "hello")
gil.report("flag", true)
gil.report("answer", 43)   -- the last value wins, one row
local h = gil.spawn(function() gil.report("from_worker", -7) end)
h:join()
