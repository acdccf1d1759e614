-- stop_child.lua: gilvm's stop (--timeout, Ctrl-C) kills what os.execute or
-- io.popen started, and the shell's own children with it.
local pids, how = arg[1], arg[2]
local cmd = "sleep 30 & echo $$ $! > " .. pids .. ".tmp; mv " .. pids .. ".tmp " .. pids .. "; wait"
print("ready")
io.stdout:flush()
if how == "popen" then
  print(io.popen(cmd):read("a"))
else
  os.execute(cmd)
end
print("not reached")
