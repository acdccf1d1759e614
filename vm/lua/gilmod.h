/* gilmod.h — the `gil` Lua module. */
#ifndef GILMOD_H
#define GILMOD_H

#include <lua.h>
#include <stdint.h>

#include "runtime.h"

int luaopen_gil(lua_State *L);
/* Open the module as global `gil` and package.loaded.gil, and make coroutines preemptible. */
void gilmod_open(lua_State *L);
/* The runtime's host: gilmod_open in every new interpreter; the pools closed before the end. */
extern const rt_host gilmod_host;

#endif
