/* args.h — arguments of the gil module's functions that several of them take,
   and the one way its userdata types get their metatables. */
#ifndef ARGS_H
#define ARGS_H

#include <lauxlib.h>
#include <lua.h>
#include <stdint.h>

/* Argument arg as a duration in seconds -> ns; raises a Lua error if negative or absurd. */
uint64_t args_seconds(lua_State *L, int arg);
/* An optional timeout in seconds -> ns; -1 when absent or nil (wait forever). */
int64_t args_opt_timeout(lua_State *L, int arg);

/* Registers metatable `name`: `methods` (if any) as its __index table, then
   the metamethods (__gc, __tostring, ...). Leaves the stack as it was. */
void args_metatable(lua_State *L, const char *name, const luaL_Reg *methods, const luaL_Reg *metamethods);

#endif
