-- Runs one Lua test file (arg 1) inside a worker of the mode's kind and
-- joins it: a worker's error is re-raised here, so gilvm exits 1.
local file = ...
local h = gil.spawn(function(f) return dofile(f) end, file)
h:join()
