/* gilmod.h — the `gil` Lua module. */
#ifndef GILMOD_H
#define GILMOD_H

#include <lua.h>

int luaopen_gil(lua_State *L);
/* Open the module as global `gil` and package.loaded.gil, and make coroutines preemptible. */
void gilmod_open(lua_State *L);

#endif
