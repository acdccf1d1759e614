-- queue_identity.lua: gil mode passes references (the receiver's change is
-- seen by the sender), nogil and fork pass copies.
local q, back = gil.queue(), gil.queue()
local t = { n = 1 }
local function receiver()
  local x = q:get()
  x.n = x.n + 1
  x.seen = true
  back:put(x)
  return "received"
end
local h = gil.spawn(receiver)
q:put(t)
local x = back:get()
print("worker", h:join())
print("sender sees the change", t.seen == true, t.n)
print("same table back", x == t, x.n)
