/* clock.h — the clocks gilvm measures with, and how durations read. */
#ifndef CLOCK_H
#define CLOCK_H

#include <stddef.h>
#include <stdint.h>

uint64_t clock_now_ns(void); /* monotonic wall clock */
uint64_t clock_thread_cpu_ns(void); /* CPU time of the calling thread */
uint64_t clock_process_cpu_ns(void); /* user + system time of this process, all threads */
/* How long the calling thread has been runnable but waiting for a CPU (the kernel's
   run-queue wait, /proc/self/task/TID/schedstat's second field): 0, or -1 if unknown. */
int clock_thread_runq_ns(uint64_t *ns);
/* "500us", "0.5ms", "2s", "1.5" (seconds): decimal digits with an optional fraction, then
   ns, us, ms, s or nothing (seconds). 0 on success, -1 for anything else. */
int clock_parse_duration(const char *s, uint64_t *ns);
/* A short human reading: "2.01 s", "5.20 ms", "31 us", "850 ns". */
const char *clock_format(uint64_t ns, char *buf, size_t len);

#endif
