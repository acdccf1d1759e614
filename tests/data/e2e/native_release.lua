-- native_release.lua release: does another thread run while one is inside
-- gil.native(s, release)? Run with a switch interval so long that no forced
-- switch can happen: then main can take the GIL only if the worker lets go.
-- The worker tells main (through a queue) that it is about to loop, then
-- calls gil.native(0.01, release) until main has set the flag (at most 500
-- times, 5 s of CPU); main sets the flag as soon as it holds the GIL again.
-- Prints how many calls the worker made and whether it saw the flag.
local release = arg[1] == "true"
local q, flag = gil.queue(), gil.value(0)
local w = gil.thread(function()
  q:put("looping")
  local n = 0
  repeat
    gil.native(0.01, release)
    n = n + 1
  until flag:get() == 1 or n == (release and 500 or 20)
  return n, flag:get()
end)
assert(q:get() == "looping")
flag:set(1)
local n, seen = w:join()
print(("calls %d flag_seen %d"):format(n, seen))
