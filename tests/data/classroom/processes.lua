-- compare fixture: every worker a process in every mode (gil.process), and a value that differs
local w = gil.process(function() return 1 end)
w:join()
print("total " .. (gil.mode() == "gil" and 5000 or 4000))
