# spawn_mp.py: CPython twin of `gilvm -m fork bench/spawn.lua` for bench/run
# row 9. Starts and joins one multiprocessing Process (fork start method) at
# a time, N times, and prints the mean microseconds per start+join (after a
# short untimed warm-up).
#
# usage: python3 bench/spawn_mp.py [n]
import multiprocessing
import sys
import time

n = int(sys.argv[1]) if len(sys.argv) > 1 else 500
ctx = multiprocessing.get_context("fork")


def nothing():
    pass


def spawn_join(count):
    for _ in range(count):
        p = ctx.Process(target=nothing)
        p.start()
        p.join()


spawn_join(10)
t0 = time.perf_counter()
spawn_join(n)
print(f"{(time.perf_counter() - t0) / n * 1e6:.2f}")
