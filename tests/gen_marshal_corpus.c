/*
 * gen_marshal_corpus.c - writes seed inputs for fuzz_marshal.
 *
 *   gcc -std=c11 -D_GNU_SOURCE -Ivm/share vm/share/marshal.c tests/gen_marshal_corpus.c \
 *     $(pkg-config --cflags --libs lua5.4 libsodium) -o gen && ./gen tests/data/marshal_corpus
 *
 * Each file is one mode byte (see fuzz_marshal.c) and then bytes: whole
 * messages made by the encoder (mode 0), and upvalue parts written by hand
 * (mode 1). Functions in the mode-0 seeds carry this generator's key, so the
 * fuzzer sees them refused; their shape is still a useful start.
 */
#include "marshal.h"

#include <lauxlib.h>
#include <lualib.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const SEEDS[] = {
  "return nil, true, false, 0, -1, math.maxinteger, math.mininteger, 1.5, -0.0, 1/0, 0/0, 3.0",
  "return '', 'hello', 'a\\0b', string.rep('xyz', 30)",
  "return {1, 2, 3}, {x = 1, y = {z = 'deep'}}, {[1.5] = 1, [true] = 2, [-1] = 3, ['1'] = 4}",
  "local t = {} t.self = t t.list = {t} return t",
  "local x = {1} return {a = x, b = x}, x, x",
  "local mt = {__index = {k = 1}} return setmetatable({}, mt), setmetatable({}, mt)",
  "local t = {} for i = 1, 20 do t[i] = {id = i, name = 'item' .. i, vals = {i * 1.5, i * 2.5, i}} end return t",
  "return string, _G, {m = math}",
  "return print, math.sin, string.format",
  "local c = 0 local function inc() c = c + 1 return c end return inc, function() return c end",
  "local t = {} local r = t for i = 1, 30 do t[1] = {} t = t[1] end return r",
};

/* Upvalue parts for mode 1: the prefix function has 3 upvalues; its tag is at offset 9. */
static const unsigned char UPVALS_PLAIN[] = { 3, 3, 2, 6, 0, 0, 0, 0, 0, 0, 0, 0, 5, 1, 'x' };
static const unsigned char UPVALS_JOIN[] = { 3, 13, 9, 2, 3, 4, 13, 9, 1 };
static const unsigned char UPVALS_SELF[] = { 3, 8, 9, 0, 9, 2, 'G', '_' };
/* A message with a "fuzz.box" userdata (the codec fuzz_marshal registers), twice. */
static const unsigned char BOXES[] = { 'G', 'V', 'M', 1,         1,   0,   0,   0,   2,   MAR_T_UDATA | MAR_T_SHARED,
                                       8,   'f', 'u', 'z',       'z', '.', 'b', 'o', 'x', 3,
                                       'a', 'b', 'c', MAR_T_REF, 9 };

static void write_seed(const char *dir, const char *name, int mode, const unsigned char *p, size_t len) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  if (!f || fputc(mode, f) == EOF || fwrite(p, 1, len, f) != len || fclose(f) != 0) {
    perror(path);
    exit(1);
  }
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s DIRECTORY\n", argv[0]);
    return 2;
  }
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  char name[64], err[256];
  for (size_t i = 0; i < sizeof SEEDS / sizeof SEEDS[0]; i++) {
    lua_settop(L, 0);
    if (luaL_dostring(L, SEEDS[i]) != LUA_OK) {
      fprintf(stderr, "seed %zu: %s\n", i, lua_tostring(L, -1));
      return 1;
    }
    mar_buf b = { 0 };
    if (mar_encode(L, 1, lua_gettop(L), "seed", &b, err, sizeof err) != 0) {
      fprintf(stderr, "seed %zu: %s\n", i, err);
      return 1;
    }
    snprintf(name, sizeof name, "message-%02zu", i);
    write_seed(argv[1], name, 0, b.data, b.len);
    mar_buf_free(&b);
  }
  write_seed(argv[1], "upvalues-plain", 1, UPVALS_PLAIN, sizeof UPVALS_PLAIN);
  write_seed(argv[1], "upvalues-join", 1, UPVALS_JOIN, sizeof UPVALS_JOIN);
  write_seed(argv[1], "upvalues-self", 1, UPVALS_SELF, sizeof UPVALS_SELF);
  write_seed(argv[1], "userdata", 0, BOXES, sizeof BOXES);
  lua_close(L);
  return 0;
}
