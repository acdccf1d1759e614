-- pool_map.lua: map returns results in order, whatever the kind and chunksize.
local n = tonumber(arg[1]) or 50
local list = {}
for i = 1, n do list[i] = i end
local offset = 100
local function f(x) return x * x + offset end
local expected = {}
for i = 1, n do expected[i] = f(i) end
local expected_s = table.concat(expected, " ")
for _, kind in ipairs({ "default", "thread", "process" }) do
  local p = gil.pool(3, kind ~= "default" and kind or nil)
  for _, chunk in ipairs({ 1, 7 }) do
    local r = p:map(f, list, chunk)
    print(kind, "chunksize " .. chunk, #r == n and table.concat(r, " ") == expected_s)
  end
  local r = p:map(f, list)
  print(kind, "default chunksize", table.concat(r, " ") == expected_s)
  print(kind, "empty", #p:map(f, {}))
  p:close()
  p:close()  -- idempotent
  print(kind, "closed", pcall(p.map, p, f, list))
end
