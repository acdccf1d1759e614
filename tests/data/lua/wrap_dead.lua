-- coroutine.wrap after its coroutine died with an error (issue 7): calling
-- the wrapper again must raise "cannot resume dead coroutine", never run the
-- error object left behind as a function.
local co = coroutine.wrap(function()
  error(function(...) print("ERROR OBJECT CALLED", ...) return "zombie" end)
end)
local ok, err = pcall(co)
print(ok, type(err))
print(pcall(co, "arg"))
