-- subproc.lua: under --sim, a worker waiting for its own child steps out of
-- the simulation (the others go on) and the wait takes the child's real time
-- in virtual time. arg[1]:
--   execute    4 workers each os.execute("sleep 0.3")
--   popen      4 workers each read a line of io.popen("sleep 0.3; echo x")
--   handshake  one worker's child waits for a file that only another worker
--              creates, after the child said it runs (held simulation: a hang)
-- arg[2]: a directory of its own (handshake).
local how, dir = arg[1], arg[2]

local jobs = {
  execute = function() return os.execute("sleep 0.3") end,
  popen = function()
    local p = io.popen("sleep 0.3; echo x")
    local line = p:read("l")
    p:close()
    return line == "x"
  end,
}

if how == "handshake" then
  local started, go = dir .. "/started", dir .. "/go"
  local child = gil.spawn(function()
    return os.execute(("touch %q; while [ ! -e %q ]; do sleep 0.01; done"):format(started, go))
  end)
  local other = gil.spawn(function()
    while true do -- the child runs: its worker is out of the simulation, waiting for it
      local f = io.open(started)
      if f then
        f:close()
        break
      end
      gil.sleep(0.001)
    end
    assert(io.open(go, "w")):close()
    return true
  end)
  print("other", other:join())
  print("child", child:join())
  return
end

-- Each worker's gil.now() before and after its wait.
local ws = {}
for i = 1, 4 do
  ws[i] = gil.spawn(function()
    local t0 = gil.now()
    local ok = jobs[how]()
    return t0, gil.now(), ok
  end)
end
local last_start, first_end, shortest, all_ok = -math.huge, math.huge, math.huge, true
for i = 1, 4 do
  local t0, t1, ok = ws[i]:join()
  last_start, first_end = math.max(last_start, t0), math.min(first_end, t1)
  shortest = math.min(shortest, t1 - t0)
  all_ok = all_ok and ok == true
end
print("ok", all_ok)
print("each took at least 0.3 s", shortest >= 0.3)
print("they overlapped", last_start < first_end) -- each began before any ended
