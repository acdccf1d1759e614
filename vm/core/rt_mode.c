/* rt_mode.c — the modes' names, for the command line and the report. */
#include "rt_mode.h"

#include <string.h>

const char *const rt_mode_names[RT_NMODES] = {
  [RT_MODE_GIL] = "gil", [RT_MODE_NOGIL] = "nogil", [RT_MODE_FORK] = "fork"
};

int rt_mode_parse(const char *s) {
  for (int m = 0; m < RT_NMODES; m++)
    if (strcmp(s, rt_mode_names[m]) == 0) return m;
  return -1;
}
