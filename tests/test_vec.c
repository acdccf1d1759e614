/*
 * test_vec.c — unit tests for base/vec.h, the one growable array.
 */
#include <criterion/criterion.h>

#include <stdint.h>
#include <stdlib.h>

#include "vec.h"

Test(vec, push_keeps_every_item_in_order) {
  int *a = NULL, n = 0;
  size_t cap = 0;
  for (int i = 0; i < 1000; i++) cr_assert_eq(VEC_PUSH(a, n, cap, i * 3), 0);
  cr_assert_eq(n, 1000);
  cr_assert_geq(cap, 1000);
  for (int i = 0; i < 1000; i++) cr_assert_eq(a[i], i * 3);
  free(a);
}

Test(vec, capacity_doubles_from_first) {
  char *a = NULL;
  size_t len = 0, cap = 0;
  cr_assert_eq(VEC_RESERVE(a, len, cap, 10, 256), 0);
  cr_assert_eq(cap, 256);
  len = 250;
  cr_assert_eq(VEC_RESERVE(a, len, cap, 6, 256), 0);
  cr_assert_eq(cap, 256, "room enough: no growth");
  cr_assert_eq(VEC_RESERVE(a, len, cap, 7, 256), 0);
  cr_assert_eq(cap, 512);
  cr_assert_eq(VEC_RESERVE(a, len, cap, 2000, 256), 0);
  cr_assert_eq(cap, 4096, "doubled until len + n fits");
  free(a);
}

Test(vec, stops_at_max_and_leaves_the_array_as_it_was) {
  long *a = NULL;
  size_t cap = 0;
  uint32_t n = 0;
  for (long i = 0; i < 40; i++) {
    cr_assert_eq(vec_grow(&a, sizeof *a, n, &cap, 1, 16, 40), 0);
    a[n++] = i;
  }
  cr_assert_eq(cap, 40, "the last doubling is cut to max");
  long *before = a;
  cr_assert_eq(vec_grow(&a, sizeof *a, n, &cap, 1, 16, 40), -1);
  cr_assert_eq(a, before);
  cr_assert_eq(cap, 40);
  for (long i = 0; i < 40; i++) cr_assert_eq(a[i], i);
  free(a);
}

Test(vec, refuses_sizes_that_overflow) {
  long *a = NULL;
  size_t len = 0, cap = 0;
  cr_assert_eq(VEC_RESERVE(a, len, cap, SIZE_MAX / 2, 16), -1);
  cr_assert_null(a);
  cr_assert_eq(cap, 0);
}
