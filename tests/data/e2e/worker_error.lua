-- worker_error.lua [uncaught]: a worker fails; main joins it.
local function fails(x)
  local t = nil
  return t.field + x    -- attempt to index a nil value
end
local h = gil.spawn(fails, 1)
if arg[1] == "uncaught" then
  h:join()
  print("not reached")
else
  local ok, err = pcall(h.join, h)
  print("ok", ok)
  print("message:", err)
end
