-- bigoutput.lua [kib]: writes kib KiB to stdout and half as much to stderr,
-- interleaved, to check nothing deadlocks on a full pipe and nothing is lost.
local kib = tonumber(arg[1]) or 1024
local line = string.rep("o", 63) .. "\n"
local eline = string.rep("e", 63) .. "\n"
for i = 1, kib * 16 do
  io.stdout:write(line)
  if i % 2 == 0 then io.stderr:write(eline) end
end
