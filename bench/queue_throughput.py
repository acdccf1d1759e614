# queue_throughput.py: CPython twin of bench/queue_throughput.lua for bench/run row 11. A
# producer puts the integers 1..n into an unbounded queue, the main thread
# gets them and checks their sum; prints items per second from starting the
# producer to the last get.
#   threads: queue.Queue, the producer a threading.Thread
#   procs:   multiprocessing.Queue, the producer a Process (fork start method)
#
# usage: python3 bench/queue_throughput.py threads|procs [n]
import multiprocessing
import queue
import sys
import threading
import time


def produce(q, count):
    for i in range(1, count + 1):
        q.put(i)


def main():
    kind = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 200000
    if kind == "threads":
        q = queue.Queue()
        producer = threading.Thread(target=produce, args=(q, n))
    else:
        ctx = multiprocessing.get_context("fork")
        q = ctx.Queue()
        producer = ctx.Process(target=produce, args=(q, n))
    t0 = time.perf_counter()
    producer.start()
    total = 0
    for _ in range(n):
        total += q.get()
    t1 = time.perf_counter()
    producer.join()
    assert total == n * (n + 1) // 2, "items lost or changed"
    print(f"{n / (t1 - t0):.0f}")


main()
