-- workers one after another: their lives never overlap (overlap <= 1)
for i = 1, 3 do gil.spawn(function() gil.sleep(0.02) end):join() end
