/* clock.h — the clocks gilvm measures with, and how durations read. */
#ifndef CLOCK_H
#define CLOCK_H

#include <stddef.h>
#include <stdint.h>

uint64_t clock_now_ns(void); /* monotonic wall clock (virtual under --sim) */
uint64_t clock_real_ns(void); /* the host's monotonic clock, even under --sim */
uint64_t clock_thread_cpu_ns(void); /* CPU time of the calling thread */
uint64_t clock_process_cpu_ns(void); /* user + system time of this process, all threads */
/* The calling thread's scheduler statistics (/proc/self/task/TID/schedstat): time on a
   CPU, and time runnable but waiting for one (the run queue). 0, or -1 if unknown. */
int clock_thread_sched_ns(uint64_t *on_cpu, uint64_t *runq);
/* "500us", "0.5ms", "2s", "1.5" (seconds): decimal digits with an optional fraction, then
   ns, us, ms, s or nothing (seconds). 0 on success, -1 for anything else. */
int clock_parse_duration(const char *s, uint64_t *ns);
/* A short human reading: "2.01 s", "5.20 ms", "31 us", "850 ns". */
const char *clock_format(uint64_t ns, char *buf, size_t len);

#endif
