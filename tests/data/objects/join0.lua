-- join0.lua: join(0) on a process that has finished returns its results.
local h = gil.process(function() return 42 end)
local t0, r, why = gil.now()
repeat
  r, why = h:join(0)
  if r == nil then gil.sleep(0.01) end
until r ~= nil or gil.now() - t0 > 20
print("join(0)", r, why)
