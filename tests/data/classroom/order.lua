-- compare fixture: the same lines, in another order outside gil mode
local words = { "alpha", "beta", "gamma" }
if gil.mode() ~= "gil" then words = { "gamma", "beta", "alpha" } end
for _, w in ipairs(words) do print("worker " .. w .. " done") end
