# cpu_bound.py: CPython twin of scripts/cpu_bound.lua for bench/run row 2.
# The same sum of squares, split over N threading.Thread workers. Prints the
# wall seconds of the threaded part only (start of the first thread to the
# last join), so interpreter start-up does not blur the 1-vs-2 thread ratio.
#
# usage: python3 bench/cpu_bound.py threads total_iterations
import sys
import threading
import time


def sum_of_squares(first, last):
    s = 0
    for i in range(first, last + 1):
        s = s + (i * i) % 7
    return s


def main():
    nthreads, total = int(sys.argv[1]), int(sys.argv[2])
    chunk = total // nthreads
    workers = []
    for t in range(nthreads):
        first = t * chunk + 1
        last = total if t == nthreads - 1 else (t + 1) * chunk
        workers.append(threading.Thread(target=sum_of_squares, args=(first, last)))
    t0 = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    print(f"{time.perf_counter() - t0:.6f}")


main()
