/*
 * plot.h — what the pictures share: the colours of the thread states, tick
 * steps that read well, short time labels, and writing text into SVG.
 * Used by timeline.c (one run over time) and sweep.c (figures against the
 * switch interval), so both speak the same visual language.
 */
#ifndef PLOT_H
#define PLOT_H

#include <stddef.h>
#include <stdio.h>

#include "events.h"

/* The fill colour of each thread state in every SVG (ST_IDLE: none drawn). */
extern const char *const plot_state_colors[ST_NSTATES];
/* One character per state in ASCII charts (ST_IDLE: ' '). */
extern const char plot_state_chars[ST_NSTATES];
/* A short name for legends: "running, GIL held", "blocked: sleep". */
extern const char *const plot_state_legend[ST_NSTATES];
/* Line colours for series (policies in a sweep), in order. */
extern const char *const plot_series_colors[];
extern const int plot_nseries_colors;

/* A step of 1, 2 or 5 times a power of ten such that range / step <= max_ticks. */
double plot_nice_step(double range, int max_ticks);
/* A time in seconds as a short tick label: "0", "250ms", "1.5s", "20us", "500ns".
   step (seconds) decides the unit, so every label of one axis reads alike. */
const char *plot_time_label(double s, double step, char *buf, size_t len);
/* A plain number as a short label: "1200", "0.25", "3e+06". */
const char *plot_number_label(double v, char *buf, size_t len);
/* Length of the valid UTF-8 sequence at s (1 to 4), 0 if the byte there starts none. */
int plot_utf8_len(const char *s);
/* Columns the text takes on a terminal: its characters (UTF-8 continuation bytes not counted). */
int plot_text_width(const char *s);
/* Write s as SVG/XML character data (escapes & < > " '; invalid UTF-8 and control
   characters become '?'). */
void plot_svg_text(FILE *f, const char *s);

#endif
