-- 60 workers sleeping 10 ms at once; joined, then collected: past the
-- report's first 40 rows, their records are freed and only sums remain
local ws = {}
for i = 1, 60 do ws[i] = gil.spawn(function() gil.sleep(0.01) end) end
for i = 1, 60 do ws[i]:join() end
ws = nil
collectgarbage()
collectgarbage()
