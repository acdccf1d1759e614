-- odd_names.lua: a worker and figures named with what JSON must escape or
-- cannot carry as it is: quotes, a backslash, a newline, a tab, a control
-- character, and bytes that are not UTF-8 (a lone 0xff, a cut-off sequence).
local odd = 'q"uo\\te\n\t\1 \xff\xc3('
local w = gil.spawn(function() return 1 end)
w.name = odd
w:join()
gil.report(odd, odd)
gil.report('n "1"', 42)
gil.report('ratio', 0.125)
