/* plot.c — colours, ticks, labels and SVG text shared by the pictures (see plot.h). */
#include "plot.h"

#include <math.h>
#include <string.h>

/* Running is green (with the GIL) or blue (without it), waiting for the GIL
   is red: the colour of time lost to the lock. Blocked states are muted, so
   the eye goes to who runs and who waits. */
const char *const plot_state_colors[ST_NSTATES] = {
  [ST_IDLE] = NULL,        [ST_RUN_GIL] = "#2e7d32", [ST_RUN_OWN] = "#1e88e5",  [ST_WAIT_GIL] = "#e53935",
  [ST_SLEEP] = "#b0bec5",  [ST_JOIN] = "#d1c4e9",    [ST_LOCK] = "#a1887f",     [ST_QUEUE] = "#ffcc80",
  [ST_NATIVE] = "#26a69a", [ST_IO] = "#90caf9",      [ST_CPU_WAIT] = "#ff7043",
};

const char plot_state_chars[ST_NSTATES] = {
  [ST_IDLE] = ' ', [ST_RUN_GIL] = '#', [ST_RUN_OWN] = '=', [ST_WAIT_GIL] = '.', [ST_SLEEP] = 's',    [ST_JOIN] = 'j',
  [ST_LOCK] = 'l', [ST_QUEUE] = 'q',   [ST_NATIVE] = '~',  [ST_IO] = 'i',       [ST_CPU_WAIT] = 'c',
};

const char *const plot_state_legend[ST_NSTATES] = {
  [ST_IDLE] = "idle",
  [ST_RUN_GIL] = "running, GIL held",
  [ST_RUN_OWN] = "running, own interpreter",
  [ST_WAIT_GIL] = "waiting for the GIL",
  [ST_SLEEP] = "blocked: sleep",
  [ST_JOIN] = "blocked: join",
  [ST_LOCK] = "blocked: lock",
  [ST_QUEUE] = "blocked: queue",
  [ST_NATIVE] = "C code without the GIL",
  [ST_IO] = "blocked: io",
  [ST_CPU_WAIT] = "waiting for a CPU",
};

const char *const plot_series_colors[] = { "#1565c0", "#e53935", "#2e7d32", "#8e24aa", "#ef6c00", "#00838f" };
const int plot_nseries_colors = (int)(sizeof plot_series_colors / sizeof plot_series_colors[0]);

double plot_nice_step(double range, int max_ticks) {
  if (!(range > 0) || max_ticks < 1) return 1.0;
  double raw = range / max_ticks;
  double p = pow(10.0, floor(log10(raw)));
  static const double mult[] = { 1, 2, 5, 10 };
  for (int i = 0; i < 4; i++)
    if (mult[i] * p >= raw * (1 - 1e-9)) return mult[i] * p;
  return 10 * p;
}

const char *plot_time_label(double s, double step, char *buf, size_t len) {
  static const struct {
    double scale;
    const char *unit;
  } units[] = {
    { 1, "s" },
    { 1e-3, "ms" },
    { 1e-6, "us" },
    { 1e-9, "ns" },
  };
  if (fabs(s) < step * 1e-6 || s == 0) {
    snprintf(buf, len, "0");
    return buf;
  }
  int u = 0;
  while (u < 3 && step < units[u].scale * (1 - 1e-9)) u++;
  double in_unit = step / units[u].scale;
  int decimals = in_unit >= 1 ? 0 : (int)ceil(-log10(in_unit) - 1e-9);
  snprintf(buf, len, "%.*f%s", decimals, s / units[u].scale, units[u].unit);
  return buf;
}

const char *plot_number_label(double v, char *buf, size_t len) {
  double a = fabs(v);
  if (v == 0)
    snprintf(buf, len, "0");
  else if (a >= 1e6 || a < 1e-3)
    snprintf(buf, len, "%.2g", v);
  else if (a >= 100)
    snprintf(buf, len, "%.0f", v);
  else
    snprintf(buf, len, "%.3g", v);
  return buf;
}

int plot_utf8_len(const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  int n = p[0] < 0x80               ? 1
      : p[0] >= 0xc2 && p[0] < 0xe0 ? 2
      : p[0] >= 0xe0 && p[0] < 0xf0 ? 3
      : p[0] >= 0xf0 && p[0] < 0xf5 ? 4
                                    : 0;
  for (int i = 1; i < n; i++)
    if ((p[i] & 0xc0) != 0x80) return 0;
  if (n == 3 && ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0))) return 0;
  if (n == 4 && ((p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90))) return 0;
  return n;
}

int plot_text_width(const char *s) {
  int n = 0;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) n += (*p & 0xc0) != 0x80;
  return n;
}

void plot_svg_text(FILE *f, const char *s) {
  while (*s) {
    int n = plot_utf8_len(s);
    switch (*s) {
    case '&': fputs("&amp;", f); break;
    case '<': fputs("&lt;", f); break;
    case '>': fputs("&gt;", f); break;
    case '"': fputs("&quot;", f); break;
    case '\'': fputs("&apos;", f); break;
    default:
      if (n == 0 || (unsigned char)*s < 0x20)
        fputc('?', f); /* XML allows neither */
      else
        fwrite(s, 1, (size_t)n, f);
    }
    s += n ? n : 1;
  }
}
