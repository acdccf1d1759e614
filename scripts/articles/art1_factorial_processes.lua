-- Article: "Concurrency Control in Python: Threads vs. Multiprocessing"
-- (seed 000), example "Using Multiprocessing for CPU Tasks": one process per
-- number computes math.factorial of 100000, 120000 and 150000.
-- Here: the same shape in Lua, an exact big-number factorial (base 10^7
-- limbs; its cost grows with n squared like the article's), of 5000, 6000
-- and 7500 by default. Each worker prints the number of digits and the first
-- ten, which are exact (7500! has 25809 digits).
--
-- Claim: processes bypass the GIL, so CPU-bound work runs in parallel.
-- gilvm shows:
--   gil:   threads under one GIL: parallelism about 1.0x, the wall time is the
--          sum of the three factorials; forced switches share the GIL.
--   nogil: parallelism up to the number of cores (about 2x on 2 cores).
--   fork:  the article's processes: the same parallelism as nogil, plus
--          fork start-up and the copied results (small here: two numbers).
-- Too simple: the speedup is bounded by the cores and by the largest task:
-- with three tasks on two cores, or one task far bigger than the others
-- (try 1000 1000 9000), the wall time is the biggest task's, whatever the mode.
--
-- usage: gilvm [-m gil|nogil|fork] scripts/articles/art1_factorial_processes.lua [n ...]
local numbers = {}
for i = 1, (arg and #arg or 0) do numbers[i] = math.tointeger(tonumber(arg[i])) end
if #numbers == 0 then numbers = { 5000, 6000, 7500 } end

-- n! as an array of base-10^7 limbs, least significant first.
function factorial(n)
  local limbs, base = { 1 }, 10000000
  for k = 2, n do
    local carry = 0
    for i = 1, #limbs do
      local v = limbs[i] * k + carry
      limbs[i] = v % base
      carry = v // base
    end
    while carry > 0 do
      limbs[#limbs + 1] = carry % base
      carry = carry // base
    end
  end
  local top = tostring(limbs[#limbs])
  local digits = #top + 7 * (#limbs - 1)
  local lead = top
  for i = #limbs - 1, 1, -1 do
    if #lead >= 10 then break end
    lead = lead .. ("%07d"):format(limbs[i])
  end
  return digits, lead:sub(1, 10)
end

function compute_factorial(n)
  io.write(("Computing factorial of %d...\n"):format(n))
  local digits, lead = factorial(n)
  io.write(("Factorial of %d = %s... (%d digits)\n"):format(n, lead, digits))
end

local t0 = gil.now()
local processes = {}
for _, num in ipairs(numbers) do processes[#processes + 1] = gil.spawn(compute_factorial, num) end
for _, p in ipairs(processes) do p:join() end
gil.report("wall_s", gil.now() - t0)
