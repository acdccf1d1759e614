/* rt_mode.h — the run's mode (-m), apart from runtime.h so that the command line needs no Lua. */
#ifndef RT_MODE_H
#define RT_MODE_H

/* -m: which kind of worker gil.spawn makes (RT_THREAD, RT_OWN_INTERP, RT_PROCESS). */
typedef enum rt_mode { RT_MODE_GIL, RT_MODE_NOGIL, RT_MODE_FORK, RT_NMODES } rt_mode;
extern const char *const rt_mode_names[RT_NMODES]; /* "gil", "nogil", "fork" */
/* The mode named s, or -1 if there is none. */
int rt_mode_parse(const char *s);

#endif
