-- queue_join.lua: queue.Queue's task_done/join, and put(nil) is an error.
local q, done = gil.queue(), gil.value(0)
print("put nil", pcall(q.put, q, nil))
print("task_done unput", pcall(q.task_done, q))
print("join empty", q:join())
local function worker(q, done)
  while true do
    local v = q:get()
    if v == "stop" then q:task_done(); return end
    gil.sleep(0.001)
    done:add(v)
    q:task_done()
  end
end
local ws = { gil.spawn(worker, q, done), gil.process(worker, q, done) }
for i = 1, 20 do q:put(i) end
print("joined", q:join(), "done", done:get())
q:put("stop")
q:put("stop")
for _, w in ipairs(ws) do w:join() end
print("workers done", q:join(0), q:size())
-- nobody takes this one: join times out until it is marked done
q:put(1)
print("join timeout", q:join(0), q:join(0.01))
q:get()
q:task_done()
print("end", q:join(0), q:size())
