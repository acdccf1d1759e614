-- array.lua: a shared array of numbers; add is atomic across workers.
local n = tonumber(arg[1]) or 500
local a = gil.array(3)
local function add(a, n) for i = 1, n do a:add(1, 1); a:add(2, 0.5); a[3] = i end end
local ws = { gil.spawn(add, a, n), gil.spawn(add, a, n), gil.process(add, a, n) }
for _, w in ipairs(ws) do w:join() end
print("sums", a[1], a[2], a[3], "types", math.type(a[1]), math.type(a[2]), "len", #a)
local b = gil.array({ 1, 2.5, -3 })
print("from list", table.concat(b:totable(), " "), math.type(b[3]))
local c = gil.array(2, 7)
print("init", c[1], c[2])
local function bare(ok, err) return ok, (err:gsub("^.-:%d+: ", "")) end -- no file:line: paths differ
print("out of range", bare(pcall(function() return c[3] end)))
print("bad set", bare(pcall(function() c[1] = "x" end)))
print("bad list", pcall(gil.array, { 1, "x" }))
