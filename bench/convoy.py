# convoy.py: CPython twin of scripts/convoy.lua for bench/run row 3.
# One thread sleeps 1 ms at a time, 200 times, while another spins on the
# GIL. Each wake-up must win the GIL back from the spinner, which gives it up
# only when asked after one switch interval (sys.setswitchinterval, default
# 5 ms). Prints "interval_ms median_ms p99_ms" of the extra latency per
# sleep, with the same percentile rule as convoy.lua.
#
# usage: python3 bench/convoy.py [sleeps] [sleep seconds]
import sys
import threading
import time

sleeps = int(sys.argv[1]) if len(sys.argv) > 1 else 200
nap = float(sys.argv[2]) if len(sys.argv) > 2 else 0.001
done = False


def hog():
    n = 0
    while not done:
        n += 1


def io_thread(extra):
    global done
    for _ in range(sleeps):
        t0 = time.perf_counter()
        time.sleep(nap)
        extra.append(time.perf_counter() - t0 - nap)
    done = True


extra = []
cpu = threading.Thread(target=hog)
io = threading.Thread(target=io_thread, args=(extra,))
cpu.start()
io.start()
io.join()
cpu.join()

extra.sort()
median = extra[len(extra) // 2]
p99 = extra[min(len(extra) - 1, int(len(extra) * 0.99))]
print(f"{sys.getswitchinterval() * 1000:.3f} {median * 1000:.3f} {p99 * 1000:.3f}")
