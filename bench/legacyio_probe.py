#!/usr/bin/env python3
"""legacyio_probe.py: read the logs of bench/legacyio_probe.patch (a throwaway
build of gilvm whose real GIL driver logs each step of a take and a yield,
with its CPU) and say, for every wait of the I/O thread of
scripts/convoy.lua under -g legacy, how it ended (bench/README.md,
"legacy's I/O thread").

  git apply bench/legacyio_probe.patch
  meson setup /tmp/probe -Dbuildtype=release -Dc_args=-DGIL_PROBE && ninja -C /tmp/probe gilvm
  git checkout gil/gil.c
  GIL_PROBE_OUT=/tmp/p1.log /tmp/probe/gilvm -q -g legacy scripts/convoy.lua 30
  bench/legacyio_probe.py /tmp/p1.log ...

A log line: ns thread step arg cpu. Steps: wait (a waiter calls
pthread_cond_wait), woke (it returned, arg 1: the GIL was free), took;
sig (a release's pthread_cond_signal, arg its ns), unlock1 (the release's
unlock, arg its ns), retake_free / retake_busy (the retake's trylock got the
mutex / found it held, arg: ns blocked in the lock), retook / lost.
"""
import collections
import statistics as st
import sys


def episodes(path):
    rows = []
    for line in open(path):
        ns, t, step, arg, cpu = line.split()
        rows.append((int(ns), t, step, int(arg), int(cpu)))
    io = collections.Counter(r[1] for r in rows if r[2] == "wait").most_common(1)[0][0]
    cur, last_other = None, None
    for i, r in enumerate(rows):
        if r[1] != io:
            last_other = r
        if r[1] == io and r[2] == "wait" and cur is None:
            cur = [r]
            continue
        if cur is None:
            continue
        cur.append(r)
        if r[1] == io and r[2] == "took":
            nxt = next((x for x in rows[i + 1:] if x[1] != io), None)
            yield {
                "where": "the hog's CPU" if last_other and last_other[4] == r[4] else "the other CPU",
                "wait_us": (r[0] - cur[0][0]) / 1000,
                "releases": sum(1 for x in cur if x[1] != io and x[2] == "sig"),
                "wakeups": sum(1 for x in cur if x[1] == io and x[2] == "woke"),
                "next": nxt[2] if nxt else "-",
                "unlock_us": nxt[3] / 1000 if nxt and nxt[2] == "unlock1" else None,
            }
            cur = None


def main():
    by = collections.defaultdict(list)
    for path in sys.argv[1:]:
        for e in episodes(path):
            by[e["where"]].append(e)
    for where, es in sorted(by.items()):
        w = [e["wait_us"] for e in es]
        unl = [e["unlock_us"] for e in es if e["unlock_us"] is not None]
        print(f"woken on {where}: {len(es)} waits; the GIL after median {st.median(w):.1f} us "
              f"(min {min(w):.1f}, max {max(w):.1f}); the hog's releases meanwhile median "
              f"{st.median(e['releases'] for e in es)}, the I/O thread's wake-ups median "
              f"{st.median(e['wakeups'] for e in es)}")
        print(f"  the hog's step in progress when it took the GIL: {dict(collections.Counter(e['next'] for e in es))}"
              + (f"; that unlock took median {st.median(unl):.1f} us" if unl else ""))


if __name__ == "__main__":
    main()
