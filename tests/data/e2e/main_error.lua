-- main_error.lua: the main chunk fails two calls deep.
local function inner() error("main boom") end
local function outer() inner() end
print("before")
outer()
print("not reached")
