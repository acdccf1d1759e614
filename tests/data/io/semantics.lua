-- semantics.lua: Lua's io and os.execute give lua5.4's results, errors and EOF
-- through gilvm's wrappers; run in the main chunk, or ("worker") in a worker.
local dir = assert(arg[1], "a directory")
local function body()
  local out = {}
  local function p(...)
    local t = table.pack(...)
    for i = 1, t.n do t[i] = (tostring(t[i]):gsub(dir:gsub("%p", "%%%0"), "DIR")) end
    out[#out + 1] = table.concat(t, "\t")
  end
  local name = dir .. "/t.txt"
  local f = assert(io.open(name, "w"))
  p(f:write("hello\n", 42, " 3.5 0x10\nlast") == f)
  p(f:close())
  for l in io.lines(name) do p("line", l) end
  f = io.open(name)
  p(f:read("l", "n", "n", "n", "L", "a", "a", "l"))
  p(f:read(0), f:read("n"), f:read(1))                  -- at EOF
  p(f:seek("set", 2), f:read(3), f:seek("cur"), f:seek("end"))
  p(f:close())
  p(pcall(f.read, f))                                    -- closed
  p(io.open(dir .. "/none/x"))
  p(pcall(io.open, name, "rw"))
  p(pcall(io.lines, dir .. "/none"))
  p((select(2, pcall(function() for _ in io.lines(name, "x") do end end)):match("bad argument.*")))
  for a, b in io.lines(name, 1, "l") do p(a, b) end
  local many = {}
  for i = 1, 250 do many[i] = 1 end                       -- more than LUA_MINSTACK values
  local t = { io.lines(name, table.unpack(many))() }
  p(#t, t[1], t[250])
  many[251] = 1
  p((select(2, pcall(io.lines, name, table.unpack(many)))))
  io.input(name); p(io.read("L")); p(io.read("n")); io.close(io.input()); io.input(io.stdin)
  io.output(dir .. "/o.txt"); io.write("out", 1); p(io.close()); io.output(io.stdout)
  f = io.open(dir .. "/o.txt", "a+"); f:write("+"); f:seek("set"); p(f:read("a")); f:close()
  p(os.execute("exit 3"))
  p(os.execute("kill -9 $$"))
  p(os.execute("true"))
  p(os.execute())
  local pp = io.popen("echo hi; echo there")
  p(pp:read("l")); p(pp:read("a")); p(pp:read("l")); p(pp:close())
  pp = io.popen("cat > " .. dir .. "/p.txt", "w")
  p(pp:write("piped\n") == pp); p(pp:close())
  p(io.open(dir .. "/p.txt"):read("a"))
  p(io.popen("exit 5"):close())
  p(pcall(io.popen, "true", "rw"))
  for l in io.popen("printf 'a\\nb'"):lines() do p("popen line", l) end
  return table.concat(out, "\n")
end
if arg[2] == "worker" then
  print(gil.spawn(body):join())
else
  print(body())
end
