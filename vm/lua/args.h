/* args.h — arguments of the gil module's functions that several of them take. */
#ifndef ARGS_H
#define ARGS_H

#include <lua.h>
#include <stdint.h>

/* Argument arg as a duration in seconds -> ns; raises a Lua error if negative or absurd. */
uint64_t args_seconds(lua_State *L, int arg);
/* An optional timeout in seconds -> ns; -1 when absent or nil (wait forever). */
int64_t args_opt_timeout(lua_State *L, int arg);

#endif
