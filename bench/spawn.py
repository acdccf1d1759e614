# spawn.py: CPython twin of bench/spawn.lua for bench/run row 5.
# Starts and joins one threading.Thread at a time, N times, and prints the
# mean microseconds per start+join (after a short untimed warm-up).
#
# usage: python3 bench/spawn.py [n]
import sys
import threading
import time

n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000


def nothing():
    pass


def spawn_join(count):
    for _ in range(count):
        t = threading.Thread(target=nothing)
        t.start()
        t.join()


spawn_join(50)
t0 = time.perf_counter()
spawn_join(n)
print(f"{(time.perf_counter() - t0) / n * 1e6:.2f}")
