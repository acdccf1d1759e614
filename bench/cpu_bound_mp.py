# cpu_bound_mp.py: CPython multiprocessing twin of scripts/cpu_bound.lua
# under -m fork, for bench/run row 8. The same sum of squares, split over N
# processes (fork start method, one Process per chunk, results back through
# a multiprocessing.Queue). Prints the wall seconds from the first start to
# the last join, results received: forking and collecting are counted (as
# they are in gilvm's -m fork), interpreter start-up is not.
#
# usage: python3 bench/cpu_bound_mp.py processes total_iterations
import multiprocessing
import sys
import time


def sum_of_squares(first, last, results):
    s = 0
    for i in range(first, last + 1):
        s = s + (i * i) % 7
    results.put(s)


def main():
    nprocs, total = int(sys.argv[1]), int(sys.argv[2])
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    chunk = total // nprocs
    workers = []
    for t in range(nprocs):
        first = t * chunk + 1
        last = total if t == nprocs - 1 else (t + 1) * chunk
        workers.append(ctx.Process(target=sum_of_squares, args=(first, last, results)))
    t0 = time.perf_counter()
    for w in workers:
        w.start()
    sums = [results.get() for _ in workers]
    for w in workers:
        w.join()
    dt = time.perf_counter() - t0
    assert all(w.exitcode == 0 for w in workers), "a worker failed"
    assert len(sums) == nprocs
    print(f"{dt:.6f}")


main()
