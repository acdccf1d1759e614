/* timedwait.c: how late pthread_cond_timedwait returns here, for --sim's `timer` cost.
   cc -O2 -pthread bench/timedwait.c -o /tmp/timedwait && /tmp/timedwait */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static int cmp(const void *a, const void *b) {
  double x = *(double *)a, y = *(double *)b;
  return x < y ? -1 : x > y;
}
int main(void) {
  pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t c = PTHREAD_COND_INITIALIZER;
  long ivs[] = { 10000, 100000, 1000000 };
  for (int k = 0; k < 3; k++) {
    double o[400];
    for (int i = 0; i < 400; i++) {
      struct timespec a, b, d;
      clock_gettime(CLOCK_REALTIME, &a);
      d = a;
      d.tv_nsec += ivs[k];
      while (d.tv_nsec >= 1000000000) {
        d.tv_nsec -= 1000000000;
        d.tv_sec++;
      }
      pthread_mutex_lock(&m);
      pthread_cond_timedwait(&c, &m, &d);
      pthread_mutex_unlock(&m);
      clock_gettime(CLOCK_REALTIME, &b);
      o[i] = (b.tv_sec - a.tv_sec) * 1e6 + (b.tv_nsec - a.tv_nsec) / 1e3 - ivs[k] / 1e3;
    }
    qsort(o, 400, sizeof o[0], cmp);
    printf("timeout %ld us: overshoot min %.1f median %.1f p90 %.1f us\n", ivs[k] / 1000, o[0], o[200], o[360]);
  }
}
