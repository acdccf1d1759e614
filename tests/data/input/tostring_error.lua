-- An error object that is a table with __tostring, raised where arg[1] says:
-- gilvm prints it as lua5.4 does, with what __tostring gives.
local E = setmetatable({}, { __tostring = function() return "custom error object" end })
local where = arg[1]
if where == "main" then
  error(E)
elseif where == "unjoined" then
  gil.spawn(function() error(E) end)
elseif where == "join" then
  gil.spawn(function() error(E) end):join()
elseif where == "process" then
  gil.process(function() error(E) end):join()
elseif where == "pool" then
  local p = gil.pool(1)
  local f = p:submit(function() error(E) end)
  print(pcall(f.result, f))
  p:close()
end
