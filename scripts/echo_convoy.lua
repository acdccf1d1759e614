-- echo_convoy.lua: an echo server thread next to K CPU-bound threads, and a
-- client in another process counting round trips.
--
-- What it shows: the convoy effect of bpo-7946, with real sockets. The
-- server thread spends its life waiting in c:recv() with the GIL released;
-- each time a 1-byte request arrives it needs the GIL back to answer, and a
-- CPU thread holds it. Under the cpython policy it gets it only after one
-- switch interval, so one request costs about an interval (5 ms: about 200
-- requests/s, against thousands with no CPU thread). More CPU threads make
-- it worse: the GIL a forced drop gives up can go to another CPU thread.
-- The client is a gil.process worker: a process of its own, with its own
-- GIL, so it measures the server from outside as a real client would.
-- Look at: the req/s column, "vs none" (the rate over the rate with no CPU
-- thread) and the share of requests slower than half an interval (those that
-- waited for a CPU worker to be made to drop the GIL; the others found it
-- free: the server took it back before the woken CPU worker got to it). Then the cures: a shorter interval (-s 1ms, -s 100us), I/O
-- priority (-g iopri: a thread back from I/O is served at once), the CPU
-- work in processes (third argument "process"); and -g fifo, which bounds
-- the wait but to a whole quantum (100 ms by default). In nogil and fork
-- modes the server has no GIL to wait for.
--
-- usage: gilvm scripts/echo_convoy.lua [cpu threads, a list: 0,1,2,4] [seconds per row] [spawn|process]
local hog_list = (arg and arg[1]) or "0,1,2,4"
local seconds = tonumber(arg and arg[2]) or 2
local hog_kind = (arg and arg[3]) or "spawn"
assert(hog_kind == "spawn" or hog_kind == "process", "third argument: spawn or process")
local counts = {}
for k in hog_list:gmatch("[^,]+") do counts[#counts + 1] = assert(math.tointeger(tonumber(k)), "bad count " .. k) end

-- The server: one connection per row, each echoed until the client closes it.
local function serve(ports, rows)
  local srv = gil.listen(0)
  ports:put(srv:port())
  local served = 0
  for _ = 1, rows do
    local c = srv:accept()
    while true do
      local data = c:recv()
      if not data then break end
      c:send(data)
      served = served + 1
    end
    c:close()
  end
  srv:close()
  return served
end

-- A CPU-bound thread: pure Lua arithmetic until told to stop.
local function hog(stop, started)
  started:add(1)
  local rounds, x = 0, 0
  while stop:get() == 0 do
    for i = 1, 20000 do x = x + i end
    rounds = rounds + 1
  end
  return rounds
end

-- The client: 1-byte request, 1-byte response, for a fixed time. It counts
-- the requests that took longer than `slow` (half a switch interval): those
-- the server answered only after a CPU worker was made to drop the GIL.
local function client(port, secs, slow)
  local c = gil.connect("127.0.0.1", port)
  local n, late, t0 = 0, 0, gil.now()
  local t = t0
  while t - t0 < secs do
    c:send("x")
    assert(c:recv(1) == "x", "echo lost")
    n = n + 1
    local now = gil.now()
    if now - t > slow then late = late + 1 end
    t = now
  end
  c:close()
  return n, t - t0, late
end

local ports = gil.queue()
local server = gil.spawn(serve, ports, #counts)
local port = ports:get()
local stop, started = gil.value(0), gil.value(0)
local spawn = hog_kind == "process" and gil.process or gil.spawn
local kind = hog_kind == "process" and "process" or ({ gil = "thread", nogil = "free thread", fork = "process" })[gil.mode()]

print(("echo server and CPU workers in one gilvm (-m %s, switch interval %g ms); client in another process, %g s per row")
  :format(gil.mode(), gil.getswitchinterval() * 1000, seconds))
local slow = gil.getswitchinterval() / 2
print(("%11s  %-11s  %9s  %9s  %8s  %s"):format("CPU workers", "kind", "requests", "req/s", "vs none",
  ("slower than %g ms"):format(slow * 1000)))
local base
for _, k in ipairs(counts) do
  stop:set(0)
  started:set(0)
  local hogs = {}
  for i = 1, k do hogs[i] = spawn(hog, stop, started) end
  while started:get() < k do gil.sleep(0.001) end -- every CPU worker is running
  local n, elapsed, late = gil.process(client, port, seconds, slow):join()
  stop:set(1)
  for i = 1, k do hogs[i]:join() end
  local rate = n / elapsed
  if k == 0 and not base then base = rate end
  print(("%11d  %-11s  %9d  %9.1f  %8s  %5.1f%%"):format(k, k == 0 and "-" or kind, n, rate,
    base and ("%.4f"):format(rate / base) or "-", 100 * late / n))
  gil.report(("req_s_%d"):format(k), rate)
  gil.report(("slow_%d"):format(k), late / n)
  if base and k > 0 then gil.report(("vs_none_%d"):format(k), rate / base) end
end
local served = server:join()
gil.report("requests", served)
