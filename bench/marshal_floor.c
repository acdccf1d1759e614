/*
 * marshal_floor.c — what a decode of bench/run row 10's records costs,
 * against the floor: building the same tables with Lua's C API. Not part of
 * the test suite, not run by bench/run (row 10 measures through gilvm
 * itself); it backs the explanation of that row in bench/README.md.
 *
 *   cc -std=c11 -D_GNU_SOURCE -O2 -Ivm/share vm/share/marshal.c bench/marshal_floor.c \
 *      $(pkg-config --cflags --libs lua5.4) -pthread -o /tmp/marshal_floor
 *   /tmp/marshal_floor [records] [rounds]
 *
 * Defaults: 100000 records {id=i, name="item"..i, vals={i*1.5, i*2.5, i}},
 * 5 rounds, best round kept, a full collection before each. It prints, in
 * milliseconds:
 *   encode        mar_encode of the list
 *   decode        mar_decode of those bytes (what q:get does)
 *   C-API build   the same list built with exactly the calls a decoder must
 *                 make: lua_createtable (2 per record), lua_pushlstring of
 *                 the name (formatted beforehand, outside the timing),
 *                 lua_pushinteger/lua_pushnumber, lua_rawset/lua_rawseti
 *   of which      the 100k name strings alone (lua_pushlstring + lua_rawseti
 *                 into one preallocated array), and the 200k tables alone
 *                 (lua_createtable + lua_rawseti, no contents)
 */
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "marshal.h"

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int n, rounds;
static char *names; /* n names, 16 bytes apart */
static size_t *lens;

static void build_c_api(lua_State *L) {
  lua_createtable(L, n, 0);
  for (int i = 1; i <= n; i++) {
    lua_createtable(L, 0, 3);
    lua_pushliteral(L, "id");
    lua_pushinteger(L, i);
    lua_rawset(L, -3);
    lua_pushliteral(L, "name");
    lua_pushlstring(L, names + 16 * (i - 1), lens[i - 1]);
    lua_rawset(L, -3);
    lua_pushliteral(L, "vals");
    lua_createtable(L, 3, 0);
    lua_pushnumber(L, i * 1.5);
    lua_rawseti(L, -2, 1);
    lua_pushnumber(L, i * 2.5);
    lua_rawseti(L, -2, 2);
    lua_pushinteger(L, i);
    lua_rawseti(L, -2, 3);
    lua_rawset(L, -3);
    lua_rawseti(L, -2, i);
  }
}

static void strings_only(lua_State *L) {
  lua_createtable(L, n, 0);
  for (int i = 1; i <= n; i++) {
    lua_pushlstring(L, names + 16 * (i - 1), lens[i - 1]);
    lua_rawseti(L, -2, i);
  }
}

static void tables_only(lua_State *L) {
  lua_createtable(L, 2 * n, 0);
  for (int i = 1; i <= n; i++) {
    lua_createtable(L, 0, 3); /* a record's hash part */
    lua_rawseti(L, -2, 2 * i - 1);
    lua_createtable(L, 3, 0); /* its vals array */
    lua_rawseti(L, -2, 2 * i);
  }
}

/* Best of `rounds` runs of f, each from a fully collected heap; the value
   f leaves is dropped after the timing. */
static double best_of(lua_State *L, void (*f)(lua_State *)) {
  double best = 1e9;
  for (int r = 0; r < rounds; r++) {
    lua_gc(L, LUA_GCCOLLECT);
    double t0 = now_s();
    f(L);
    double dt = now_s() - t0;
    lua_pop(L, 1);
    if (dt < best) best = dt;
  }
  return best;
}

static mar_buf msg;

static void decode(lua_State *L) {
  char err[256];
  if (mar_decode(L, msg.data, msg.len, err, sizeof err) != 1) {
    fprintf(stderr, "decode: %s\n", err);
    exit(1);
  }
}

static void encode_top(lua_State *L) {
  char err[256];
  msg.len = 0;
  if (mar_encode(L, -1, 1, "records", &msg, err, sizeof err) != 0) {
    fprintf(stderr, "encode: %s\n", err);
    exit(1);
  }
  lua_pushnil(L); /* best_of pops one value */
}

int main(int argc, char **argv) {
  n = argc > 1 ? atoi(argv[1]) : 100000;
  rounds = argc > 2 ? atoi(argv[2]) : 5;
  if (n < 1 || rounds < 1) return 2;
  names = malloc((size_t)n * 16);
  lens = malloc((size_t)n * sizeof *lens);
  for (int i = 1; i <= n; i++) lens[i - 1] = (size_t)snprintf(names + 16 * (i - 1), 16, "item%d", i);

  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  mar_init();

  build_c_api(L); /* the records to encode stay at index 1 */
  double enc = best_of(L, encode_top);
  double dec = best_of(L, decode);
  double build = best_of(L, build_c_api);
  double strs = best_of(L, strings_only);
  double tabs = best_of(L, tables_only);

  /* the decoded copy must equal the records: spot-check the last one */
  decode(L);
  lua_rawgeti(L, -1, n);
  lua_getfield(L, -1, "name");
  if (strncmp(lua_tostring(L, -1), names + 16 * (n - 1), lens[n - 1]) != 0) {
    fprintf(stderr, "the copy differs\n");
    return 1;
  }
  printf("%d records, %zu bytes, best of %d rounds\n", n, msg.len, rounds);
  printf("encode        %7.1f ms\n", enc * 1e3);
  printf("decode        %7.1f ms\n", dec * 1e3);
  printf("C-API build   %7.1f ms  (decode / build = %.2f)\n", build * 1e3, dec / build);
  printf("  strings     %7.1f ms  (%d new strings: lua_pushlstring + lua_rawseti)\n", strs * 1e3, n);
  printf("  tables      %7.1f ms  (%d empty tables sized like the records': lua_createtable + lua_rawseti)\n",
         tabs * 1e3, 2 * n);
  mar_buf_free(&msg);
  lua_close(L);
  free(names);
  free(lens);
  return 0;
}
