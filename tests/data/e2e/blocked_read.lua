-- blocked_read.lua: main blocks in a C call (gil._block) while holding the GIL,
-- so no check point is ever reached; a worker waits for the GIL meanwhile.
gil.spawn(function() return 1 end)
print("ready")
io.stdout:flush()
gil._block()
print("not reached")
