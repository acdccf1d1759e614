-- pid_wait.lua FILE [stubborn]: writes this process's pid to FILE (aside, then
-- renamed, so the file appears whole), prints ready, then sleeps until stopped.
-- With "stubborn" it swallows the stop error and goes on (gilvm's grace ends it).
local f = assert(io.open("/proc/self/stat"))
local pid = f:read("n")
f:close()
local out = assert(io.open(arg[1] .. ".part", "w"))
out:write(pid, "\n")
out:close()
assert(os.rename(arg[1] .. ".part", arg[1]))
print("ready")
io.stdout:flush()
if arg[2] == "stubborn" then
  while true do pcall(gil.sleep, 600) end
end
while true do gil.sleep(600) end
