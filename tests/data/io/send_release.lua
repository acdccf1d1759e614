-- Every c:send and every c:recv releases the GIL around its system call, even
-- when it does not block (as CPython's socket methods do): main's GIL
-- acquisitions count them. 200 one-byte sends fit in the socket's buffer
-- (none blocks), then 200 one-byte recvs of bytes already there.
local srv = gil.listen(0)
local c = gil.connect("127.0.0.1", srv:port())
local s = srv:accept()
for _ = 1, 200 do c:send("x") end
local got = 0
while got < 200 do
  local d = s:recv(1)
  got = got + #d
end
print("sent and received", got)
