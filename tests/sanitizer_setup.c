/*
 * sanitizer_setup.c — linked into every test executable.
 *
 * 1. A sanitizer report must fail the test: Criterion counts a test whose
 *    process printed a report but then returned normally as passing, and
 *    UBSan and TSan carry on after a report by default. These hooks are
 *    only read by a sanitizer runtime; TSAN_OPTIONS/UBSAN_OPTIONS override.
 *    die_after_fork=0: fork mode forks from a threaded process and may start
 *    threads in the child (as CPython after os.fork); TSan refuses that by
 *    default. tools/run_tests.sh sets the same for the gilvm binary.
 *
 * 2. Criterion under ThreadSanitizer: Criterion (its BoxFort sandbox) places
 *    a shared arena at a random address between 0x2000'0000'0000 and
 *    0x6000'0000'0000, picked with rand_r(), and gives up after 10 tries on
 *    mapped pages. Under TSan almost all of that range is TSan's reserved
 *    shadow, so a test binary aborts at start-up ("Could not initialize
 *    inheritable arena", Criterion issue #274). This rand_r, which
 *    libcriterion's call resolves to, keeps the picks in the one application
 *    range TSan leaves free there (0x5500'0000'0000 to 0x5680'0000'0000).
 *    No test calls rand_r.
 */
#if defined(__SANITIZE_THREAD__)
#define TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TEST_TSAN 1
#endif
#endif

const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void) { return "halt_on_error=1:print_stacktrace=1"; }

#ifdef TEST_TSAN
const char *__tsan_default_options(void);
const char *__tsan_default_options(void) { return "halt_on_error=1:abort_on_error=1:die_after_fork=0"; }

int rand_r(unsigned int *seed);
int rand_r(unsigned int *seed) {
  *seed = *seed * 1103515245u + 12345u;
  /* BoxFort maps at 0x2000'0000'0000 + r * 2^24 */
  return 0x350000 + (int)((*seed >> 8) % 0x18000);
}
#endif
