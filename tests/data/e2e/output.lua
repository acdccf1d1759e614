-- output.lua: writes known text to stdout, from main and from a worker.
-- test_e2e compares stdout byte for byte and checks none of it reached stderr.
print("line one")
io.write("no newline, then tab\t|")
io.write("\n")
local h = gil.spawn(function(s) print("from worker: " .. s) end, "payload")
h:join()
print(("%d %s %.2f"):format(7, "seven", 7.0))
io.write("last line without newline")
