/*
 * test_marshal.c - unit tests of vm/share/marshal.c.
 *
 * Values are made in one lua_State (src), encoded, and decoded into another
 * (dst); checks run as Lua code in dst, so a failing Lua assert() fails the
 * test with its message.
 */
#include "marshal.h"

#include <criterion/criterion.h>
#include <lauxlib.h>
#include <lualib.h>

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static lua_State *src, *dst;

/* Under ThreadSanitizer every refused message leaks a few frames of TSan's
   shadow stack (liblua, not instrumented, longjmps over our frames), and at
   65536 frames TSan stops the process. So the hostile tests that refuse
   thousands of messages try fewer there; ASan, UBSan and the fuzzer do the
   memory-safety work. */
#if defined(__SANITIZE_THREAD__)
#define HOSTILE_STEP 8
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define HOSTILE_STEP 8
#endif
#endif
#ifndef HOSTILE_STEP
#define HOSTILE_STEP 1
#endif

/* --- a userdata type with a codec, standing in for shared-object handles --- */

#define HANDLE "test.handle"

typedef struct handle {
  lua_Integer id;
} handle;

static void push_handle(lua_State *L, lua_Integer id) {
  handle *h = lua_newuserdatauv(L, sizeof *h, 0);
  h->id = id;
  luaL_setmetatable(L, HANDLE);
}

static int handle_encode(lua_State *L, int idx, unsigned char *out, size_t cap) {
  handle *h = luaL_testudata(L, idx, HANDLE);
  if (!h || h->id < 0 || cap < sizeof h->id) return -1; /* negative ids: refused */
  memcpy(out, &h->id, sizeof h->id);
  return (int)sizeof h->id;
}

static int handle_decode(lua_State *L, const unsigned char *p, size_t len) {
  lua_Integer id;
  if (len != sizeof id) return -1;
  memcpy(&id, p, sizeof id);
  if (id == 666) return -1; /* the decoder may refuse too */
  push_handle(L, id);
  return 0;
}

static int l_handle(lua_State *L) {
  push_handle(L, luaL_checkinteger(L, 1));
  return 1;
}
static int l_handle_id(lua_State *L) {
  lua_pushinteger(L, ((handle *)luaL_checkudata(L, 1, HANDLE))->id);
  return 1;
}

static int not_a_builtin(lua_State *L) {
  (void)L;
  return 0;
}
static int twice(lua_State *L) {
  lua_pushinteger(L, 2 * luaL_checkinteger(L, 1));
  return 1;
}

/* Deep comparison used by the checks (scalar keys only). */
static const char *PRELUDE =
    "function same(a, b, seen)\n"
    "  if type(a) ~= type(b) then return false end\n"
    "  if type(a) == 'number' then\n"
    "    return math.type(a) == math.type(b) and string.pack('n', a) == string.pack('n', b)\n"
    "  end\n"
    "  if type(a) ~= 'table' then return a == b end\n"
    "  seen = seen or {}\n"
    "  if seen[a] then return seen[a] == b end\n"
    "  seen[a] = b\n"
    "  for k, v in next, a do if not same(v, rawget(b, k), seen) then return false end end\n"
    "  for k in next, b do if rawget(a, k) == nil then return false end end\n"
    "  return same(debug.getmetatable(a), debug.getmetatable(b), seen)\n"
    "end\n";

static lua_State *new_state(void) {
  lua_State *L = luaL_newstate();
  cr_assert_not_null(L);
  luaL_openlibs(L);
  luaL_newmetatable(L, HANDLE);
  lua_pop(L, 1);
  lua_register(L, "handle", l_handle);
  lua_register(L, "handle_id", l_handle_id);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE); /* a C module: testmod.twice */
  lua_newtable(L);
  lua_pushcfunction(L, twice);
  lua_setfield(L, -2, "twice");
  lua_setfield(L, -2, "testmod");
  lua_pop(L, 1);
  cr_assert_eq(luaL_dostring(L, PRELUDE), LUA_OK);
  return L;
}

static void setup(void) {
  cr_assert_eq(mar_init(), 0);
  mar_register_udata(HANDLE, handle_encode, handle_decode); /* -1 if already there */
  src = new_state();
  dst = new_state();
}

static void teardown(void) {
  lua_close(src);
  lua_close(dst);
}

/* Runs code (chunk name `name`) in L and leaves its results; returns how many. */
static int run_named(lua_State *L, const char *name, const char *code) {
  int top = lua_gettop(L);
  int status = luaL_loadbuffer(L, code, strlen(code), name);
  if (status == LUA_OK) status = lua_pcall(L, 0, LUA_MULTRET, 0);
  cr_assert_eq(status, LUA_OK, "Lua error: %s", lua_tostring(L, -1));
  return lua_gettop(L) - top;
}

static int run(lua_State *L, const char *code) { return run_named(L, "=test", code); }

/* Encodes the n values on top of src (removing them) into b. */
static void encode_top(int n, const char *what, mar_buf *b) {
  char err[256];
  int top = lua_gettop(src);
  int r = mar_encode(src, -n, n, what, b, err, sizeof err);
  cr_assert_eq(r, 0, "encode failed: %s", err);
  cr_assert_eq(lua_gettop(src), top, "encode changed the stack");
  lua_pop(src, n);
}

/* Moves the n values on top of src to the top of dst. */
static void transfer(int n) {
  mar_buf b = { 0 };
  char err[256];
  encode_top(n, "values", &b);
  int top = lua_gettop(dst);
  int r = mar_decode(dst, b.data, b.len, err, sizeof err);
  cr_assert_eq(r, n, "decode returned %d: %s", r, r < 0 ? err : "");
  cr_assert_eq(lua_gettop(dst), top + n);
  mar_buf_free(&b);
}

/* Calls `return <fn>` (a Lua function expression) in L with the n values on
   top, which it consumes; Lua errors fail the test. */
static void check(lua_State *L, int n, const char *fn) {
  char code[4096];
  snprintf(code, sizeof code, "return %s", fn);
  cr_assert_eq(luaL_loadbuffer(L, code, strlen(code), "=check"), LUA_OK, "%s", lua_tostring(L, -1));
  lua_call(L, 0, 1);
  lua_insert(L, -(n + 1));
  int status = lua_pcall(L, n, 0, 0);
  cr_assert_eq(status, LUA_OK, "check failed: %s", lua_tostring(L, -1));
}

/* Runs code in src and in dst, moves src's values over, and checks that they
   are the same as dst's own (deep comparison). */
static void roundtrip_same(const char *code) {
  int n = run(src, code);
  transfer(n);
  cr_assert_eq(run(dst, code), n);
  for (int i = 0; i < n; i++) {
    lua_pushvalue(dst, -n - n + i); /* decoded value i */
    lua_pushvalue(dst, -n - 1 + i); /* expected value i */
    check(dst, 2, "function(got, want) assert(same(got, want), 'values differ') end");
  }
  lua_pop(dst, 2 * n);
}

/* Encoding that must fail: returns the message, after checking that neither
   the stack nor the buffer changed. */
static const char *refuse(lua_State *L, int n, const char *what) {
  static char err[512];
  mar_buf b = { malloc(3), 3, 3 }; /* something already in the buffer */
  cr_assert_not_null(b.data);
  memcpy(b.data, "abc", 3);
  int top = lua_gettop(L);
  int r = mar_encode(L, -n, n, what, &b, err, sizeof err);
  cr_assert_eq(r, -1, "encoding should have failed");
  cr_assert_eq(lua_gettop(L), top, "stack changed");
  cr_assert_eq(b.len, 3, "buffer changed");
  mar_buf_free(&b);
  lua_pop(L, n);
  return err;
}

/* ------------------------------------------------------------------ */
/* Round trips                                                          */
/* ------------------------------------------------------------------ */

TestSuite(roundtrip, .init = setup, .fini = teardown);

Test(roundtrip, scalars_keep_values_and_subtypes) {
  int n = run(src,
              "return nil, true, false, 0, -1, 42, math.maxinteger, math.mininteger,"
              " 3.0, 1.5, -0.0, 1/0, -1/0, 2^63, 1e-310, '', 'hello'");
  cr_assert_eq(n, 17);
  transfer(n);
  check(dst, n,
        "function(...)\n"
        "  local v = table.pack(...)\n"
        "  assert(v.n == 17)\n"
        "  assert(v[1] == nil and v[2] == true and v[3] == false)\n"
        "  for i, want in ipairs{0, -1, 42, math.maxinteger, math.mininteger} do\n"
        "    assert(math.type(v[3 + i]) == 'integer' and v[3 + i] == want, 'integer ' .. i)\n"
        "  end\n"
        "  assert(math.type(v[9]) == 'float' and v[9] == 3.0, '3.0 must stay a float')\n"
        "  assert(v[10] == 1.5)\n"
        "  assert(v[11] == 0 and 1/v[11] == -1/0, 'negative zero')\n"
        "  assert(v[12] == 1/0 and v[13] == -1/0)\n"
        "  assert(math.type(v[14]) == 'float' and v[14] == 2^63)\n"
        "  assert(v[15] == 1e-310, 'subnormal')\n"
        "  assert(v[16] == '' and v[17] == 'hello')\n"
        "end");
}

Test(roundtrip, nan_bits_are_exact) {
  const char *code =
      "local function f(bits) return (string.unpack('<d', string.pack('<I8', bits))) end\n"
      "return f(0x7ff8000000000000), f(0x7ff8dead0000beef), f(0xfff8000000000001), 0/0";
  int n = run(src, code);
  transfer(n);
  check(dst, n,
        "function(a, b, c, d)\n"
        "  local function bits(x) return (string.unpack('<I8', string.pack('<d', x))) end\n"
        "  for _, x in ipairs{a, b, c, d} do assert(x ~= x, 'not a NaN') end\n"
        "  assert(bits(a) == 0x7ff8000000000000)\n"
        "  assert(bits(b) == 0x7ff8dead0000beef, string.format('%x', bits(b)))\n"
        "  assert(bits(c) == 0xfff8000000000001)\n"
        "end");
}

Test(roundtrip, strings_are_binary_safe) {
  roundtrip_same(
      "local t = {} for i = 0, 255 do t[#t + 1] = string.char(i) end\n"
      "local all = table.concat(t)\n"
      "return all, 'a\\0b\\0', string.rep(all, 4096), string.rep('x', 41)");
  /* the 1 MB string really arrived */
  run(src, "return string.rep('ab\\0', 400000)");
  transfer(1);
  check(dst, 1, "function(s) assert(#s == 1200000 and s == string.rep('ab\\0', 400000)) end");
}

Test(roundtrip, no_values_and_many_values) {
  transfer(0);
  cr_assert_eq(lua_gettop(dst), 0);
  int n = run(src, "local t = {} for i = 1, 300 do t[i] = i * 3 end return table.unpack(t)");
  cr_assert_eq(n, 300);
  transfer(n);
  check(dst, n, "function(...) local v = {...} assert(#v == 300) for i = 1, 300 do assert(v[i] == i * 3) end end");
}

Test(roundtrip, tables_with_every_kind_of_key) {
  roundtrip_same(
      "return {1, 2, 3, x = 'y', [0] = 'zero', [-5] = 'neg', [1.5] = 'float',\n"
      "        [true] = 'yes', [false] = 'no', ['1'] = 'string one', [2^60] = 'big',\n"
      "        nested = {deeper = {deepest = {}}}, [10] = 'after a hole'}");
  roundtrip_same("local t = {1, 2, nil, 4} t[7] = 7 return t, {}, {{}, {{}}}");
  roundtrip_same(
      "local t = {} for i = 1, 1000 do t[i] = {id = i, name = 'item' .. i,"
      " vals = {i * 1.5, i * 2.5, i}} end return t");
}

Test(roundtrip, cycles_are_kept) {
  run(src, "local t = {} t.self = t t.list = {t, {t}} return t");
  transfer(1);
  check(dst, 1,
        "function(t)\n"
        "  assert(t.self == t and t.list[1] == t and t.list[2][1] == t)\n"
        "end");
}

Test(roundtrip, shared_references_decode_as_one_table) {
  run(src, "local x = {1} local y = {x, x} return {a = x, b = x, [x] = 'key'}, x, y, x");
  transfer(4);
  check(dst, 4,
        "function(t, x, y, x2)\n"
        "  assert(t.a == x and t.b == x and x2 == x and y[1] == x and y[2] == x)\n"
        "  assert(t[x] == 'key', 'a table used as a key is the same table')\n"
        "  x[1] = 'changed' assert(t.a[1] == 'changed')\n"
        "end");
}

Test(roundtrip, metatables_are_copied_and_set_last) {
  run(src,
      "local mt = {__index = function(t, k) return k .. '!' end}\n"
      "local a, b = setmetatable({}, mt), setmetatable({}, mt)\n"
      "local locked = setmetatable({v = 1}, {__metatable = 'locked'})\n"
      "local angry = setmetatable({v = 2}, {__index = function() error('touched') end,\n"
      "  __newindex = function() error('touched') end, __pairs = function() error('touched') end,\n"
      "  __len = function() error('touched') end})\n"
      "return a, b, locked, angry");
  transfer(4);
  check(dst, 4,
        "function(a, b, locked, angry)\n"
        "  assert(a.foo == 'foo!', 'metatable __index works in the destination')\n"
        "  assert(getmetatable(a) == getmetatable(b), 'one shared metatable')\n"
        "  assert(getmetatable(locked) == 'locked' and locked.v == 1)\n"
        "  assert(rawget(angry, 'v') == 2)\n"
        "end");
}

Test(roundtrip, gc_metamethod_is_registered_in_destination) {
  run(src, "return setmetatable({}, {__gc = function() collected = (collected or 0) + 1 end})");
  transfer(1);
  lua_pop(dst, 1);
  lua_gc(dst, LUA_GCCOLLECT);
  lua_gc(dst, LUA_GCCOLLECT);
  check(dst, 0, "function() assert(collected == 1, 'finalizer ran in dst') end");
}

Test(roundtrip, functions_with_upvalues) {
  run(src,
      "local n, cfg = 10, {k = 3}\n"
      "local function fact(i) return i <= 1 and 1 or i * fact(i - 1) end\n"
      "return function(x) return x + n end, function(x) return x * cfg.k end, fact");
  transfer(3);
  check(dst, 3,
        "function(add, mul, fact)\n"
        "  assert(add(5) == 15)\n"
        "  assert(mul(5) == 15)\n"
        "  assert(fact(5) == 120, 'a recursive local function refers to itself')\n"
        "end");
}

Test(roundtrip, shared_upvalues_are_rejoined) {
  run(src,
      "local c = 0\n"
      "local function inc() c = c + 1 return c end\n"
      "local function get() return c end\n"
      "inc()\n"
      "return {inc = inc, get = get}, inc");
  transfer(2);
  check(dst, 2,
        "function(t, inc)\n"
        "  assert(t.inc == inc)\n"
        "  assert(t.get() == 1, 'the value came along')\n"
        "  inc() inc()\n"
        "  assert(t.get() == 3, 'both closures still share c')\n"
        "end");
}

Test(roundtrip, upvalues_shared_across_messages_are_not_joined) {
  run(src, "local c = 0 return function() c = c + 1 return c end, function() return c end");
  lua_pushvalue(src, -2);
  transfer(1); /* inc alone */
  lua_insert(src, -2);
  lua_pop(src, 1);
  transfer(1); /* get alone */
  check(dst, 2, "function(inc, get) inc() assert(get() == 0, 'separate messages: separate copies') end");
}

Test(roundtrip, env_becomes_destination_globals) {
  run(src, "X = 'src' return function() Y = 'set by f' return X end");
  transfer(1);
  run(dst, "X = 'dst'");
  check(dst, 1,
        "function(f)\n"
        "  assert(f() == 'dst')\n"
        "  assert(Y == 'set by f')\n"
        "  local name, env = debug.getupvalue(f, 1)\n"
        "  assert(name == '_ENV' and rawequal(env, _G))\n"
        "end");
}

Test(roundtrip, functions_keep_debug_info) {
  run_named(src, "=lib.lua", "local x = 1\n\nreturn function()\n  error('boom')\nend");
  transfer(1);
  check(dst, 1,
        "function(f)\n"
        "  local ok, msg = pcall(f)\n"
        "  assert(not ok and msg == 'lib.lua:4: boom', msg)\n"
        "  local info = debug.getinfo(f, 'S')\n"
        "  assert(info.short_src == 'lib.lua' and info.linedefined == 3)\n"
        "end");
}

Test(roundtrip, builtins_by_name) {
  run(src,
      "local sin = math.sin\n"
      "return print, math.sin, string.format, require, package.loaded.testmod.twice,\n"
      "  function(x) return sin(x) end");
  transfer(6);
  check(dst, 6,
        "function(p, sin, fmt, req, tw, f)\n"
        "  assert(rawequal(p, print) and rawequal(sin, math.sin) and rawequal(fmt, string.format))\n"
        "  assert(rawequal(req, require))\n"
        "  assert(rawequal(tw, package.loaded.testmod.twice) and tw(21) == 42)\n"
        "  assert(f(0) == 0 and rawequal(debug.getupvalue(f, 1) and select(2, debug.getupvalue(f, 1)), math.sin))\n"
        "end");
}

Test(roundtrip, module_tables_by_name) {
  run(src, "return string, _G, package.loaded.testmod, {lib = math}");
  transfer(4);
  check(dst, 4,
        "function(s, g, tm, t)\n"
        "  assert(rawequal(s, string) and rawequal(g, _G) and rawequal(tm, package.loaded.testmod))\n"
        "  assert(rawequal(t.lib, math))\n"
        "end");
}

Test(roundtrip, registered_userdata) {
  run(src, "local h = handle(7) return h, {h, h}, handle(8)");
  transfer(3);
  check(dst, 3,
        "function(h, t, h8)\n"
        "  assert(handle_id(h) == 7 and handle_id(h8) == 8)\n"
        "  assert(t[1] == h and t[2] == h, 'one handle reached twice stays one')\n"
        "end");
}

Test(roundtrip, same_state_and_appending) {
  mar_buf b = { 0 };
  char err[256];
  run(src, "return {1, 2}, 'x'");
  cr_assert_eq(mar_encode(src, -2, 1, "first", &b, err, sizeof err), 0, "%s", err);
  size_t first_len = b.len;
  cr_assert_eq(mar_encode(src, -1, 1, "second", &b, err, sizeof err), 0, "%s", err);
  lua_pop(src, 2);
  cr_assert_eq(mar_decode(src, b.data, first_len, err, sizeof err), 1, "%s", err);
  cr_assert_eq(mar_decode(src, b.data + first_len, b.len - first_len, err, sizeof err), 1, "%s", err);
  check(src, 2, "function(t, x) assert(t[1] == 1 and t[2] == 2 and x == 'x') end");
  cr_assert_eq(mar_decode(src, b.data, b.len, err, sizeof err), -1, "two messages are not one");
  mar_buf_free(&b);
}

Test(roundtrip, counters_count_message_bytes) {
  unsigned long long e0, d0, e1, d1;
  mar_counters(&e0, &d0);
  mar_buf b = { 0 };
  char err[256];
  run(src, "return {1, 2, 3}, 'abc'");
  cr_assert_eq(mar_encode(src, -2, 2, "x", &b, err, sizeof err), 0);
  cr_assert_eq(mar_decode(dst, b.data, b.len, err, sizeof err), 2);
  cr_assert_eq(mar_decode(dst, b.data, b.len - 1, err, sizeof err), -1);
  mar_counters(&e1, &d1);
  cr_assert_eq(e1 - e0, b.len);
  cr_assert_eq(d1 - d0, b.len, "failed decodes are not counted");
  mar_counters(NULL, NULL);
  mar_buf_free(&b);
}

/* Encodes a function and a handle in a forked child and decodes them in the parent. */
Test(roundtrip, forked_child_shares_the_key) {
  int fds[2];
  cr_assert_eq(pipe(fds), 0);
  pid_t pid = fork();
  cr_assert(pid >= 0);
  if (pid == 0) {
    run(src, "local k = 5 return function(x) return x * k end, handle(9)");
    mar_buf b = { 0 };
    char err[256];
    int ok =
        mar_encode(src, -2, 2, "results", &b, err, sizeof err) == 0 && write(fds[1], b.data, b.len) == (ssize_t)b.len;
    _exit(ok ? 0 : 1);
  }
  close(fds[1]);
  unsigned char buf[65536];
  size_t len = 0;
  ssize_t r;
  while ((r = read(fds[0], buf + len, sizeof buf - len)) > 0) len += (size_t)r;
  close(fds[0]);
  int status;
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child failed");
  char err[256];
  cr_assert_eq(mar_decode(dst, buf, len, err, sizeof err), 2, "%s", err);
  check(dst, 2, "function(f, h) assert(f(3) == 15 and handle_id(h) == 9) end");
}

typedef struct worker {
  int ok;
} worker;

static void *thread_roundtrips(void *arg) {
  worker *w = arg;
  lua_State *a = luaL_newstate(), *b = luaL_newstate();
  luaL_openlibs(a);
  luaL_openlibs(b);
  mar_buf buf = { 0 };
  char err[256];
  w->ok = luaL_dostring(a, "local n = 0 return function() n = n + 1 return n end, {1, 2, {3}}") == LUA_OK;
  for (int i = 0; w->ok && i < 300; i++) {
    buf.len = 0;
    w->ok =
        mar_encode(a, -2, 2, "x", &buf, err, sizeof err) == 0 && mar_decode(b, buf.data, buf.len, err, sizeof err) == 2;
    lua_settop(b, 0);
  }
  mar_buf_free(&buf);
  lua_close(a);
  lua_close(b);
  return NULL;
}

Test(roundtrip, threads_marshal_concurrently) {
  pthread_t t[4];
  worker w[4];
  for (int i = 0; i < 4; i++) cr_assert_eq(pthread_create(&t[i], NULL, thread_roundtrips, &w[i]), 0);
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  for (int i = 0; i < 4; i++) cr_assert(w[i].ok, "thread %d failed", i);
}

Test(roundtrip, api_edges) {
  char err[256];
  mar_buf b = { 0 };
  cr_assert_eq(mar_register_udata(HANDLE, handle_encode, handle_decode), -1, "registered twice");
  char long_name[80];
  memset(long_name, 'n', sizeof long_name - 1);
  long_name[sizeof long_name - 1] = 0;
  cr_assert_eq(mar_register_udata(long_name, handle_encode, handle_decode), -1, "name too long");
  cr_assert_eq(mar_register_udata("x", NULL, handle_decode), -1);

  run(src, "return 1, 2");
  cr_assert_eq(mar_encode(src, 2, 2, "x", &b, err, sizeof err), -1);
  cr_assert_str_eq(err, "mar_encode: values out of the stack");
  cr_assert_eq(mar_encode(src, 1, -1, "x", &b, err, sizeof err), -1);
  cr_assert_eq(b.len, 0);
  cr_assert_eq(mar_encode(src, 1, 2, "x", &b, NULL, 0), 0, "a NULL err is fine");
  cr_assert_eq(lua_gettop(src), 2);
  lua_settop(src, 0);
  lua_pushlightuserdata(src, &b);
  cr_assert_eq(mar_encode(src, 1, 1, "x", &b, err, 8), -1);
  cr_assert_str_eq(err, "cannot ", "a short err buffer keeps the start of the reason");
  lua_settop(src, 0);
  mar_buf_free(&b);
  cr_assert_null(b.data);
}

/* ------------------------------------------------------------------ */
/* Refusals: the message names the type and the path                    */
/* ------------------------------------------------------------------ */

TestSuite(refusal, .init = setup, .fini = teardown);

Test(refusal, userdata_in_results) {
  run(src, "return 1, 2, {cb = io.stdout}");
  cr_assert_str_eq(refuse(src, 3, "results"), "results[3].cb: cannot copy a userdata");
}

Test(refusal, coroutine_and_light_userdata) {
  run(src, "return coroutine.create(print)");
  cr_assert_str_eq(refuse(src, 1, "argument 2"), "argument 2: cannot copy a thread (coroutine)");
  lua_pushlightuserdata(src, &src);
  cr_assert_str_eq(refuse(src, 1, NULL), "value: cannot copy a light userdata");
}

Test(refusal, c_function_not_a_builtin) {
  run(src, "return function(cf) return {config = {['a b'] = cf}} end");
  lua_pushcfunction(src, not_a_builtin);
  lua_call(src, 1, 1);
  cr_assert_str_eq(refuse(src, 1, "globals"),
                   "globals.config[\"a b\"]: cannot copy a C function that is not a builtin");
}

Test(refusal, keys_of_every_kind_in_paths) {
  run(src, "return { {[3] = {[1.5] = {[true] = {io.stdout}}}} }");
  cr_assert_str_eq(refuse(src, 1, "x"), "x[1][3][1.5][true][1]: cannot copy a userdata");
  run(src, "return {['end'] = {['\\n'] = io.stdout}}");
  cr_assert_str_eq(refuse(src, 1, "x"), "x[\"end\"][\"\\n\"]: cannot copy a userdata");
  run(src, "return {[io.stdout] = 1}");
  cr_assert_str_eq(refuse(src, 1, "globals"), "globals.<key>: cannot copy a userdata");
  run(src, "return setmetatable({}, {__index = io.stdout})");
  cr_assert_str_eq(refuse(src, 1, "x"), "x.<metatable>.__index: cannot copy a userdata");
}

Test(refusal, upvalue_path_names_the_function) {
  run_named(src, "=file.lua",
            "local state = {conn = io.stdout}\n\n\n\n\n\n\n\n\n\n\n"
            "return function() return state end\n");
  cr_assert_str_eq(refuse(src, 1, "argument"),
                   "argument.<upvalue 'state' of function (file.lua:12)>.conn: cannot copy a userdata");
}

Test(refusal, codec_may_refuse) {
  run(src, "return {h = handle(-1)}");
  cr_assert_str_eq(refuse(src, 1, "x"), "x.h: cannot copy a userdata 'test.handle': its codec refused it");
}

Test(refusal, too_deep) {
  /* 200 nested tables are fine; the 201st is refused */
  const char *make =
      "local n = ... local root = {} local t = root\n"
      "for i = 2, n do t[1] = {} t = t[1] end return root";
  cr_assert_eq(luaL_loadstring(src, make), LUA_OK);
  lua_pushinteger(src, 200);
  lua_call(src, 1, 1);
  transfer(1);
  check(dst, 1, "function(t) local d = 0 while t do d = d + 1 t = t[1] end assert(d == 200) end");

  cr_assert_eq(luaL_loadstring(src, make), LUA_OK);
  lua_pushinteger(src, 201);
  lua_call(src, 1, 1);
  cr_assert_str_eq(refuse(src, 1, "x"), "x[1][1][1][1]...[1][1][1][1][1][1][1][1]: nesting deeper than 200 levels");

  /* the limit also holds through functions, and a cycle is not depth */
  cr_assert_eq(
      luaL_loadstring(
          src, "local f = function() end for i = 1, 250 do local g = f f = function() return g end end return f"),
      LUA_OK);
  lua_call(src, 0, 1);
  const char *msg = refuse(src, 1, "x");
  cr_assert(strstr(msg, "nesting deeper than 200 levels") && strstr(msg, "<upvalue 'g' of function"), "%s", msg);
}

Test(refusal, decoding_needs_what_the_destination_lacks) {
  mar_buf b = { 0 };
  char err[256];
  run(src, "package.loaded.onlysrc = {} return package.loaded.onlysrc");
  encode_top(1, "x", &b);
  cr_assert_eq(mar_decode(dst, b.data, b.len, err, sizeof err), -1);
  cr_assert(strstr(err, "module 'onlysrc' is not loaded in the destination"), "%s", err);
  b.len = 0;
  run(src, "return package.loaded.testmod.twice");
  encode_top(1, "x", &b);
  run(dst, "package.loaded.testmod.twice = nil");
  cr_assert_eq(mar_decode(dst, b.data, b.len, err, sizeof err), -1);
  cr_assert(strstr(err, "no builtin 'testmod.twice' in the destination"), "%s", err);
  b.len = 0;
  run(src, "return handle(666)");
  encode_top(1, "x", &b);
  cr_assert_eq(mar_decode(dst, b.data, b.len, err, sizeof err), -1);
  cr_assert(strstr(err, "userdata 'test.handle' rejected by its codec"), "%s", err);
  cr_assert_eq(lua_gettop(dst), 0);
  mar_buf_free(&b);
}

/* ------------------------------------------------------------------ */
/* Hostile input: decode returns -1 or values, never crashes             */
/* ------------------------------------------------------------------ */

TestSuite(hostile, .init = setup, .fini = teardown);

/* Messages are forged with the wire format's own tags (enum mar_tag, marshal.h). */

static const char *RICH =
    "local shared = {1, 2, 3}\n"
    "local c = 0\n"
    "local function inc() c = c + 1 return c end\n"
    "local function get() return c end\n"
    "local t = {b = true, f = false, i = -12345, big = math.maxinteger, x = 1.5, nan = 0/0,\n"
    "  s = 'hello\\0world', list = {1, 2.5, 'three', shared}, shared = shared, inc = inc,\n"
    "  get = get, sin = math.sin, print = print, G = _G, str = string, h = handle(3),\n"
    "  [1.5] = 'float key', [true] = 'bool key', [-7] = {}}\n"
    "t.self = t\n"
    "return setmetatable(t, {__index = shared}), shared, 'tail'";

/* Decodes p into dst; checks that the stack is consistent with the result. */
static int try_decode(const unsigned char *p, size_t len, char *err, size_t errlen) {
  int top = lua_gettop(dst);
  int r = mar_decode(dst, p, len, err, errlen);
  if (r < 0) {
    cr_assert_eq(r, -1);
    cr_assert_eq(lua_gettop(dst), top, "failed decode changed the stack");
    cr_assert(err[0] != 0, "failed decode without a message");
  } else {
    cr_assert_eq(lua_gettop(dst), top + r, "decode pushed a wrong number of values");
  }
  lua_settop(dst, top);
  return r;
}

static void encode_rich(mar_buf *b) {
  int n = run(src, RICH);
  encode_top(n, "rich", b);
}

Test(hostile, every_truncation_fails) {
  mar_buf b = { 0 };
  char err[256];
  encode_rich(&b);
  cr_assert_eq(try_decode(b.data, b.len, err, sizeof err), 3, "%s", err);
  for (size_t len = 0; len < b.len; len++) {
    unsigned char *copy = malloc(len ? len : 1); /* exact size: ASan sees overreads */
    memcpy(copy, b.data, len);
    cr_assert_eq(try_decode(copy, len, err, sizeof err), -1, "prefix of %zu bytes decoded", len);
    free(copy);
  }
  mar_buf_free(&b);
}

Test(hostile, every_bit_flip_is_safe) {
  mar_buf b = { 0 };
  char err[256];
  encode_rich(&b);
  unsigned char *copy = malloc(b.len);
  int decoded = 0, refused = 0;
  for (size_t i = 0; i < b.len; i += HOSTILE_STEP) {
    for (int bit = 0; bit < 8; bit++) {
      memcpy(copy, b.data, b.len);
      copy[i] ^= (unsigned char)(1 << bit);
      if (try_decode(copy, b.len, err, sizeof err) >= 0)
        decoded++;
      else
        refused++;
    }
    if (i % 64 == 0) lua_gc(dst, LUA_GCCOLLECT); /* run the finalizers of what was made */
  }
  cr_assert(refused > 0 && decoded > 0, "decoded %d, refused %d", decoded, refused);
  free(copy);
  mar_buf_free(&b);
}

Test(hostile, bytecode_is_authenticated) {
  mar_buf b = { 0 };
  char err[256];
  run(src, "return function(x) return x + 1 end");
  encode_top(1, "f", &b);
  /* header (8), count (1), LFUNC tag (1), length (4), bytecode, mac (8), ... */
  cr_assert_eq(b.data[9] & 0x7f, MAR_T_LFUNC);
  size_t len = (size_t)b.data[10] | (size_t)b.data[11] << 8 | (size_t)b.data[12] << 16 | (size_t)b.data[13] << 24;
  cr_assert(len > 20 && 14 + len + 8 < b.len);
  unsigned char *copy = malloc(b.len);
  for (size_t i = 14; i < 14 + len + 8; i++) {
    for (int bit = 0; bit < 8; bit++) {
      memcpy(copy, b.data, b.len);
      copy[i] ^= (unsigned char)(1 << bit);
      cr_assert_eq(try_decode(copy, b.len, err, sizeof err), -1, "flip at %zu accepted", i);
      cr_assert(strstr(err, "failed authentication"), "byte %zu: %s", i, err);
    }
  }
  free(copy);
  mar_buf_free(&b);
}

/* xorshift64: a fixed, reproducible sequence (sanitizer_setup.c owns rand_r) */
static uint64_t next_random(uint64_t *state) {
  *state ^= *state << 13;
  *state ^= *state >> 7;
  *state ^= *state << 17;
  return *state;
}

/* Remembers a refusal's reason if it is new: its message without the path,
   numbers and names ("unknown tag 0x90" and "unknown tag 0xff" are one). */
static void note_reason(char reasons[][64], int *n, const char *err) {
  const char *colon = strstr(err, ": "); /* "bad message at byte 12: reason" */
  const char *why = colon ? colon + 2 : err;
  why += strspn(why, " 0123456789");
  int len = (int)strcspn(why, "0123456789'");
  for (int i = 0; i < *n; i++)
    if ((int)strlen(reasons[i]) == (len < 63 ? len : 63) && strncmp(reasons[i], why, (size_t)len) == 0) return;
  if (*n < 32) snprintf(reasons[(*n)++], 64, "%.*s", len, why);
}

Test(hostile, random_bytes) {
  char err[256], reasons[32][64] = { "" };
  int decoded = 0, nreasons = 0;
  unsigned char msg[96];
  uint64_t seed = 0x9e3779b97f4a7c15ULL;
  for (int iter = 0; iter < 30000 / HOSTILE_STEP; iter++) {
    size_t len = (size_t)(next_random(&seed) % sizeof msg);
    for (size_t i = 0; i < len; i++) {
      /* mostly small tag-like bytes, so that decoding goes somewhere */
      uint64_t r = next_random(&seed);
      msg[i] = (unsigned char)(r % 4 ? r % 16 : r >> 8);
    }
    if (iter % 2 && len >= 9) { /* a valid header half of the time */
      memcpy(msg, "GVM\1", 4);
      memset(msg + 4, 0, 4);
      msg[8] = (unsigned char)(1 + next_random(&seed) % 3);
    }
    err[0] = '\0';
    if (try_decode(msg, len, err, sizeof err) >= 0)
      decoded++;
    else
      note_reason(reasons, &nreasons, err);
    if (iter % 1000 == 0) lua_gc(dst, LUA_GCCOLLECT);
  }
  /* the bytes got past the header into the decoder: some decode, and the
       refusals are for several different reasons, each with its message */
  cr_assert(decoded > 0, "no random message decoded");
  cr_assert(nreasons >= 8, "random messages refused for only %d reason(s), first: %s", nreasons, reasons[0]);
}

/* A forged message: header, then the given bytes. */
typedef struct forged {
  unsigned char b[64];
  size_t len;
} forged;

static forged forge(uint32_t count, const unsigned char *body, size_t len) {
  forged f = { { 'G', 'V', 'M', 1, 0, 0, 0, 0 }, 8 };
  f.b[f.len++] = (unsigned char)count;
  if (len) memcpy(f.b + f.len, body, len);
  f.len += len;
  return f;
}

#define FORGED(count, ...) \
  forge(count, (const unsigned char[]){ __VA_ARGS__ }, sizeof((const unsigned char[]){ __VA_ARGS__ }))

static void expect_refused(forged f, const char *message) {
  char err[256];
  unsigned char *copy = malloc(f.len); /* exact size: ASan sees overreads */
  memcpy(copy, f.b, f.len);
  cr_assert_eq(try_decode(copy, f.len, err, sizeof err), -1, "accepted; expected \"%s\"", message);
  cr_assert(strstr(err, message), "got \"%s\", expected \"%s\"", err, message);
  free(copy);
}

Test(hostile, forged_messages) {
  char err[256];
  forged ok = FORGED(2, MAR_T_INT, 0x54, MAR_T_TABLE, 1, 0, 0, 0, 1, 0, 0, 0, MAR_T_TRUE, MAR_T_STR, 1, 'k', MAR_T_NIL);
  cr_assert_eq(try_decode(ok.b, ok.len, err, sizeof err), 2, "%s", err);

  forged empty = forge(0, NULL, 0);
  cr_assert_eq(try_decode(empty.b, empty.len, err, sizeof err), 0, "a message of no values: %s", err);
  empty.len = 7;
  expect_refused(empty, "truncated");
  cr_assert_eq(mar_decode(dst, NULL, 0, err, sizeof err), -1);
  cr_assert(strstr(err, "truncated"), "%s", err);
  ok.b[0] = 'X';
  expect_refused(ok, "not a marshalled message");
  ok.b[0] = 'G';
  ok.b[3] = 2;
  expect_refused(ok, "format version 2");
  expect_refused(FORGED(1, MAR_T_NIL, MAR_T_NIL), "1 bytes after the last value");
  expect_refused(FORGED(100, MAR_T_NIL), "too many values");
  expect_refused(FORGED(1, MAR_T_TABLE, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0), "table larger than the message");
  expect_refused(FORGED(1, MAR_T_TABLE, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f), "table larger than the message");
  expect_refused(FORGED(1, MAR_T_STR, 0x80, 0x80, 0x80, 0x80, 0x10, 'a'), "string longer than the message");
  expect_refused(FORGED(1, MAR_T_INT, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f),
                 "varint overflows 64 bits");
  expect_refused(FORGED(1, MAR_T_INT, 0xff, 0xff), "truncated");
  expect_refused(FORGED(1, MAR_T_FLOAT, 0, 0, 0), "truncated");
  expect_refused(FORGED(1, MAR_T_REF, 0), "reference to unknown object");
  expect_refused(FORGED(1, MAR_T_TABLE | MAR_T_SHARED, 1, 0, 0, 0, 0, 0, 0, 0, MAR_T_REF, 30),
                 "reference to unknown object");
  expect_refused(FORGED(1, MAR_T_UPJOIN, 9, 1), "upvalue join outside a function");
  expect_refused(FORGED(1, MAR_T_TABLE, 0, 0, 0, 0, 1, 0, 0, 0, MAR_T_NIL, MAR_T_TRUE), "table key is nil");
  expect_refused(FORGED(1, MAR_T_TABLE, 0, 0, 0, 0, 1, 0, 0, 0, MAR_T_FLOAT, 0, 0, 0, 0, 0, 0, 0xf8, 0x7f, MAR_T_TRUE),
                 "table key is NaN");
  expect_refused(FORGED(1, MAR_T_TABLE_META, 0, 0, 0, 0, 0, 0, 0, 0, MAR_T_TRUE), "metatable is not a table");
  expect_refused(FORGED(1, 0x7f), "unknown tag 0x7f");
  expect_refused(FORGED(1, MAR_T_INT | MAR_T_SHARED, 1), "unknown tag 0x83");
  expect_refused(FORGED(1, MAR_T_MODULE, 3, 'n', 'o', 'p'), "module 'nop' is not loaded");
  expect_refused(FORGED(1, MAR_T_CFUNC, 4, 'm', 'a', 't', 'h', 2, 'p', 'i'), "no builtin 'math.pi'");
  expect_refused(FORGED(1, MAR_T_UDATA, 3, 'n', 'o', 'p', 0), "no codec for userdata 'nop'");
  expect_refused(FORGED(1, MAR_T_LFUNC, 4, 0, 0, 0, 0x1b, 'L', 'u', 'a', 1, 2, 3, 4, 5, 6, 7, 8, 0),
                 "failed authentication");
  expect_refused(FORGED(1, MAR_T_LFUNC, 0xff, 0xff, 0, 0, 0x1b), "truncated function");

  /* a huge object count in the header is only a hint */
  forged hint = FORGED(1, MAR_T_STR, 1, 'x');
  memset(hint.b + 4, 0xff, 4);
  cr_assert_eq(try_decode(hint.b, hint.len, err, sizeof err), 1, "%s", err);
}

Test(hostile, nesting_bomb) {
  /* 20000 nested one-element tables: refused at the limit, no stack overflow */
  size_t n = 20000, len = 9 + n * 9 + 1;
  unsigned char *m = calloc(1, len);
  memcpy(m, "GVM\1\0\0\0\0\1", 9);
  for (size_t i = 0; i < n; i++) {
    unsigned char *t = m + 9 + i * 9;
    t[0] = MAR_T_TABLE;
    t[1] = 1; /* narr = 1, nhash = 0 */
  }
  m[len - 1] = MAR_T_NIL;
  char err[256];
  cr_assert_eq(try_decode(m, len, err, sizeof err), -1);
  cr_assert(strstr(err, "nesting deeper than 200 levels"), "%s", err);
  /* 200 levels are fine */
  size_t ok_len = 9 + 200 * 9 + 1;
  memmove(m + ok_len - 1, m + len - 1, 1);
  cr_assert_eq(try_decode(m, ok_len, err, sizeof err), 1, "%s", err);
  free(m);
}
