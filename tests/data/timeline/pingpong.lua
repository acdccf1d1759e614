-- pingpong.lua [rounds]: two threads that never block take turns through a
-- shared value. Each spins, holding the GIL, until it is its turn, so a turn
-- can only come once the other spinner was made to drop the GIL: at least
-- 2 * rounds - 2 forced switches (legacy: releases; the first and the last
-- turn may come without one), whatever the speed or the load of the machine.
-- Used by tests/test_timeline.c.
local rounds = tonumber(arg[1]) or 20
local turn = gil.value(0)

local function player(me)
  for i = 0, rounds - 1 do
    local mine = 2 * i + me
    while turn:get() ~= mine do end
    turn:set(mine + 1)
  end
end

local a, b = gil.spawn(player, 0), gil.spawn(player, 1)
a:join()
b:join()
print("turns", turn:get())
