#include "args.h"

#include <lauxlib.h>
#include <math.h>

uint64_t args_seconds(lua_State *L, int arg) {
  lua_Number s = luaL_checknumber(L, arg);
  luaL_argcheck(L, s >= 0 && s < 1e9, arg, "must be a non-negative number of seconds");
  return (uint64_t)llround(s * 1e9);
}

int64_t args_opt_timeout(lua_State *L, int arg) {
  if (lua_isnoneornil(L, arg)) return -1;
  return (int64_t)args_seconds(L, arg);
}

void args_metatable(lua_State *L, const char *name, const luaL_Reg *methods, const luaL_Reg *metamethods) {
  luaL_newmetatable(L, name);
  if (methods) {
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
  }
  luaL_setfuncs(L, metamethods, 0);
  lua_pop(L, 1);
}
