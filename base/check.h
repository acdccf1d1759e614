/* check.h — pthread calls that must not fail. A failure is a bug (unlocking
   a mutex we do not hold) or a broken system, and going on would corrupt
   state silently: say which call failed, and where, then abort, as Lua's
   lua_assert and CPython's Py_FatalError on a failed mutex call do. */
#ifndef GILVM_CHECK_H
#define GILVM_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline int pt_check(int rc, int allowed, const char *call, const char *file, int line) {
  if (rc == 0 || rc == allowed) return rc;
  fprintf(stderr, "gilvm: %s:%d: %s failed: %s\n", file, line, call, strerror(rc));
  abort();
}

/* Runs a pthread call (0 or an error number); any error aborts. */
#define PT_CHECK(call) ((void)pt_check((call), 0, #call, __FILE__, __LINE__))

/* The same, but one error is an expected answer (ETIMEDOUT, EBUSY,
   EOWNERDEAD): returns 0 or that error. */
#define PT_CHECK_OR(call, allowed) pt_check((call), (allowed), #call, __FILE__, __LINE__)

#endif
