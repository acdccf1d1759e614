-- pipe_pair.lua: a process computes, and talks to its parent over a pipe.
--
-- What it shows: multiprocessing.Pipe as gil.pipe. The parent sends jobs
-- down its end; a gil.process worker receives each (a copy), answers on the
-- same duplex pipe, and stops at "stop". Every item crosses between two
-- address spaces by copy: the report's "copied" counts the bytes. The same
-- script runs in every mode because the worker is always a process.
-- Look at: copied bytes against the work done; the worker's "blocked" time
-- (waiting in recv) against its cpu.
--
-- usage: gilvm scripts/pipe_pair.lua [jobs] [numbers per job]
local njobs = tonumber(arg and arg[1]) or 20
local size = tonumber(arg and arg[2]) or 1000

local parent, child = gil.pipe()

local function worker(conn)
  local answered = 0
  while true do
    local job = conn:recv()
    if job == "stop" or job == nil then break end
    local s = 0
    for i = 1, #job.data do s = s + job.data[i] * i end
    conn:send({ id = job.id, sum = s })
    answered = answered + 1
  end
  return answered
end

local p = gil.process(worker, child)
local total = 0
for id = 1, njobs do
  local data = {}
  for i = 1, size do data[i] = (id + i) % 10 end
  parent:send({ id = id, data = data })
  local reply = parent:recv()
  assert(reply.id == id)
  total = total + reply.sum
end
parent:send("stop")
print(("%d jobs answered, total %d"):format(p:join(), total))
