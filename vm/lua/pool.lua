-- pool.lua — gil.pool: a pool of workers, built on gil.queue.
--
-- Embedded in gilvm at build time (tools/embed.py) and compiled the first
-- time gil.pool is called in an interpreter (vm/objects.c). The chunk gets
-- the gil module and a few C helpers, and returns the constructor.
--
-- Design. A pool is n workers (gil.spawn, gil.thread or gil.process) and two
-- queues. Each task is a table {id, fn, args, map} on the task queue; a
-- worker takes one, runs it under xpcall, and puts {id, ok, res} on the
-- result queue. In gil mode with thread workers the queues pass references,
-- so a task costs no copying; otherwise fn and its arguments travel as bytes
-- every time (the marshaller), like pickled tasks in multiprocessing.
--
-- Whoever waits for a result reads the result queue in short slices and
-- keeps results that belong to other tasks for later. Between slices it
-- looks at the workers (join with timeout 0): a worker that ended while the
-- pool is open, normally or not (a process that called os.exit or was
-- killed), breaks the pool: every pending and future result then raises
-- "pool is broken: <why>" instead of waiting forever, and pending tasks are
-- dropped. A pool belongs to the interpreter (and process) that made it.
local gil, priv = ...

local pack, unpack = table.pack, table.unpack
local type, error, pcall, xpcall, tostring = type, error, pcall, xpcall, tostring
local SLICE = 0.1  -- seconds between looks at the workers while waiting

-- ---------------------------------------------------------------- workers

-- As lua5.4's message handler: numbers read as strings, __tostring if it gives one.
local function traceback(e)
  if type(e) == "number" then e = tostring(e)
  elseif type(e) ~= "string" then
    local mt = debug.getmetatable(e)
    local ts = mt and rawget(mt, "__tostring")
    if ts then
      local s = ts(e)
      if type(s) == "string" then return s end
    end
    e = "(error object is a " .. type(e) .. " value)"
  end
  return debug.traceback(e, 2)
end

-- What every worker runs, in a thread, an interpreter or a process of its own.
local function pool_worker(tasks, results)
  local me = gil.current().id
  while true do
    local task = tasks:get()
    if task == nil then return end  -- closed and drained
    local fn, args = task.fn, task.args
    local ok, res
    if task.map then
      ok, res = xpcall(function()
        local out = { n = args.n }
        for i = 1, args.n do out[i] = (fn(args[i])) end
        return out
      end, traceback)
    else
      ok, res = xpcall(function() return pack(fn(unpack(args, 1, args.n))) end, traceback)
    end
    local sent, err = pcall(results.put, results, { id = task.id, ok = ok, res = res, worker = me })
    if not sent then
      results:put({ id = task.id, ok = false, worker = me,
                    res = "cannot send the task's results back: " .. tostring(err) })
    end
  end
end

-- ------------------------------------------------------------------- pool

local Pool = {}
Pool.__index = Pool
local Future = {}
Future.__index = Future
local npools = 0

local function spawner(kind)
  if kind == nil then return gil.spawn end
  if kind == "thread" then return gil.thread end
  if kind == "process" then return gil.process end
  error(("bad argument #2 to 'pool' (\"thread\" or \"process\" expected, got %s)"):format(
    type(kind) == "string" and ("'" .. kind .. "'") or type(kind)), 3)
end

local function new(n, kind)
  if n == nil then n = gil.cpu_count() end
  if math.type(n) ~= "integer" or n < 1 then
    error("bad argument #1 to 'pool' (positive integer expected)", 2)
  end
  local spawn = spawner(kind)
  npools = npools + 1
  local tasks, results = gil.queue(), gil.queue()
  local self = setmetatable({
    _tasks = tasks, _results = results, _n = n, _workers = {}, _next = 0,
    _done = {},       -- results that arrived for tasks nobody is waiting for yet
    _abandoned = {},  -- tasks whose results nobody will want (a failed map)
    _closed = false, _broken = nil,
    _owner = priv.owner(), _reg = priv.register(tasks, results),
  }, Pool)
  for i = 1, n do
    local ok, h = pcall(spawn, pool_worker, tasks, results)
    if not ok then
      self:close()
      error("cannot start the pool's workers: " .. tostring(h), 2)
    end
    h.name = ("%d:pool%d-%d"):format(h.id, npools, i)
    self._workers[i] = { h = h }
  end
  return self
end

-- The pool is broken: remember why (the first reason wins), drop pending tasks.
function Pool:_break(why)
  self._broken = self._broken or why
  pcall(self._tasks.close, self._tasks)
  repeat
    local ok, task = pcall(self._tasks.get, self._tasks, 0)
  until not ok or task == nil
end

-- Look at the workers without waiting; a worker that ended breaks an open pool.
function Pool:_check()
  local alive = 0
  for _, w in ipairs(self._workers) do
    if not w.finished then
      local ok, a, b = pcall(w.h.join, w.h, 0)
      if ok and a == nil and b == "timeout" then
        alive = alive + 1
      else
        w.finished = true
        if not ok then
          self:_break(tostring(a))
        elseif not self._closed then
          self:_break(("worker '%s' exited"):format(w.h.name))
        end
      end
    end
  end
  return alive
end

-- Move what is already on the result queue into _done.
function Pool:_drain()
  while true do
    local ok, item = pcall(self._results.get, self._results, 0)
    if not ok or item == nil then return end
    self:_keep(item)
  end
end

function Pool:_keep(item)
  if self._abandoned[item.id] then self._abandoned[item.id] = nil
  else self._done[item.id] = item end
end

-- The result record of task id: waits up to timeout (nil: forever).
function Pool:_wait(id, timeout)
  local deadline = timeout and gil.now() + timeout
  while true do
    local r = self._done[id]
    if r then
      self._done[id] = nil
      return r
    end
    if self._broken then
      self:_drain()
      r = self._done[id]
      if r then
        self._done[id] = nil
        return r
      end
      error("pool is broken: " .. self._broken, 0)
    end
    local slice = SLICE
    if deadline then slice = math.max(0, math.min(SLICE, deadline - gil.now())) end
    local item = self._results:get(slice)
    if item ~= nil then
      if item.id == id then return item end
      self:_keep(item)
    else
      local alive = self:_check()
      if alive == 0 and not self._broken and not self._done[id] then
        self:_drain()
        if not self._done[id] then
          self:_break("its workers have all exited and the result never came")
        end
      elseif deadline and gil.now() >= deadline and not self._done[id] and not self._broken then
        return nil, "timeout"
      end
    end
  end
end

local function failure(self, r)
  local name = "?"
  for _, w in ipairs(self._workers) do
    if w.h.id == r.worker then name = w.h.name end
  end
  return ("error in pool task (worker '%s'): %s"):format(name, tostring(r.res))
end

-- Queue a task: a future, or nil and why not.
function Pool:_submit(fn, args, map)
  if self._closed then return nil, "pool is closed" end
  if self._broken then return nil, "pool is broken: " .. self._broken end
  self._next = self._next + 1
  local id = self._next
  local ok, err = pcall(self._tasks.put, self._tasks, { id = id, fn = fn, args = args, map = map })
  if not ok then return nil, "cannot submit the task: " .. tostring(err) end
  return setmetatable({ _pool = self, _id = id }, Future)
end

function Pool:submit(fn, ...)
  if type(fn) ~= "function" then error("bad argument #1 to 'submit' (function expected)", 2) end
  local f, err = self:_submit(fn, pack(...), nil)
  if not f then error(err, 2) end
  return f
end

function Pool:map(fn, list, chunksize)
  if type(fn) ~= "function" then error("bad argument #1 to 'map' (function expected)", 2) end
  if type(list) ~= "table" then error("bad argument #2 to 'map' (table expected)", 2) end
  local n = #list
  if chunksize == nil then chunksize = math.max(1, math.ceil(n / (4 * self._n))) end
  if math.type(chunksize) ~= "integer" or chunksize < 1 then
    error("bad argument #3 to 'map' (positive integer expected)", 2)
  end
  local ids = {}
  for i = 1, n, chunksize do
    local chunk = { n = 0 }
    for j = i, math.min(i + chunksize - 1, n) do
      chunk.n = chunk.n + 1
      chunk[chunk.n] = list[j]
    end
    local f, err = self:_submit(fn, chunk, true)
    if not f then
      for _, id in ipairs(ids) do self:_forget(id) end
      error(err, 2)
    end
    ids[#ids + 1] = f._id
  end
  local out, k = {}, 0
  for i, id in ipairs(ids) do
    local ok, r = pcall(self._wait, self, id)
    if ok and not r.ok then ok, r = false, failure(self, r) end
    if not ok then
      for j = i + 1, #ids do self:_forget(ids[j]) end
      error(r, 0)
    end
    for j = 1, r.res.n do out[k + j] = r.res[j] end
    k = k + r.res.n
  end
  return out
end

-- Nobody will ask for task id's result.
function Pool:_forget(id)
  if self._done[id] then self._done[id] = nil else self._abandoned[id] = true end
end

-- No more tasks; wait for the workers to finish those already submitted.
function Pool:close()
  if not self._closed then
    self._closed = true
    pcall(self._tasks.close, self._tasks)
  end
  for _, w in ipairs(self._workers) do
    if not w.finished then
      local ok, err = pcall(w.h.join, w.h)
      w.finished = true
      if not ok then self:_break(tostring(err)) end
    end
  end
  if self._reg then
    priv.unregister(self._reg)
    self._reg = nil
  end
end

function Pool:__gc()
  -- a copy of the pool in another interpreter or a fork child is not the pool
  if self._reg and not self._closed and priv.owner() == self._owner then priv.abandon(self._reg) end
end

-- `local pool <close> = gil.pool(n)`: leaving the block closes the pool, as
-- leaving Python's `with Executor() as pool:` shuts it down and waits.
function Pool:__close()
  self:close()
end

-- Wait up to timeout for one more result to arrive (or a worker to end).
function Pool:_step(timeout)
  local item = self._results:get(timeout)
  if item ~= nil then self:_keep(item) else self:_check() end
end

function Pool:__tostring()
  return ("gil.pool: %d workers%s"):format(self._n,
    self._broken and " (broken)" or self._closed and " (closed)" or "")
end

-- ----------------------------------------------------------------- future

-- The task's results, or nil, "timeout"; raises the task's error.
function Future:result(timeout)
  if not self._r then
    local r, why = self._pool:_wait(self._id, timeout)
    if r == nil then return nil, why end
    self._r = r
  end
  local r = self._r
  if not r.ok then error(failure(self._pool, r), 0) end
  return unpack(r.res, 1, r.res.n)
end

-- Whether the result is there (never waits).
function Future:done()
  if self._r then return true end
  local ok, r = pcall(self._pool._wait, self._pool, self._id, 0)
  if ok and r then self._r = r end
  return self._r ~= nil or not ok
end

function Future:__tostring()
  return ("gil.pool future #%d%s"):format(self._id, self._r and " (done)" or "")
end

-- ---------------------------------------------- concurrent.futures.wait

local function check_futures(fs, fname)
  if type(fs) ~= "table" then error(("bad argument #1 to '%s' (table of futures expected)"):format(fname), 3) end
  for i, f in ipairs(fs) do
    if getmetatable(f) ~= Future then
      error(("bad argument #1 to '%s' (item %d is not a pool future)"):format(fname, i), 3)
    end
  end
end

local function check_timeout(timeout, fname)
  if timeout ~= nil and (type(timeout) ~= "number" or timeout < 0) then
    error(("bad argument #2 to '%s' (non-negative number of seconds expected)"):format(fname), 3)
  end
  return timeout and gil.now() + timeout
end

-- Block for a slice on the pool of one pending future.
local function step(pending, deadline)
  local slice = SLICE
  if deadline then slice = math.max(0, math.min(SLICE, deadline - gil.now())) end
  pending._pool:_step(slice)
end

-- gil.wait(futures [, timeout [, "all" | "first"]]) -> done, not_done
local function wait(fs, timeout, mode)
  check_futures(fs, "wait")
  local deadline = check_timeout(timeout, "wait")
  mode = mode or "all"
  if mode ~= "all" and mode ~= "first" then
    error("bad argument #3 to 'wait' (\"all\" or \"first\" expected)", 2)
  end
  while true do
    local done, not_done = {}, {}
    for _, f in ipairs(fs) do
      if f:done() then done[#done + 1] = f else not_done[#not_done + 1] = f end
    end
    if #not_done == 0 or (mode == "first" and #done > 0)
      or (deadline and gil.now() >= deadline) then
      return done, not_done
    end
    step(not_done[1], deadline)
  end
end

-- for f in gil.as_completed(futures [, timeout]) do ... end: each future
-- once, as it finishes; raises "as_completed: timeout" when time runs out.
local function as_completed(fs, timeout)
  check_futures(fs, "as_completed")
  local deadline = check_timeout(timeout, "as_completed")
  local pending = {}
  for i, f in ipairs(fs) do pending[i] = f end
  return function()
    while #pending > 0 do
      for i, f in ipairs(pending) do
        if f:done() then return table.remove(pending, i) end
      end
      if deadline and gil.now() >= deadline then
        error(("as_completed: timeout (%d of %d futures unfinished)"):format(#pending, #fs), 2)
      end
      step(pending[1], deadline)
    end
    return nil
  end
end

return { new = new, wait = wait, as_completed = as_completed }
