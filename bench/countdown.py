# countdown.py: CPython twin of bench/countdown.lua for bench/run row 12,
# the experiment of "Python behind the scenes #13": `while n > 0: n -= 1`,
# a total of n decrements on one thread or split evenly over several, at a
# given switch interval (sys.setswitchinterval). Prints the wall seconds of
# the threaded part only (first start to last join).
#
# With "seq" the threads run one after another (each started and joined
# before the next): the same work in the same chunks, with no switching.
#
# countdown is called 10 times with n = 0 before the timing starts: CPython
# 3.11 specialises a function's bytecode ("quickening": COMPARE_OP_INT_JUMP,
# BINARY_OP_SUBTRACT_INT) only once it has been called 8 times, so without
# the warm-up one thread runs the generic bytecode all along while 8 threads
# run the specialised one from the 8th start on, about 20% faster per
# decrement, and 8 threads "beat" one (bench/README.md, row 12).
#
# usage: python3 bench/countdown.py threads total interval_seconds [seq]
import sys
import threading
import time


def countdown(n):
    while n > 0:
        n -= 1


def main():
    nthreads, total = int(sys.argv[1]), int(sys.argv[2])
    sys.setswitchinterval(float(sys.argv[3]))
    for _ in range(10):
        countdown(0)  # warm-up: specialised bytecode for every thread count
    workers = [threading.Thread(target=countdown, args=(total // nthreads,)) for _ in range(nthreads)]
    seq = len(sys.argv) > 4 and sys.argv[4] == "seq"
    t0 = time.perf_counter()
    for w in workers:
        w.start()
        if seq:
            w.join()
    for w in workers:
        w.join()
    print(f"{time.perf_counter() - t0:.6f}")


main()
