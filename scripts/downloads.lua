-- downloads.lua: real downloads over loopback sockets, one worker per client.
--
-- What it shows: threads are the right tool for I/O, with real I/O. A small
-- HTTP-like server runs in one worker and answers each request only after a
-- delay (the latency of a remote site); N client workers each fetch their
-- pages over TCP. A client waiting in c:recv() has released the GIL, so the
-- clients' waits overlap: the run takes about pages x latency, not
-- clients x pages x latency, in every mode.
-- Look at: the wall time against the "one at a time" figure, "GIL held"
-- (nearly 0%), each client's "io" column (most of its life). Then run
-- `gilvm compare scripts/downloads.lua`: threads (gil), free threads (nogil)
-- and processes (fork) finish alike; processes add only start-up and memory.
--
-- usage: gilvm scripts/downloads.lua [clients] [pages] [latency_s] [kbytes]
local clients = tonumber(arg and arg[1]) or 4
local pages = tonumber(arg and arg[2]) or 5
local latency = tonumber(arg and arg[3]) or 0.1
local kbytes = tonumber(arg and arg[4]) or 16

-- The server: one worker, one loop. A request is read as soon as it is
-- accepted and answered once its latency has passed, so many are pending at
-- once (as an event loop serves them). It ends after every page is served.
local function serve(ports, total, delay, size)
  local srv = gil.listen(0)
  ports:put(srv:port())
  local body = string.rep("x", size * 1024)
  local pending, served = {}, 0
  while served < total do
    local wait = nil
    if #pending > 0 then wait = math.max(0, pending[1].due - gil.now()) end
    local conn = srv:accept(wait)
    if conn then
      local request = conn:recv()
      pending[#pending + 1] = { conn = conn, due = gil.now() + delay, path = request:match("GET (%S+)") }
    end
    while #pending > 0 and pending[1].due <= gil.now() do
      local p = table.remove(pending, 1)
      p.conn:send(("HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n"):format(#body) .. body)
      p.conn:close()
      served = served + 1
    end
  end
  srv:close()
  return served
end

-- A client: its pages one after another, each on a new connection.
local function fetch(id, port, n)
  local bytes = 0
  for page = 1, n do
    local c = gil.connect("127.0.0.1", port)
    c:send(("GET /client%d/page%d HTTP/1.0\r\n\r\n"):format(id, page))
    repeat
      local data = c:recv(65536)
      if data then bytes = bytes + #data end
    until not data
    c:close()
  end
  return bytes
end

local ports = gil.queue()
local server = gil.spawn(serve, ports, clients * pages, latency, kbytes)
local port = ports:get()
local t0 = gil.now()
local workers = {}
for i = 1, clients do workers[i] = gil.spawn(fetch, i, port, pages) end
local bytes = 0
for i = 1, clients do bytes = bytes + workers[i]:join() end
local wall = gil.now() - t0
server:join()

local serial = clients * pages * latency
-- (the times go to the report's figures: the printed lines stay the same in every mode)
print(("%d clients x %d pages, %g s latency each: %d KB"):format(clients, pages, latency, bytes // 1024))
print(wall < serial / 2 and "the waits overlapped" or "the waits did not overlap")
gil.report("pages", clients * pages)
gil.report("wall_s", wall)
gil.report("one_at_a_time_s", serial)
gil.report("overlap", serial / wall)
