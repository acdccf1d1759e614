/*
 * fuzz_marshal.c - libFuzzer target for mar_decode.
 *
 *   clang -std=c11 -D_GNU_SOURCE -g -fsanitize=fuzzer,address,undefined -Ivm/share \
 *     vm/share/marshal.c tests/fuzz_marshal.c $(pkg-config --cflags --libs lua5.4 libsodium) -o fuzz_marshal
 *   ./fuzz_marshal -max_total_time=30 tests/data/marshal_corpus
 *
 * The first input byte picks what the rest is:
 *   even: a whole message.
 *   odd:  the upvalue part of a function message. The fuzzer cannot forge
 *         bytecode (it is authenticated with this process's key), so we glue
 *         its bytes after the header and the signed bytecode of a function
 *         with three upvalues made at start-up; that reaches the upvalue and
 *         UPJOIN code. The function's tag is marked SHARED, so a REF or
 *         UPJOIN to offset 9 finds it.
 *
 * A userdata codec "fuzz.box" (up to 16 raw bytes) is registered.
 *
 * Properties checked: decoding returns -1 or the values it pushed (the stack
 * says the same); a decoded value encodes again (unless nested too deep
 * along another path) and that message decodes to as many values.
 */
#include "marshal.h"

#include <lauxlib.h>
#include <lualib.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static lua_State *L;
static unsigned char *fn_prefix; /* header + count + signed function, up to its upvalues */
static size_t fn_prefix_len;

/* A userdata codec, so that UDATA is reached: a box of up to 16 bytes. */
static int box_encode(lua_State *L, int idx, unsigned char *out, size_t cap) {
  size_t len = lua_rawlen(L, idx);
  if (len > 16 || len > cap) return -1;
  memcpy(out, lua_touserdata(L, idx), len);
  return (int)len;
}

static int box_decode(lua_State *L, const unsigned char *p, size_t len) {
  if (len > 16) return -1;
  memcpy(lua_newuserdatauv(L, len, 0), p, len);
  luaL_setmetatable(L, "fuzz.box");
  return 0;
}

static void die(const char *what, const char *err) {
  fprintf(stderr, "fuzz_marshal: %s: %s\n", what, err);
  abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  char err[256];
  L = luaL_newstate();
  luaL_openlibs(L);
  luaL_newmetatable(L, "fuzz.box");
  lua_pop(L, 1);
  mar_register_udata("fuzz.box", box_encode, box_decode);
  if (luaL_dostring(L, "local a, b, c = 1, {}, 'x' return function() return a, b, c end") != LUA_OK)
    die("setup", lua_tostring(L, -1));
  mar_buf b = { 0 };
  if (mar_encode(L, -1, 1, "f", &b, err, sizeof err) != 0) die("setup", err);
  lua_settop(L, 0);
  /* layout: header (8), count (1), LFUNC tag (9), length (10..13), bytecode, mac (8) */
  size_t len = (size_t)b.data[10] | (size_t)b.data[11] << 8 | (size_t)b.data[12] << 16 | (size_t)b.data[13] << 24;
  fn_prefix_len = 14 + len + 8;
  fn_prefix = malloc(fn_prefix_len);
  memcpy(fn_prefix, b.data, fn_prefix_len);
  fn_prefix[9] |= MAR_T_SHARED;
  mar_buf_free(&b);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static unsigned long runs;
  char err[256];
  if (size == 0) return 0;
  size_t prefix = (data[0] & 1) ? fn_prefix_len : 0;
  size_t len = prefix + size - 1;
  unsigned char *msg = malloc(len ? len : 1); /* exact size, so ASan sees overreads */
  if (prefix) memcpy(msg, fn_prefix, prefix);
  if (size > 1) memcpy(msg + prefix, data + 1, size - 1);

  int top = lua_gettop(L);
  int n = mar_decode(L, msg, len, err, sizeof err);
  if (n < 0) {
    if (lua_gettop(L) != top) die("stack changed by a failed decode", err);
  } else {
    if (lua_gettop(L) != top + n) die("decode pushed a wrong number of values", "");
    mar_buf again = { 0 };
    if (mar_encode(L, top + 1, n, "decoded", &again, err, sizeof err) == 0) {
      int n2 = mar_decode(L, again.data, again.len, err, sizeof err);
      if (n2 != n) die("re-encoded message did not decode", err);
    } else if (!strstr(err, "nesting deeper than")) {
      die("decoded value did not encode", err);
    }
    mar_buf_free(&again);
  }
  lua_settop(L, top);
  free(msg);
  if (++runs % 256 == 0) lua_gc(L, LUA_GCCOLLECT); /* bound the garbage between runs */
  return 0;
}
