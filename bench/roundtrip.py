# roundtrip.py: CPython twin of bench/roundtrip.lua for bench/run row 10.
# Builds n dicts {"id": i, "name": "item%d" % i, "vals": [i*1.5, i*2.5, i]}
# and round-trips the whole list through pickle protocol 5 (dumps, then
# loads), `rounds` times; prints the best round's figures:
#   records/s of dumps+loads   dumps s   loads s   build s
#
# usage: python3 bench/roundtrip.py [n] [rounds]
import gc
import pickle
import sys
import time

n = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3

t0 = time.perf_counter()
records = [{"id": i, "name": "item%d" % i, "vals": [i * 1.5, i * 2.5, i]} for i in range(1, n + 1)]
build = time.perf_counter() - t0

best = None
for _ in range(rounds):
    gc.collect()  # each round starts from the same heap, like roundtrip.lua
    a = time.perf_counter()
    data = pickle.dumps(records, protocol=5)
    b = time.perf_counter()
    copy = pickle.loads(data)
    c = time.perf_counter()
    assert copy == records
    if best is None or (b - a) + (c - b) < best[0] + best[1]:
        best = (b - a, c - b)
    del copy, data
print(f"{n / (best[0] + best[1]):.0f} {best[0]:.6f} {best[1]:.6f} {build:.6f}")
