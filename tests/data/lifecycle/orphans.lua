-- A process worker that starts a process worker of its own; both block for
-- ten minutes (the test kills them whatever happens). Main prints both
-- pids, then does what arg[1] says:
--   join   wait for the child (the test kills gilvm with SIGKILL)
--   spin   print forever (the test pipes stdout into `head -1`: SIGPIPE)
--   exit   os.exit(0) with the child still running
local function pid()
  local f = io.open("/proc/self/stat")
  local p = f:read("n")
  f:close()
  return p
end
local q = gil.queue()
local h = gil.process(function()
  local g = gil.process(function() q:put(pid()) gil.sleep(600) end)
  q:put(pid())
  g:join()
end)
local a, b = q:get(), q:get()
print("pids " .. a .. " " .. b)
io.flush()
local what = arg[1]
if what == "spin" then
  while true do print("spin") io.flush() end
elseif what == "exit" then
  os.exit(0)
else
  h:join()
end
