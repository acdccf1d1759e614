/* objects.h — the shared objects (gil.lock, gil.queue, ...), gil.pool, and the deadlock detector. */
#ifndef OBJECTS_H
#define OBJECTS_H

#include <lua.h>
#include <sys/types.h>

struct runtime;

/* Add the shared objects' constructors to the gil module table on top of L. */
void objects_open(lua_State *L);
/* At the end of a run (or of a fork child's function): close the task queues
   of this process's pools that were never closed, so their workers finish. */
void objects_close_pools(struct runtime *rt);

/* Deadlock detection (see objects.c): the calling worker is about to wait,
   without a timeout, for worker target_id (of process target_pid) to finish. */
void objects_join_begin(lua_State *L, pid_t target_pid, int target_id);
void objects_join_end(void);
/* Looks for a deadlock among every process's waiters (main process only);
   if there is one, prints it, stops the run with EXIT_DEADLOCK and returns 1. */
int objects_check_deadlock(struct runtime *rt);
/* For tests (gil._debug): how many looks objects_check_deadlock has
   finished in this process, and how many waits are on the board now. */
long objects_deadlock_checks(void);
int objects_board_waits(void);

#endif
