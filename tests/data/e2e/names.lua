-- names.lua: thread names and handles.
function crunch() return gil.current().name end
local function local_fn() return gil.current().name, gil.current().id end
print("main", gil.current().name, gil.current().id, tostring(gil.current()))
local g = gil.spawn(crunch)
print("global", g.name, g.id, g:join())
local l = gil.spawn(local_fn)
print("local", l.name, l.id, l:join())
local anon = gil.spawn(function() return 1 end)
print("anon", anon.name)
anon:join()
local r = gil.spawn(function() return gil.current().name end)
r.name = "renamed worker"
print("renamed", r.name, r:join())
print("set id", pcall(function() r.id = 5 end))
print("unknown field", r.nosuchfield)
