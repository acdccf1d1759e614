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
local give_up = gil.now() + 120  -- a test that failed to stop it does not leave it forever
if arg[2] == "stubborn" then
  while gil.now() < give_up do pcall(gil.sleep, 1) end
end
gil.sleep(give_up - gil.now())
