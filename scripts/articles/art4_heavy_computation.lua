-- Article: "Python is often criticized for being slow or single-threaded..."
-- (an untitled guide to threading and multiprocessing; seed 003),
-- example "Parallel Image Processing or
-- Math": heavy_computation(n) = sum(i*i for i in range(n)), mapped with
-- multiprocessing.Pool over 20 numbers of about 10,000,000.
-- Here 20 numbers of about 2,000,000 by default; each sum is printed and
-- checked against (n-1)n(2n-1)/6.
--
-- Claim: a process pool bypasses the GIL for CPU-bound work.
-- gilvm shows (gil.pool of gil.cpu_count() workers of the mode's kind; the
-- figure "duration_s" is the article's):
--   gil:   threads under one GIL: parallelism about 1.0x.
--   nogil: about cpu_count() times faster (2x on 2 cores).
--   fork:  the article's processes: the same as nogil, plus fork start-up;
--          only numbers cross the pipes, so copying is cheap.
-- Too simple: "bypasses the GIL" means "uses more cores": on a machine whose
-- cores are busy with other work the gain shrinks (compare the report's cpu
-- with wall), and a pool of more workers than cores gains nothing more.
--
-- usage: gilvm [-m MODE] scripts/articles/art4_heavy_computation.lua [numbers] [base n]
local count = tonumber(arg and arg[1]) or 20
local base = tonumber(arg and arg[2]) or 2000000

function heavy_computation(n)
  local s = 0
  for i = 0, n - 1 do s = s + i * i end
  return s
end

local numbers = {}
for x = 0, count - 1 do numbers[#numbers + 1] = base + x end

local start_time = gil.now()
local results
do
  local pool <close> = gil.pool(gil.cpu_count())
  results = pool:map(heavy_computation, numbers)
end
gil.report("duration_s", gil.now() - start_time)
-- (n-1)n(2n-1)/6 without overflowing 64 bits: divide before multiplying
local function closed_form(n)
  local m = (n - 1) * n // 2
  if m % 3 == 0 then return m // 3 * (2 * n - 1) end
  return m * ((2 * n - 1) // 3)
end
local right = 0
for i, n in ipairs(numbers) do
  if results[i] == closed_form(n) then right = right + 1 end
end
print(("%d sums, first %d, last %d, %d right"):format(#results, results[1], results[#results], right))
