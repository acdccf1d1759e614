/* events.c — per-thread event buffers (see events.h). */
#include "events.h"

#include <stdlib.h>

#include "vec.h"

const char *const ev_state_names[ST_NSTATES] = {
  "idle",
  "running (GIL held)",
  "running (own interpreter)",
  "waiting for the GIL",
  "blocked: sleep",
  "blocked: join",
  "blocked: lock",
  "blocked: queue",
  "running C without the GIL",
  "blocked: io",
  "waiting for a CPU",
};

static uint32_t limit = EV_CAP;

void ev_init_limit(void) {
  const char *s = getenv("GILVM_EVENTS_MAX");
  long n = s ? strtol(s, NULL, 10) : 0;
  if (n >= 16 && n <= (long)EV_CAP) limit = (uint32_t)n;
}

void ev_record(ev_buf *b, uint64_t t, ev_kind kind, ev_state state, int32_t arg) {
  if (vec_grow(&b->v, sizeof *b->v, b->n, &b->cap, 1, 16, limit) != 0) { /* full, or out of memory */
    b->dropped++;
    return;
  }
  b->v[b->n++] = (ev){ .t = t, .kind = (uint16_t)kind, .state = (uint16_t)state, .arg = arg };
}

void ev_free(ev_buf *b) {
  free(b->v);
  b->v = NULL;
  b->n = b->cap = 0;
}
