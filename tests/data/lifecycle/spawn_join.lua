-- n spawn+join cycles whose handles are dropped; prints the live worker
-- records left after a full collection, and VmRSS at n/10 and at the end.
local n = tonumber(arg[1])
local function rss()
  for l in io.lines("/proc/self/status") do
    local kb = l:match("^VmRSS:%s+(%d+)")
    if kb then return tonumber(kb) end
  end
end
local mid
for i = 1, n do
  gil.spawn(function() return i end):join()
  if i == n // 10 then collectgarbage() mid = rss() end
end
collectgarbage()
collectgarbage()
local d = gil._debug and gil._debug() or { records = -1, released = -1 }  -- (absent before issue 7)
print("records " .. d.records .. " released " .. d.released .. " rss_mid " .. mid .. " rss_end " .. rss())
