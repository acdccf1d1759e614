-- Puts a 2 MiB string through a queue (copied into the shared arena in
-- nogil mode): "fits", or "full" when the arena is smaller.
local q = gil.queue()
local ok, err = pcall(q.put, q, string.rep("x", 2 << 20))
if ok then
  assert(#q:get() == 2 << 20)
  print("fits")
elseif tostring(err):find("arena is full", 1, true) then
  print("full")
else
  error(err)
end
