-- where_switch.lua: where does the GIL take a running thread away?
-- A subject loops over lines most of which hold no check point; an observer
-- sleeps, so the subject runs, then wants the GIL back: the subject hands it
-- over at its next check point and stays there while the observer looks at
-- its stack (debug.getinfo on the subject's Lua thread: the line it will run next).
-- usage: gilvm -s 0.1ms where_switch.lua [samples]
local samples = tonumber(arg and arg[1]) or 200
local subject_co, stop, started = nil, false, false

local function subject()
  subject_co = coroutine.running()
  started = true
  local x, y = 0, 1
  repeat
    for i = 1, 50 do
      x = x + i
      y = y * 3 % 1000003
      x = x ~ y
    end
    y = y + x % 7
  until stop
  return x
end

local function observer()
  local seen = {}
  while not started do gil.sleep(0.0001) end
  for _ = 1, samples do
    gil.sleep(0.0001) -- the subject runs; waking, we ask for the GIL back
    local info = debug.getinfo(subject_co, 0, "l")
    local line = info and info.currentline or -1
    seen[line] = (seen[line] or 0) + 1
  end
  stop = true
  return seen
end

local s = gil.spawn(subject)
local o = gil.spawn(observer)
local seen = o:join()
s:join()
local lines = {}
for line in pairs(seen) do lines[#lines + 1] = line end
table.sort(lines)
for _, line in ipairs(lines) do print(("stopped at line %d: %d times"):format(line, seen[line])) end
