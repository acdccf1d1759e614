-- A worker reads a FIFO that main writes only after another worker's work.
-- Under --sim the reader waits for real outside the simulation, which goes
-- on without it (holding the simulation, it stopped main: a hang).
local fifo = os.tmpname()
os.remove(fifo)
assert(os.execute("mkfifo " .. fifo))
local w = assert(io.open(fifo, "r+")) -- a writer: the reader's open does not wait, its read does
local started = gil.value(0)
local reader = gil.spawn(function()
  local f = assert(io.open(fifo, "r"))
  started:set(1)
  local line = f:read("l")
  f:close()
  return line
end)
while started:get() == 0 do
  gil.sleep(0.001)
end
local sum = gil.spawn(function()
  local s = 0
  for i = 1, 100000 do s = s + i end
  return s
end):join()
w:write("line\n")
w:flush()
print(sum, reader:join())
w:close()
os.remove(fifo)
