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
