-- blocked.lua: a thread blocked in the kernel (how: arg[2]) releases the GIL.
-- A reader blocks on a FIFO nobody writes yet; main sees it blocked in the
-- kernel (/proc/<tid>/stat and wchan), then sees a CPU thread make progress
-- while the reader is still blocked, then writes the line that frees it
-- (recv, accept: a socket no one has written to or connected to yet).
local fifo, how = arg[1], arg[2]
assert(os.execute("mkfifo " .. fifo))
local w = assert(io.open(fifo, "r+"))                     -- keeps the FIFO open: no EOF
local tids, progress, stop = gil.queue(), gil.value(0), gil.value(0)

local function my_tid()
  local f = assert(io.open("/proc/thread-self/stat"))
  local tid = tonumber(f:read("a"):match("^(%d+)"))
  f:close()
  return tid
end

local srv = how == "recv" and gil.listen(0)
local ports = gil.queue()
local reader = gil.spawn(function(port)
  tids:put(my_tid())
  if how == "stdin" then
    return io.read("l")
  elseif how == "read" then
    local f = assert(io.open(fifo, "r"))
    return f:read("l")
  elseif how == "lines" then
    for l in io.lines(fifo) do return l end
  elseif how == "popen" then
    local p = io.popen("read x < " .. fifo .. "; echo got $x")
    local l = p:read("l")
    p:close()
    return l
  elseif how == "execute" then
    return os.execute("read x < " .. fifo)
  elseif how == "recv" then
    local c = gil.connect("127.0.0.1", port)
    return c:recv()
  elseif how == "accept" then
    local ls = gil.listen(0)
    ports:put(ls:port())
    local c = ls:accept()
    return c:recv()
  end
end, srv and srv:port())
local cpu = gil.spawn(function()
  while stop:get() == 0 do
    for _ = 1, 1000 do end
    progress:add(1)
  end
end)

local tid = tids:get()
-- asleep in the kernel, and not on a futex: a thread waiting for the GIL
-- (a condition variable) sleeps too, before its read and after it
local function blocked()
  local f = io.open("/proc/" .. tid .. "/stat")
  if not f then return false end
  local state = f:read("a"):match("^%d+ %b() (%a)")
  f:close()
  f = io.open("/proc/" .. tid .. "/wchan")
  local wchan = f and f:read("a") or ""
  if f then f:close() end
  return state == "S" and wchan ~= "" and wchan ~= "0" and not wchan:find("futex"), wchan
end
repeat gil.sleep(0.001) until blocked()
local p0 = progress:get()
repeat gil.sleep(0.001) until progress:get() >= p0 + 5    -- the CPU thread runs meanwhile
-- still blocked: asleep again (a wait wakes every 50 ms to look for a stop,
-- so one look can catch it awake) and not returned (nothing freed it yet)
repeat gil.sleep(0.001) until blocked()
print("cpu ran while blocked")
if how == "stdin" then os.exit(0, true) end               -- stdin stays open: nothing frees it
if how == "recv" then
  srv:accept():send("x")
elseif how == "accept" then
  gil.connect("127.0.0.1", ports:get()):send("x")
else
  w:write("x\n")
  w:flush()
end
print("reader got", reader:join())
stop:set(1)
cpu:join()
w:close()
os.remove(fifo)
