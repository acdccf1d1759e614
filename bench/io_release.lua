-- io_release.lua: Lua's blocking calls release the GIL (issue 8, part 1),
-- measured in one run; run it once per mode:
--
--   for m in gil nogil fork; do build/gilvm -q -m $m bench/io_release.lua; done
--
-- 1. 4 workers each os.execute("sleep 1"): about 1 s, not 4.
-- 2. 4 workers each read a line from io.popen("sleep 1; echo x"): about 1 s.
-- 3. A CPU worker's loop count in 1 s, alone and then beside a worker blocked
--    in io.read() on an empty pipe (a FIFO nobody writes): their ratio is
--    about 1 (it would be 0 if the reader held the GIL: nothing else runs).
local function walled(f)
  local t0 = gil.now()
  f()
  return gil.now() - t0
end

local function four(job)
  return walled(function()
    local ws = {}
    for i = 1, 4 do ws[i] = gil.spawn(job) end
    for i = 1, 4 do ws[i]:join() end
  end)
end

local execute = four(function() return os.execute("sleep 1") end)
local popen = four(function()
  local p = io.popen("sleep 1; echo x")
  local line = p:read("l")
  p:close()
  return line
end)

local function spin(seconds)
  local n, deadline = 0, gil.now() + seconds
  while gil.now() < deadline do
    for _ = 1, 10000 do end
    n = n + 1
  end
  return n
end

local fifo = os.tmpname()
os.remove(fifo)
assert(os.execute("mkfifo " .. fifo))
local w = assert(io.open(fifo, "r+")) -- a writer that writes nothing yet: no EOF
local alone = gil.spawn(spin, 1):join()
local started = gil.value(0)
local reader = gil.spawn(function()
  io.input(fifo)
  started:set(1)
  return io.read()
end)
while started:get() == 0 do gil.sleep(0.001) end
local beside = gil.spawn(spin, 1):join()
w:write("done\n")
w:flush()
reader:join()
w:close()
os.remove(fifo)

print(("%-6s 4 x os.execute('sleep 1'): %.2f s   4 x popen read: %.2f s   CPU beside a blocked io.read(): %.2f of alone")
  :format(gil.mode(), execute, popen, beside / alone))
gil.report("execute_s", execute)
gil.report("popen_s", popen)
gil.report("cpu_beside_read", beside / alone)
