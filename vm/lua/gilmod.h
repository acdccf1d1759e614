/* gilmod.h — the `gil` Lua module. */
#ifndef GILMOD_H
#define GILMOD_H

#include <lua.h>
#include <stdint.h>

int luaopen_gil(lua_State *L);
/* Argument arg as a duration in seconds -> ns; raises a Lua error if negative or absurd. */
uint64_t gilmod_check_seconds(lua_State *L, int arg);
/* An optional timeout in seconds -> ns; -1 when absent or nil (wait forever). */
int64_t gilmod_opt_timeout(lua_State *L, int arg);
/* Open the module as global `gil` and package.loaded.gil, and make coroutines preemptible. */
void gilmod_open(lua_State *L);

#endif
