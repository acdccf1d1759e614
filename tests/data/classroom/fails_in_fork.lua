-- fails_in_fork.lua: the same output in every mode but fork, whose run fails.
print("a")
if gil.mode() == "fork" then error("boom") end
print("b")
