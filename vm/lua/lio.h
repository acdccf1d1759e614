/* lio.h — Lua's io library and os.execute with the GIL released while they
   wait on the kernel (see lio.c); the waiting helpers the sockets share. */
#ifndef LIO_H
#define LIO_H

#include <lua.h>
#include <stdint.h>

/* Patch io, the file methods and os.execute of L (after luaL_openlibs). */
void lio_open(lua_State *L);
/* Release the calling worker's GIL for a wait in the kernel ("io" time);
   0 if it may not (then lio_retake does nothing). lio_retake keeps errno. */
uint64_t lio_release(void);
void lio_retake(uint64_t began);
/* Poll fd for events (GIL already released), timeout_ns < 0: forever.
   1 ready (or in error), 0 timed out, -1 the run is stopping. */
int lio_wait_fd(int fd, short events, int64_t timeout_ns);
/* Write out what print and io.write left pending on stdout and stderr (a
   stopped writer's bytes), blocking: before os.exit ends the process. */
void lio_std_finish(void);

#endif
