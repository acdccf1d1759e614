-- A module with state, for tests/test_sim.c (processes): a process inherits it as a forked child does.
local M = { count = 0 }
function M.bump()
  M.count = M.count + 1
  return M.count
end
return M
