-- facts.lua: gil.mode, cpu_count, now, switch interval, require.
print("mode", gil.mode())
local n = gil.cpu_count()
print("cpu_count", math.type(n), n >= 1)
print("initial interval", gil.getswitchinterval())
gil.setswitchinterval(0.001)
print("after set 0.001", gil.getswitchinterval())
gil.setswitchinterval(0.02)
print("after set 0.02", gil.getswitchinterval())
print("set 0", pcall(gil.setswitchinterval, 0))
print("require", require("gil") == gil, package.loaded.gil == gil)
local prev, mono = gil.now(), true
for _ = 1, 1000 do
  local t = gil.now()
  if t < prev then mono = false end
  prev = t
end
local t0 = gil.now()
gil.sleep(0.02)
local slept = gil.now() - t0
print("now monotonic", mono, "sleep 0.02 advanced >= 0.019", slept >= 0.019)
