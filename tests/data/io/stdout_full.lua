-- stdout_full.lua: a worker whose writes to stdout (or stderr: how, arg[3])
-- fill a pipe nobody reads releases the GIL while it waits. main sees it
-- asleep in the kernel (/proc/<tid>/stat and wchan, not a futex) with its
-- line count stuck, then a CPU thread making progress while it stays so,
-- then creates the marker (arg[1]) that tells the test to drain the pipe.
-- arg[2]: "drain" writes 40,000 numbered lines and prints "done" after them;
-- "stop" writes until gilvm is stopped (SIGTERM from the test).
local marker, what, how = arg[1], arg[2], arg[3]
local N = what == "drain" and 40000 or math.maxinteger -- 8-byte lines: 320 kB, five 64 KiB pipes
local tids, progress, stop, written = gil.queue(), gil.value(0), gil.value(0), gil.value(0)

local function my_tid()
  local f = assert(io.open("/proc/thread-self/stat"))
  local tid = tonumber(f:read("a"):match("^(%d+)"))
  f:close()
  return tid
end

local emit = ({
  print = function(s) print(s) end,
  write = function(s) io.write(s, "\n") end,
  stdout = function(s) io.stdout:write(s, "\n") end,
  stderr = function(s) io.stderr:write(s, "\n") end,
})[how]

local writer = gil.spawn(function()
  tids:put(my_tid())
  for i = 1, N do
    emit(string.format("%07d", i))
    written:set(i)
  end
  io.stdout:flush()
end)
local cpu = gil.spawn(function()
  while stop:get() == 0 do
    for _ = 1, 1000 do end
    progress:add(1)
  end
end)

local tid = tids:get()
local function blocked()
  local f = io.open("/proc/" .. tid .. "/stat")
  if not f then return false end
  local state = f:read("a"):match("^%d+ %b() (%a)")
  f:close()
  f = io.open("/proc/" .. tid .. "/wchan")
  local wchan = f and f:read("a") or ""
  if f then f:close() end
  return state == "S" and wchan ~= "" and wchan ~= "0" and not wchan:find("futex")
end
-- the writer wakes every 50 ms to look for a stop, so "asleep" is checked
-- as a state it returns to, and "stuck" by its line count, which cannot move
local function wait_blocked()
  repeat gil.sleep(0.001) until blocked()
end
local n0
repeat
  wait_blocked()
  n0 = written:get()
until n0 > 0
local p0 = progress:get()
repeat gil.sleep(0.001) until progress:get() >= p0 + 5 -- the CPU thread runs meanwhile
wait_blocked()
local stuck = written:get() == n0
io.open(marker, "w"):close() -- the test drains from here on (also when the check failed: no hang)
if what == "stop" then writer:join() end -- until the test stops gilvm
stop:set(1)
assert(stuck, "the writer should still be blocked")
writer:join()
cpu:join()
print("done")
