-- futures.lua: gil.wait and gil.as_completed over pool futures; a pool <close>.
local gate = gil.event()
local pool_ref
do
  local pool <close> = gil.pool(2)
  pool_ref = pool
  local slow = pool:submit(function(gate) gate:wait(); return "slow" end, gate)
  local fast = pool:submit(function() return "fast" end)
  local done, not_done = gil.wait({ slow, fast }, nil, "first")
  print("first", #done, done[1] == fast, #not_done, not_done[1] == slow)
  local d, nd = gil.wait({ slow, fast }, 0.01)
  print("timeout", #d, #nd)
  local ok, err = pcall(function() for _ in gil.as_completed({ slow }, 0.01) do end end)
  print("as_completed timeout", ok, (err:gsub("^.-:%d+: ", ""))) -- no file:line: paths differ
  gate:set()
  local order = {}
  for f in gil.as_completed({ slow, fast }) do order[#order + 1] = f:result() end
  table.sort(order)
  print("as_completed", table.concat(order, " "))
  d, nd = gil.wait({ slow, fast })
  print("all", #d, #nd)
  print("bad", pcall(gil.wait, { 1 }), pcall(gil.wait, {}, nil, "any"))
end
print("closed by <close>", tostring(pool_ref))
