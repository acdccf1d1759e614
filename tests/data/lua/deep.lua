-- Stack overflows (about 190k Lua frames each) while another thread waits
-- for the GIL: arming the breaker costs O(stack depth), so it must be armed
-- once per drop request, not once per switch interval.
local status, main = coroutine.status, coroutine.running()
gil.thread(function()
  local x = 0
  while status(main) == "normal" do
    for i = 1, 1000 do x = (x + i) % 1000003 end
  end
end)
local function f(n) return 1 + f(n + 1) end
for i = 1, (tonumber(arg[1]) or 2) do print(pcall(f, 1)) end
