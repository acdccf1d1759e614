-- Given to gilvm with -e before a test file: a thread that computes while
-- the main chunk runs, so the main thread is forced to switch in the middle
-- of the tests. It stops when the main thread has finished (its status is
-- no longer "normal"), whether the file passed or failed. Locals only:
-- all.lua erases the globals at its end.
local status, main = coroutine.status, coroutine.running()
gil.thread(function()
  local x = 0
  while status(main) == "normal" do
    for i = 1, 1000 do x = (x + i) % 1000003 end
  end
  return x
end)
