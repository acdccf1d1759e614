# echo_convoy.py: CPython twin of scripts/echo_convoy.lua for bench/run row 13,
# the convoy effect of bpo-7946 with real sockets. An echo server thread and
# K CPU-bound threads (or processes, with "process") in this process; a
# client in another process (this script again, with "client") sends a
# 1-byte request and waits for the 1-byte response, over loopback TCP, for
# a fixed time. The server and the CPU threads are started before the
# client, so the client's whole window sees them running.
#
# Prints one line per count of CPU workers: "K requests seconds req_per_s
# slow", slow being the share of requests that took longer than half a
# switch interval (the server waited for a CPU thread to drop the GIL).
#
# ECHO_HOG_SUM=N (an experiment, not used by bench/run): each CPU thread also
# runs sum(range(N)) per loop, C code that does not look at the eval breaker
# (N = 1000: about 22 us here), so the thread asked to drop the GIL notices
# up to that much later, as gilvm's signalled holder does (bench/README.md,
# row 13, "K = 2 and 4").
#
# usage: python3 bench/echo_convoy.py K_LIST seconds interval_seconds [thread|process]
#        python3 bench/echo_convoy.py client PORT seconds slow_seconds
import multiprocessing
import os
import socket
import subprocess
import sys
import threading
import time


def client(port, secs, slow):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    n, late, t0 = 0, 0, time.perf_counter()
    t = t0
    while t - t0 < secs:
        s.sendall(b"x")
        if s.recv(1) != b"x":
            raise SystemExit("echo lost")
        n += 1
        now = time.perf_counter()
        if now - t > slow:
            late += 1
        t = now
    s.close()
    print(n, t - t0, late)


def serve(srv, rows):
    for _ in range(rows):
        c, _ = srv.accept()
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with c:
            while True:
                data = c.recv(4096)
                if not data:
                    break
                c.sendall(data)


stop = False
HOG_SUM = range(int(os.environ.get("ECHO_HOG_SUM", "0")))


def hog(started):
    started.release()
    n = 0
    if HOG_SUM:
        while not stop:
            n += 1
            sum(HOG_SUM)
    while not stop:
        n += 1


def hog_process(started):
    started.release()
    n = 0
    while True:
        n += 1


def main():
    global stop
    if sys.argv[1] == "client":
        client(int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]))
        return
    counts = [int(k) for k in sys.argv[1].split(",")]
    secs = float(sys.argv[2])
    sys.setswitchinterval(float(sys.argv[3]))
    kind = sys.argv[4] if len(sys.argv) > 4 else "thread"
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    port = srv.getsockname()[1]
    server = threading.Thread(target=serve, args=(srv, len(counts)))
    server.start()
    for k in counts:
        stop = False
        if kind == "process":
            started = multiprocessing.get_context("fork").Semaphore(0)
            hogs = [multiprocessing.get_context("fork").Process(target=hog_process, args=(started,)) for _ in range(k)]
        else:
            started = threading.Semaphore(0)
            hogs = [threading.Thread(target=hog, args=(started,)) for _ in range(k)]
        for h in hogs:
            h.start()
        for _ in hogs:
            started.acquire()  # every CPU worker is running
        slow = sys.getswitchinterval() / 2
        out = subprocess.run([sys.executable, __file__, "client", str(port), str(secs), str(slow)],
                             stdout=subprocess.PIPE, check=True, text=True).stdout.split()
        stop = True
        for h in hogs:
            if kind == "process":
                h.terminate()
            h.join()
        n, elapsed, late = int(out[0]), float(out[1]), int(out[2])
        print(k, n, f"{elapsed:.6f}", f"{n / elapsed:.1f}", f"{late / n:.4f}", flush=True)
    server.join()
    srv.close()


main()
