-- pool_error.lua: a task's error is re-raised by result() and map(), with the
-- worker's traceback; the pool keeps working.
local p = gil.pool(2)
local function boom(x)
  if x == 3 then error("boom at " .. x) end
  return x
end
local f = p:submit(boom, 3)
local ok, err = pcall(f.result, f)
print("result", ok)
print("has message", err:find("boom at 3", 1, true) ~= nil)
print("has traceback", err:find("stack traceback", 1, true) ~= nil)
print("names the function", err:find("pool_error.lua:5", 1, true) ~= nil)
ok, err = pcall(p.map, p, boom, { 1, 2, 3, 4, 5 }, 1)
print("map", ok, err:find("boom at 3", 1, true) ~= nil)
print("still works", table.concat(p:map(boom, { 1, 2 }), ","))
p:close()
local pp = gil.pool(1, "process")  -- copies in every mode
ok, err = pcall(pp.submit, pp, boom, io.stdout)
print("uncopyable argument", ok, err)
pp:close()
