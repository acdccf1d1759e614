/*
 * test_check.c — base/check.h: a failed pthread call aborts, an expected
 * error is returned.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>

#include "check.h"

static pthread_mutex_t checked;

static void errorcheck_mutex(void) {
  pthread_mutexattr_t at;
  pthread_mutexattr_init(&at);
  pthread_mutexattr_settype(&at, PTHREAD_MUTEX_ERRORCHECK);
  pthread_mutex_init(&checked, &at);
  pthread_mutexattr_destroy(&at);
}

Test(check, unlocking_a_mutex_not_held_aborts, .init = errorcheck_mutex, .signal = SIGABRT) {
  PT_CHECK(pthread_mutex_unlock(&checked)); /* EPERM */
}

Test(check, a_call_that_succeeds_goes_on, .init = errorcheck_mutex) {
  PT_CHECK(pthread_mutex_lock(&checked));
  PT_CHECK(pthread_mutex_unlock(&checked));
}

Test(check, an_allowed_error_is_returned, .init = errorcheck_mutex) {
  PT_CHECK(pthread_mutex_lock(&checked));
  cr_assert_eq(PT_CHECK_OR(pthread_mutex_trylock(&checked), EBUSY), EBUSY);
  PT_CHECK(pthread_mutex_unlock(&checked));
}

Test(check, another_error_still_aborts, .init = errorcheck_mutex, .signal = SIGABRT) {
  PT_CHECK_OR(pthread_mutex_unlock(&checked), EBUSY);
}

/* vm/'s assert()s guard the runtime's invariants: meson's b_ndebug=if-release
   keeps them in the debugoptimized, debug and sanitizer builds. */
Test(check, asserts_are_compiled_in) {
#ifdef NDEBUG
  cr_assert_fail("NDEBUG is set: vm/'s assert()s are compiled out");
#endif
}
