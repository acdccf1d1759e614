/* vec.h — growable arrays: a T *items, a count in use and a size_t capacity.
   One rule for all of them: the capacity doubles, from `first`, up to `max`. */
#ifndef GILVM_VEC_H
#define GILVM_VEC_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Makes room in the array at *pitems (a T **; len items of size bytes in use,
   *cap allocated) for n more. 0, or -1 when out of memory or past max items;
   then the array and *cap are unchanged. */
static inline int vec_grow(void *pitems, size_t size, size_t len, size_t *cap, size_t n, size_t first, size_t max) {
  if (*cap >= len && *cap - len >= n) return 0;
  if (max > SIZE_MAX / size) max = SIZE_MAX / size; /* c * size must not overflow */
  if (n > max || len > max - n) return -1;
  size_t c = *cap ? *cap : first;
  while (c < len + n) c = c > max / 2 ? max : c * 2;
  if (c > max) c = max;
  void *items; /* memcpy: pitems points at a T *, not at a void * */
  memcpy(&items, pitems, sizeof items);
  items = realloc(items, c * size);
  if (!items) return -1;
  memcpy(pitems, &items, sizeof items);
  *cap = c;
  return 0;
}

/* Room for n more items in arr (len in use, cap a size_t lvalue): 0 or -1. */
#define VEC_RESERVE(arr, len, cap, n, first) \
  vec_grow(&(arr), sizeof *(arr), (size_t)(len), &(cap), (n), (first), SIZE_MAX)

/* Appends x to arr, growing it from 16 items: 0, or -1 (out of memory; nothing changed). */
#define VEC_PUSH(arr, len, cap, x) (VEC_RESERVE(arr, len, cap, 1, 16) != 0 ? -1 : ((arr)[(len)++] = (x), 0))

#endif
