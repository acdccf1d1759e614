-- touch.lua FILE: creates FILE, a side effect a test can look for, and prints done.
assert(io.open(arg[1], "w")):close()
print("done")
