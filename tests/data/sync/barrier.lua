-- barrier.lua: n parties, several rounds, distinct indexes; a timeout breaks it for all.
local n, rounds = 4, 5
local b, sum = gil.barrier(n), gil.array(rounds)
local function party(b, sum, rounds)
  local seen = {}
  for r = 1, rounds do
    local i = b:wait()
    sum:add(r, 1 << i) -- each index once per round: the bits add up to 2^n - 1
    seen[#seen + 1] = i
  end
  return #seen
end
local ws = { gil.spawn(party, b, sum, rounds), gil.spawn(party, b, sum, rounds),
             gil.process(party, b, sum, rounds) }
party(b, sum, rounds)
for _, w in ipairs(ws) do w:join() end
print("rounds", table.concat(sum:totable(), ","), "parties", b:parties(), "broken", b:broken())
-- one waiter alone times out: the barrier breaks, for it and for the others
local b2, waiting = gil.barrier(3), gil.value(0)
local w = gil.spawn(function(b2, waiting)
  waiting:add(1)
  return pcall(b2.wait, b2)
end, b2, waiting)
while b2:n_waiting() < 1 do gil.sleep(0.001) end
print("timed out", pcall(b2.wait, b2, 0.01))
print("other waiter", w:join())
print("broken", b2:broken(), pcall(b2.wait, b2))
b2:reset()
print("reset", b2:broken(), b2:n_waiting())
local b3 = gil.barrier(2)
local w3 = gil.spawn(function(b3) return b3:wait() end, b3)
local mine = b3:wait()
print("two parties", mine + w3:join())
b3:abort()
print("aborted", pcall(b3.wait, b3))
print("bad", pcall(gil.barrier, 0))
