-- compare fixture: lines that differ only in timings
local t = { gil = "0.0123", nogil = "0.0457", fork = "0.0891" }
print("3 tasks")
print("took " .. t[gil.mode()] .. " s")
print(("elapsed %d ms"):format(gil.mode() == "gil" and 12 or 45))
