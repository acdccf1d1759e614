/*
 * marshal.c - the marshaller: Lua values to bytes and back (see marshal.h).
 *
 * THE FORMAT
 *
 *   message := 'G' 'V' 'M' version(=1) nshared:u32 count:varint value*count
 *
 * varint is unsigned LEB128 (7 bits a byte, low bits first), u32 is 4 bytes
 * little-endian. nshared counts the shared objects (a size hint), count the
 * values that follow. Each value starts with a tag byte:
 *
 *   NIL, FALSE, TRUE
 *   INT        zigzag varint (small negative numbers stay short)
 *   FLOAT      8 bytes: the IEEE-754 bits, little-endian (NaN payloads kept)
 *   STR        len:varint bytes
 *   TABLE      narr:u32 nhash:u32, then narr values (keys 1..narr), then
 *              nhash key/value pairs
 *   TABLE_META the same, followed by the metatable (a value)
 *   REF        offset:varint - the object whose tag is at that offset
 *   MODULE     len:varint name - the destination's package.loaded[name]
 *   LFUNC      len:u32 bytecode mac:8 nups:varint upvalue*nups
 *   CFUNC      len:varint module len:varint key - package.loaded[module][key]
 *   UDATA      len:varint tname len:varint bytes - rebuilt by tname's codec
 *
 *   upvalue := value | UPJOIN offset:varint n:varint - share the n-th
 *              upvalue of the function whose tag is at that offset
 *
 * Sharing: a table, function, userdata or string reached a second time is
 * sent as a REF to its first copy, and the encoder then sets the MAR_T_SHARED bit
 * (0x80) in that copy's tag. The decoder remembers exactly the objects so
 * marked, under their offset, before decoding their contents; so cycles work
 * (a table can hold a REF to itself), shared references survive, and the
 * objects nobody refers to again cost nothing extra. Strings go through this
 * only as table keys, so a list of records sends each field name once.
 *
 * SAFETY CHOICES
 *
 * - Everything that can raise a Lua error (running out of memory, mostly)
 *   runs inside one lua_pcall per message. Our own failures are raised the
 *   same way, with a light userdata as the error value and the message kept
 *   in C; so mar_encode and mar_decode never longjmp out, and the C recursion
 *   holds no resource that an error would leak.
 * - Only raw accessors (lua_next, lua_rawget, lua_rawset, lua_getmetatable)
 *   touch the values: copying must not run user code through __index,
 *   __newindex, __pairs or __metatable. Metatables are set on the decoded
 *   tables at the very end, once every object is complete.
 * - The decoder trusts nothing: every read is bounds-checked, every count is
 *   compared with the bytes left before anything is allocated, the total
 *   size of preallocated tables is bounded by the message length, nesting
 *   is limited to MAR_MAX_DEPTH (which bounds the C recursion too), and the
 *   Lua stack is reserved for that depth before starting.
 * - Lua's loader for binary chunks does not verify bytecode: malformed
 *   bytecode can crash the VM or worse. So each function's bytecode carries
 *   a SipHash-2-4 tag (libsodium's crypto_shorthash) keyed with 128 random
 *   bits drawn once per process (threads share the key, forked children
 *   inherit it). The decoder calls
 *   lua_load (in binary-only mode) only on bytecode whose tag checks, that
 *   is, on bytecode that lua_dump made in this process tree.
 */
#include "marshal.h"
#include "check.h"
#include "vec.h"

#include <lauxlib.h>
#include <sodium.h>

#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The tags (enum mar_tag) and MAR_T_SHARED are in marshal.h, for the tests
   that forge messages. */

static const unsigned char MAGIC[3] = { 'G', 'V', 'M' };
#define FORMAT_VERSION 1
#define HEADER_SIZE 8 /* magic, version, nshared */
#define MAC_SIZE 8
#define MEMO_STRING_MAX 40 /* Lua interns strings up to this length */
#define MAX_CODECS 16
#define PATH_HEAD 4 /* steps shown before "..." in long paths */
#define PATH_TAIL 8 /* and after it */

/* The recursive functions are kept out of line so that the hot ones stay
   small (the compiler would otherwise merge them into one big frame). */
#if defined(__GNUC__)
#define NOINLINE __attribute__((noinline))
#else
#define NOINLINE
#endif

/* Little-endian loads and stores. */
static inline uint64_t load_le64(const unsigned char *p) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  uint64_t v;
  memcpy(&v, p, sizeof v);
  return v;
#else
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
#endif
}

static inline uint32_t load_le32(const unsigned char *p) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  uint32_t v;
  memcpy(&v, p, sizeof v);
  return v;
#else
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
#endif
}

static inline void store_le64(unsigned char *p, uint64_t v) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  memcpy(p, &v, sizeof v);
#else
  for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
#endif
}

static inline void store_le32(unsigned char *p, uint32_t v) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  memcpy(p, &v, sizeof v);
#else
  for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
#endif
}

/* ------------------------------------------------------------------ */
/* Counters and the secret key                                         */
/* ------------------------------------------------------------------ */

static atomic_ullong bytes_encoded, bytes_decoded;
/* Sizes as if every offset (REF, UPJOIN) took one byte: a message's size then does not depend on
   the order lua_next gives a table's keys in, which Lua's per-run string-hash seed changes (--sim). */
static atomic_int canonical;
static _Thread_local size_t last_size;

void mar_canonical_sizes(int on) { atomic_store(&canonical, on); }
size_t mar_last_size(void) { return last_size; }

void mar_uncount(unsigned long long encoded, unsigned long long decoded) {
  atomic_fetch_sub_explicit(&bytes_encoded, encoded, memory_order_relaxed);
  atomic_fetch_sub_explicit(&bytes_decoded, decoded, memory_order_relaxed);
}

void mar_counters(unsigned long long *encoded, unsigned long long *decoded) {
  if (encoded) *encoded = atomic_load_explicit(&bytes_encoded, memory_order_relaxed);
  if (decoded) *decoded = atomic_load_explicit(&bytes_decoded, memory_order_relaxed);
}

static unsigned char mac_key[crypto_shorthash_KEYBYTES];
static int mac_key_ok;
static pthread_once_t mac_key_once = PTHREAD_ONCE_INIT;

/* libsodium draws the key from the kernel; sodium_init fails only without one. */
static void make_key(void) {
  if (sodium_init() < 0) return;
  randombytes_buf(mac_key, sizeof mac_key);
  mac_key_ok = 1;
}

int mar_init(void) {
  PT_CHECK(pthread_once(&mac_key_once, make_key));
  return mac_key_ok ? 0 : -1;
}

/* The tag: libsodium's SipHash-2-4 (crypto_shorthash), 8 bytes, read little-endian. */
static uint64_t mac_of(const unsigned char *m, size_t n) {
  unsigned char tag[crypto_shorthash_BYTES];
  crypto_shorthash(tag, m, n, mac_key);
  return load_le64(tag);
}

/* ------------------------------------------------------------------ */
/* Userdata codecs                                                     */
/* ------------------------------------------------------------------ */

typedef struct codec {
  char tname[64];
  mar_udata_encode enc;
  mar_udata_decode dec;
} codec;

static codec codecs[MAX_CODECS];
static atomic_int ncodecs; /* entries below it are complete (release/acquire) */
static pthread_mutex_t codecs_lock = PTHREAD_MUTEX_INITIALIZER;

int mar_register_udata(const char *tname, mar_udata_encode enc, mar_udata_decode dec) {
  if (!tname || !enc || !dec || strlen(tname) >= sizeof codecs[0].tname) return -1;
  mar_init();
  PT_CHECK(pthread_mutex_lock(&codecs_lock));
  int n = atomic_load_explicit(&ncodecs, memory_order_relaxed);
  int ok = n < MAX_CODECS;
  for (int i = 0; ok && i < n; i++)
    if (strcmp(codecs[i].tname, tname) == 0) ok = 0;
  if (ok) {
    strcpy(codecs[n].tname, tname);
    codecs[n].enc = enc;
    codecs[n].dec = dec;
    atomic_store_explicit(&ncodecs, n + 1, memory_order_release);
  }
  PT_CHECK(pthread_mutex_unlock(&codecs_lock));
  return ok ? 0 : -1;
}

static const codec *codec_named(const char *name, size_t len) {
  int n = atomic_load_explicit(&ncodecs, memory_order_acquire);
  for (int i = 0; i < n; i++)
    if (strlen(codecs[i].tname) == len && memcmp(codecs[i].tname, name, len) == 0) return &codecs[i];
  return NULL;
}

/* ------------------------------------------------------------------ */
/* Byte buffer and pointer map                                         */
/* ------------------------------------------------------------------ */

void mar_buf_free(mar_buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

/* Makes room for n more bytes, doubling the capacity; 0 or -1 (no memory). */
static int buf_grow(mar_buf *b, size_t n) { return VEC_RESERVE(b->data, b->len, b->cap, n, 256); }

/* Open-addressing hash map from an object's address to a number. The encoder
   uses it to recognise objects it has already written. Addresses are stable:
   Lua's collector never moves objects, and all we look at stays reachable
   from the values being encoded. */
typedef struct ptr_entry {
  const void *key;
  uint64_t val;
} ptr_entry;

typedef struct ptr_map {
  ptr_entry *slots;
  size_t mask, count; /* capacity - 1, entries used */
  ptr_entry *first; /* caller-provided first slots (not freed), or NULL */
} ptr_map;

/* Keeps neighbouring addresses in neighbouring slots: tables allocated one
   after another then share cache lines, which matters for big messages. */
static inline size_t ptr_hash(const void *p) {
  uintptr_t x = (uintptr_t)p;
  return (size_t)((x >> 4) ^ (x >> 20));
}

static int map_resize(ptr_map *m, size_t cap) {
  ptr_entry *slots = calloc(cap, sizeof *slots);
  if (!slots) return -1;
  for (size_t i = 0; m->slots && i <= m->mask; i++) {
    if (!m->slots[i].key) continue;
    size_t j = ptr_hash(m->slots[i].key) & (cap - 1);
    while (slots[j].key) j = (j + 1) & (cap - 1);
    slots[j] = m->slots[i];
  }
  if (m->slots != m->first) free(m->slots);
  m->slots = slots;
  m->mask = cap - 1;
  return 0;
}

/* Finds key, or inserts it with val 0; *found tells which. NULL when out of
   memory. The entry is valid until the next insertion. */
static inline ptr_entry *map_slot(ptr_map *m, const void *key, int *found) {
  if ((m->count + 1) * 2 > m->mask + 1) { /* keep it at most half full */
    if (map_resize(m, m->slots ? (m->mask + 1) * 2 : 64) != 0) return NULL;
  }
  size_t i = ptr_hash(key) & m->mask;
  while (m->slots[i].key) {
    if (m->slots[i].key == key) {
      *found = 1;
      return &m->slots[i];
    }
    i = (i + 1) & m->mask;
  }
  *found = 0;
  m->count++;
  m->slots[i].key = key;
  m->slots[i].val = 0;
  return &m->slots[i];
}

static void map_free(ptr_map *m) {
  if (m->slots != m->first) free(m->slots);
  m->slots = NULL;
}

/* ------------------------------------------------------------------ */
/* Encoder                                                             */
/* ------------------------------------------------------------------ */

/* How a value was reached from its parent, for error paths. */
enum step_kind { STEP_ROOT, STEP_INDEX, STEP_FIELD, STEP_KEY, STEP_META, STEP_UPVALUE };

typedef struct step {
  int kind;
  int slot; /* FIELD: stack slot of the key; UPVALUE: of the function */
  int n; /* UPVALUE: its number */
  lua_Integer index; /* ROOT, INDEX: the position */
} step;

/* objects map values: offset of the object's tag << 1, or a module's name
   index << 1 | 1. upvalues map: offset of the function's tag << 8 | upvalue
   number. builtins map: module name index << 32 | key name index. */
#define IS_MODULE 1

typedef struct name_ref {
  const char *s;
  size_t len;
} name_ref; /* a Lua string's bytes */

#define FIRST_SLOTS 64
#define FIRST_NAMES 32

typedef struct Enc {
  lua_State *L;
  mar_buf *out;
  size_t base; /* where this message starts in out */
  const char *what;
  int nroots;
  uint32_t nshared;
  size_t slack; /* bytes of offsets beyond one each (mar_canonical_sizes) */
  int modules_scanned, builtins_scanned;
  ptr_map objects; /* tables, functions, userdata, key strings, modules */
  ptr_map upvalues; /* lua_upvalueid -> first function holding it */
  ptr_map builtins; /* C function -> its name */
  name_ref *names; /* module and builtin names; package.loaded keeps them alive */
  size_t nnames, capnames;
  ptr_entry first_slots[FIRST_SLOTS]; /* small messages need no malloc */
  name_ref first_names[FIRST_NAMES];
  step steps[MAR_MAX_DEPTH + 1];
  char path[2048]; /* of the value that failed */
  char reason[256]; /* and why, e.g. "cannot copy a userdata" */
} Enc;

static void enc_value(Enc *e, int idx, int depth);

/* --- error paths --- */

typedef struct text {
  char *s;
  size_t size, len;
} text; /* bounded string builder */

static void text_add(text *t, const char *fmt, ...) {
  if (t->len + 1 >= t->size) return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(t->s + t->len, t->size - t->len, fmt, ap);
  va_end(ap);
  if (n > 0) t->len += (size_t)n < t->size - t->len ? (size_t)n : t->size - t->len - 1;
}

static int is_identifier(const char *s, size_t len) {
  static const char *const keywords[] = { "and",      "break",  "do",   "else", "elseif", "end",   "false", "for",
                                          "function", "goto",   "if",   "in",   "local",  "nil",   "not",   "or",
                                          "repeat",   "return", "then", "true", "until",  "while", NULL };
  if (len == 0 || (s[0] >= '0' && s[0] <= '9')) return 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) return 0;
  }
  for (int i = 0; keywords[i]; i++)
    if (strlen(keywords[i]) == len && memcmp(keywords[i], s, len) == 0) return 0;
  return 1;
}

/* A string as a Lua literal, shortened to 32 bytes. */
static void text_quoted(text *t, const char *s, size_t len) {
  text_add(t, "\"");
  for (size_t i = 0; i < len && i < 32; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\')
      text_add(t, "\\%c", c);
    else if (c == '\n')
      text_add(t, "\\n");
    else if (c < 32 || c >= 127)
      text_add(t, "\\%u", c);
    else
      text_add(t, "%c", c);
  }
  text_add(t, len > 32 ? "...\"" : "\"");
}

static void text_step(Enc *e, text *t, const step *s) {
  lua_State *L = e->L;
  switch (s->kind) {
  case STEP_ROOT:
    if (e->nroots == 1)
      text_add(t, "%s", e->what);
    else
      text_add(t, "%s[%lld]", e->what, (long long)s->index);
    break;
  case STEP_INDEX: text_add(t, "[%lld]", (long long)s->index); break;
  case STEP_FIELD:
    switch (lua_type(L, s->slot)) {
    case LUA_TSTRING: {
      size_t len;
      const char *k = lua_tolstring(L, s->slot, &len);
      if (is_identifier(k, len))
        text_add(t, ".%s", k);
      else {
        text_add(t, "[");
        text_quoted(t, k, len);
        text_add(t, "]");
      }
      break;
    }
    case LUA_TNUMBER:
      if (lua_isinteger(L, s->slot))
        text_add(t, "[%lld]", (long long)lua_tointeger(L, s->slot));
      else
        text_add(t, "[%.14g]", (double)lua_tonumber(L, s->slot));
      break;
    case LUA_TBOOLEAN: text_add(t, lua_toboolean(L, s->slot) ? "[true]" : "[false]"); break;
    default: text_add(t, "[<%s>]", luaL_typename(L, s->slot));
    }
    break;
  case STEP_KEY: text_add(t, ".<key>"); break;
  case STEP_META: text_add(t, ".<metatable>"); break;
  case STEP_UPVALUE: {
    const char *name = lua_getupvalue(L, s->slot, s->n);
    if (name) lua_pop(L, 1); /* the name lives in the function's prototype */
    lua_Debug ar;
    lua_pushvalue(L, s->slot);
    lua_getinfo(L, ">S", &ar);
    text_add(t, ".<upvalue '%s' of ", name && *name ? name : "?");
    if (strcmp(ar.what, "main") == 0)
      text_add(t, "main chunk (%s)>", ar.short_src);
    else
      text_add(t, "function (%s:%d)>", ar.short_src, ar.linedefined);
    break;
  }
  }
}

/* Raises our own error: the path to steps[depth] and the reason. The light
   userdata error value tells mar_encode that they are in e. */
static NOINLINE void enc_fail(Enc *e, int depth, const char *fmt, ...) {
  text t = { e->path, sizeof e->path, 0 };
  for (int d = 0; d <= depth; d++) {
    if (depth > PATH_HEAD + PATH_TAIL && d > PATH_HEAD && d <= depth - PATH_TAIL) {
      if (d == PATH_HEAD + 1) text_add(&t, "...");
      continue;
    }
    text_step(e, &t, &e->steps[d]);
  }
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->reason, sizeof e->reason, fmt, ap);
  va_end(ap);
  lua_pushlightuserdata(e->L, e);
  lua_error(e->L);
}

static NOINLINE void enc_oom(Enc *e) {
  e->path[0] = 0;
  snprintf(e->reason, sizeof e->reason, "not enough memory");
  lua_pushlightuserdata(e->L, e);
  lua_error(e->L);
}

/* "<path>: <reason>" in err; a path too long for errlen loses its middle,
   so that the reason is always there. */
static void compose_error(char *err, size_t errlen, const char *path, const char *reason) {
  if (!err || !errlen) return;
  size_t plen = strlen(path), rlen = strlen(reason);
  if (plen == 0) {
    snprintf(err, errlen, "%s", reason);
  } else if (plen + 2 + rlen < errlen) {
    snprintf(err, errlen, "%s: %s", path, reason);
  } else if (errlen > rlen + 2 + 3 + 16) {
    size_t keep = errlen - 1 - rlen - 2 - 3, head = keep / 3, tail = keep - head;
    snprintf(err, errlen, "%.*s...%s: %s", (int)head, path, path + plen - tail, reason);
  } else {
    snprintf(err, errlen, "%s", reason);
  }
}

/* --- writing bytes --- */

/* Pointer to n writable bytes at the end of the output. */
static inline unsigned char *room(Enc *e, size_t n) {
  mar_buf *b = e->out;
  if (b->cap - b->len < n && buf_grow(b, n) != 0) enc_oom(e);
  return b->data + b->len;
}

static inline size_t varint_to(unsigned char *p, uint64_t v) {
  size_t n = 0;
  while (v >= 0x80) {
    p[n++] = (unsigned char)(v | 0x80);
    v >>= 7;
  }
  p[n++] = (unsigned char)v;
  return n;
}

static inline void put_byte(Enc *e, unsigned char c) {
  *room(e, 1) = c;
  e->out->len++;
}

static inline void put_varint(Enc *e, uint64_t v) { e->out->len += varint_to(room(e, 10), v); }

static inline void put_tag_varint(Enc *e, unsigned char tag, uint64_t v) {
  unsigned char *p = room(e, 11);
  p[0] = tag;
  e->out->len += 1 + varint_to(p + 1, v);
}

static inline void put_tag_bytes(Enc *e, unsigned char tag, const void *s, size_t len) {
  unsigned char *p = room(e, 11 + len);
  p[0] = tag;
  size_t n = 1 + varint_to(p + 1, len);
  memcpy(p + n, s, len);
  e->out->len += n + len;
}

static void put_bytes(Enc *e, const void *s, size_t len) {
  unsigned char *p = room(e, 10 + len);
  size_t n = varint_to(p, len);
  memcpy(p + n, s, len);
  e->out->len += n + len;
}

static inline size_t offset_now(const Enc *e) { return e->out->len - e->base; }

/* A REF to the object whose tag is at offset, which becomes MAR_T_SHARED. */
static void put_ref(Enc *e, unsigned char tag, uint64_t offset) {
  unsigned char *first = e->out->data + e->base + offset;
  if (!(*first & MAR_T_SHARED)) {
    *first |= MAR_T_SHARED;
    e->nshared++;
  }
  size_t before = e->out->len;
  put_tag_varint(e, tag, offset);
  e->slack += e->out->len - before - 2;
}

/* --- module and builtin names --- */

static uint32_t add_name(Enc *e, const char *s, size_t len) {
  if (e->nnames == e->capnames) {
    size_t cap = e->capnames * 2;
    name_ref *names = malloc(cap * sizeof *names);
    if (!names) enc_oom(e);
    memcpy(names, e->names, e->nnames * sizeof *names);
    if (e->names != e->first_names) free(e->names);
    e->names = names;
    e->capnames = cap;
  }
  e->names[e->nnames].s = s;
  e->names[e->nnames].len = len;
  return (uint32_t)e->nnames++;
}

static int is_standard_module(const char *s) {
  static const char *const std[] = { "_G",     "package", "coroutine", "table", "io", "os",
                                     "string", "math",    "utf8",      "debug", NULL };
  for (int i = 0; std[i]; i++)
    if (strcmp(std[i], s) == 0) return 1;
  return 0;
}

/* When one table is loaded under two names, prefer the one the destination
   surely has: a standard library, then the shorter, then the smaller name. */
static int better_module_name(const name_ref *a, const name_ref *b) {
  int sa = is_standard_module(a->s), sb = is_standard_module(b->s);
  if (sa != sb) return sa;
  if (a->len != b->len) return a->len < b->len;
  return strcmp(a->s, b->s) < 0;
}

/* Pushes package.loaded, or nothing (returning 0) if it is missing. */
static int push_loaded(lua_State *L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE) == LUA_TTABLE) return 1;
  lua_pop(L, 1);
  return 0;
}

/* Marks every table in package.loaded as a module, to be sent by name. */
static NOINLINE void scan_modules(Enc *e) {
  lua_State *L = e->L;
  e->modules_scanned = 1;
  if (!push_loaded(L)) return;
  int loaded = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, loaded)) {
    if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TTABLE) {
      size_t len;
      const char *s = lua_tolstring(L, -2, &len);
      name_ref name = { s, len };
      int found = 0;
      ptr_entry *en = map_slot(&e->objects, lua_topointer(L, -1), &found);
      if (!en) enc_oom(e);
      if (!found || better_module_name(&name, &e->names[en->val >> 1])) {
        uint32_t i = add_name(e, s, len);
        en->val = (uint64_t)i << 1 | IS_MODULE;
      }
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

/* Records the C functions of the module at the top of the stack. */
static void add_builtins(Enc *e, uint32_t module) {
  lua_State *L = e->L;
  int mod = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, mod)) {
    if (lua_type(L, -2) == LUA_TSTRING && lua_iscfunction(L, -1)) {
      int found = 0;
      ptr_entry *en = map_slot(&e->builtins, lua_topointer(L, -1), &found);
      if (!en) enc_oom(e);
      if (!found) { /* the first name wins: _G is scanned first */
        size_t len;
        const char *s = lua_tolstring(L, -2, &len);
        uint32_t key = add_name(e, s, len);
        en->val = (uint64_t)module << 32 | key;
      }
    }
    lua_pop(L, 1);
  }
}

/* Finds the names of all builtins: C functions in package.loaded's modules. */
static NOINLINE void scan_builtins(Enc *e) {
  lua_State *L = e->L;
  e->builtins_scanned = 1;
  if (!push_loaded(L)) return;
  int loaded = lua_gettop(L);
  if (lua_getfield(L, loaded, LUA_GNAME) == LUA_TTABLE) add_builtins(e, add_name(e, LUA_GNAME, strlen(LUA_GNAME)));
  lua_pop(L, 1);
  lua_pushnil(L);
  while (lua_next(L, loaded)) {
    if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TTABLE) {
      size_t len;
      const char *s = lua_tolstring(L, -2, &len);
      if (strcmp(s, LUA_GNAME) != 0) add_builtins(e, add_name(e, s, len));
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

/* --- values --- */

/* If the object at idx was written before (or is a module), writes a
   reference to it and returns 1. Otherwise remembers that it starts here. */
static int enc_known(Enc *e, int idx) {
  if (!e->modules_scanned) scan_modules(e);
  int found = 0;
  ptr_entry *en = map_slot(&e->objects, lua_topointer(e->L, idx), &found);
  if (!en) enc_oom(e);
  if (!found) {
    en->val = (uint64_t)offset_now(e) << 1;
    return 0;
  }
  if (en->val & IS_MODULE) {
    const name_ref *name = &e->names[en->val >> 1];
    put_tag_bytes(e, MAR_T_MODULE, name->s, name->len);
  } else {
    put_ref(e, MAR_T_REF, en->val >> 1);
  }
  return 1;
}

/* Table keys: a short string is written once, then referred to. */
static inline void enc_key(Enc *e, int idx, int depth) {
  if (lua_type(e->L, idx) == LUA_TSTRING) {
    size_t len;
    const char *s = lua_tolstring(e->L, idx, &len);
    if (len <= MEMO_STRING_MAX) {
      int found = 0;
      ptr_entry *en = map_slot(&e->objects, s, &found); /* interned: same text, same address */
      if (!en) enc_oom(e);
      if (found) {
        put_ref(e, MAR_T_REF, en->val >> 1);
      } else {
        en->val = (uint64_t)offset_now(e) << 1;
        put_tag_bytes(e, MAR_T_STR, s, len);
      }
      return;
    }
  }
  enc_value(e, idx, depth);
}

static NOINLINE void enc_table(Enc *e, int t, int depth) {
  lua_State *L = e->L;
  if (enc_known(e, t)) return;
  if (depth >= MAR_MAX_DEPTH) enc_fail(e, depth, "nesting deeper than %d levels", MAR_MAX_DEPTH);

  int has_meta = lua_getmetatable(L, t);
  if (has_meta) lua_pop(L, 1);
  size_t head = e->out->len;
  room(e, 9)[0] = has_meta ? MAR_T_TABLE_META : MAR_T_TABLE;
  e->out->len += 9; /* the two counts are filled in below */

  size_t narr = 0, nhash = 0;
  int key = lua_gettop(L) + 1, val = key + 1; /* where lua_next puts them */
  step *child = &e->steps[depth + 1];
  lua_pushnil(L);
  while (lua_next(L, t)) {
    /* lua_next walks the array part first, in order: keep 1..n as a list */
    if (nhash == 0 && lua_isinteger(L, key) && lua_tointeger(L, key) == (lua_Integer)narr + 1) {
      child->kind = STEP_INDEX;
      child->index = (lua_Integer)++narr;
    } else {
      child->kind = STEP_KEY;
      enc_key(e, key, depth + 1);
      child->kind = STEP_FIELD;
      child->slot = key;
      nhash++;
    }
    enc_value(e, val, depth + 1);
    lua_pop(L, 1);
  }
  if (narr > UINT32_MAX || nhash > UINT32_MAX) enc_fail(e, depth, "table too large");
  store_le32(e->out->data + head + 1, (uint32_t)narr);
  store_le32(e->out->data + head + 5, (uint32_t)nhash);
  if (has_meta) {
    lua_getmetatable(L, t);
    child->kind = STEP_META;
    enc_value(e, key, depth + 1);
    lua_pop(L, 1);
  }
}

static int dump_writer(lua_State *L, const void *p, size_t size, void *ud) {
  (void)L;
  mar_buf *b = ud;
  if (buf_grow(b, size) != 0) return 1; /* lua_dump stops and returns 1 */
  memcpy(b->data + b->len, p, size);
  b->len += size;
  return 0;
}

static void enc_cfunction(Enc *e, int f, int depth) {
  if (!e->builtins_scanned) scan_builtins(e);
  int found = 0;
  ptr_entry *en = NULL;
  if (e->builtins.slots) { /* NULL when package.loaded has no C function */
    en = map_slot(&e->builtins, lua_topointer(e->L, f), &found);
    if (!en) enc_oom(e);
  }
  if (!found) enc_fail(e, depth, "cannot copy a C function that is not a builtin");
  const name_ref *mod = &e->names[en->val >> 32], *key = &e->names[en->val & UINT32_MAX];
  put_tag_bytes(e, MAR_T_CFUNC, mod->s, mod->len);
  put_bytes(e, key->s, key->len);
}

/* A Lua function: authenticated bytecode (with debug info), then upvalues. */
static void enc_lfunction(Enc *e, int f, int depth) {
  lua_State *L = e->L;
  if (enc_known(e, f)) return;
  size_t fn_offset = offset_now(e);
  if (depth >= MAR_MAX_DEPTH) enc_fail(e, depth, "nesting deeper than %d levels", MAR_MAX_DEPTH);
  if (!mac_key_ok) enc_fail(e, depth, "cannot copy a function: no random key to sign it with");

  size_t head = e->out->len;
  room(e, 5)[0] = MAR_T_LFUNC;
  e->out->len += 5; /* the length is filled in below */
  lua_pushvalue(L, f);
  int status = lua_dump(L, dump_writer, e->out, 0); /* 0: keep debug info */
  lua_pop(L, 1);
  if (status != 0) enc_oom(e);
  size_t len = e->out->len - head - 5;
  if (len > UINT32_MAX) enc_fail(e, depth, "function too large");
  store_le32(e->out->data + head + 1, (uint32_t)len);
  uint64_t mac = mac_of(e->out->data + head + 5, len);
  store_le64(room(e, MAC_SIZE), mac);
  e->out->len += MAC_SIZE;

  lua_Debug ar;
  lua_pushvalue(L, f);
  lua_getinfo(L, ">u", &ar);
  put_varint(e, ar.nups);
  step *child = &e->steps[depth + 1];
  for (int i = 1; i <= ar.nups; i++) {
    int found = 0;
    ptr_entry *en = map_slot(&e->upvalues, lua_upvalueid(L, f, i), &found);
    if (!en) enc_oom(e);
    if (found) { /* the same variable as an earlier function's */
      uint64_t first = en->val;
      put_ref(e, MAR_T_UPJOIN, first >> 8);
      size_t before = e->out->len;
      put_varint(e, first & 0xff);
      e->slack += e->out->len - before - 1;
      continue;
    }
    en->val = (uint64_t)fn_offset << 8 | (unsigned)i;
    lua_getupvalue(L, f, i);
    child->kind = STEP_UPVALUE;
    child->slot = f;
    child->n = i;
    enc_value(e, lua_gettop(L), depth + 1);
    lua_pop(L, 1);
  }
}

/* A userdata whose metatable has a registered codec. */
static void enc_udata(Enc *e, int u, int depth) {
  lua_State *L = e->L;
  const codec *c = NULL;
  if (lua_getmetatable(L, u)) {
    int n = atomic_load_explicit(&ncodecs, memory_order_acquire);
    for (int i = 0; i < n && !c; i++) {
      lua_getfield(L, LUA_REGISTRYINDEX, codecs[i].tname);
      if (lua_rawequal(L, -1, -2)) c = &codecs[i];
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  if (!c) enc_fail(e, depth, "cannot copy a userdata");
  if (enc_known(e, u)) return;
  unsigned char bytes[MAR_UDATA_MAX];
  int top = lua_gettop(L);
  int n = c->enc(L, u, bytes, sizeof bytes);
  lua_settop(L, top);
  if (n < 0 || n > MAR_UDATA_MAX) enc_fail(e, depth, "cannot copy a userdata '%s': its codec refused it", c->tname);
  put_tag_bytes(e, MAR_T_UDATA, c->tname, strlen(c->tname));
  put_bytes(e, bytes, (size_t)n);
}

static NOINLINE void enc_other(Enc *e, int idx, int depth, int type) {
  switch (type) {
  case LUA_TFUNCTION:
    if (lua_iscfunction(e->L, idx))
      enc_cfunction(e, idx, depth);
    else
      enc_lfunction(e, idx, depth);
    break;
  case LUA_TUSERDATA: enc_udata(e, idx, depth); break;
  case LUA_TLIGHTUSERDATA: enc_fail(e, depth, "cannot copy a light userdata"); break;
  case LUA_TTHREAD: enc_fail(e, depth, "cannot copy a thread (coroutine)"); break;
  default: enc_fail(e, depth, "cannot copy a %s", lua_typename(e->L, type));
  }
}

static void enc_value(Enc *e, int idx, int depth) {
  lua_State *L = e->L;
  int type = lua_type(L, idx);
  switch (type) {
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx)) {
      lua_Integer i = lua_tointeger(L, idx);
      uint64_t u = (uint64_t)i;
      put_tag_varint(e, MAR_T_INT, i < 0 ? ~(u << 1) : u << 1); /* zigzag */
    } else {
      double x = (double)lua_tonumber(L, idx);
      uint64_t bits;
      memcpy(&bits, &x, sizeof bits);
      unsigned char *p = room(e, 9);
      p[0] = MAR_T_FLOAT;
      store_le64(p + 1, bits);
      e->out->len += 9;
    }
    break;
  case LUA_TSTRING: {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len); /* a string already: no conversion */
    put_tag_bytes(e, MAR_T_STR, s, len);
    break;
  }
  case LUA_TTABLE: enc_table(e, idx, depth); break;
  case LUA_TBOOLEAN: put_byte(e, lua_toboolean(L, idx) ? MAR_T_TRUE : MAR_T_FALSE); break;
  case LUA_TNIL: put_byte(e, MAR_T_NIL); break;
  default: enc_other(e, idx, depth, type);
  }
}

/* Runs under lua_pcall: arguments are the Enc and the values to encode. */
static int enc_protected(lua_State *L) {
  Enc *e = lua_touserdata(L, 1);
  e->steps[0].kind = STEP_ROOT;
  e->steps[0].index = 0;
  if (!lua_checkstack(L, 2 * MAR_MAX_DEPTH + 40)) /* two slots a level, plus scans */
    enc_fail(e, 0, "Lua stack overflow");
  unsigned char *p = room(e, HEADER_SIZE);
  memcpy(p, MAGIC, sizeof MAGIC);
  p[3] = FORMAT_VERSION;
  e->out->len += HEADER_SIZE; /* nshared is filled in below */
  put_varint(e, (uint64_t)e->nroots);
  for (int i = 0; i < e->nroots; i++) {
    e->steps[0].index = i + 1;
    enc_value(e, i + 2, 0);
  }
  store_le32(e->out->data + e->base + 4, e->nshared);
  return 0;
}

static void set_error(char *err, size_t errlen, const char *msg) {
  if (err && errlen) snprintf(err, errlen, "%s", msg);
}

/* Copies the message of a failed protected call into err. */
static void copy_error(lua_State *L, void *ours, const char *our_msg, char *err, size_t errlen) {
  if (lua_type(L, -1) == LUA_TLIGHTUSERDATA && lua_touserdata(L, -1) == ours)
    set_error(err, errlen, our_msg);
  else if (lua_type(L, -1) == LUA_TSTRING)
    set_error(err, errlen, lua_tostring(L, -1));
  else
    set_error(err, errlen, "error in the marshaller");
}

int mar_encode(lua_State *L, int idx, int n, const char *what, mar_buf *out, char *err, size_t errlen) {
  mar_init();
  if (n < 0 || !out) {
    set_error(err, errlen, "mar_encode: bad arguments");
    return -1;
  }
  idx = lua_absindex(L, idx);
  if (n > 0 && (idx < 1 || idx > lua_gettop(L) - n + 1)) {
    set_error(err, errlen, "mar_encode: values out of the stack");
    return -1;
  }
  if (n > INT_MAX - 16 || !lua_checkstack(L, n + 2)) {
    set_error(err, errlen, "mar_encode: too many values");
    return -1;
  }
  Enc e; /* about 7 KB; only what is used gets set */
  e.L = L;
  e.out = out;
  e.base = out->len;
  e.what = what ? what : "value";
  e.nroots = n;
  e.nshared = 0;
  e.slack = 0;
  e.modules_scanned = e.builtins_scanned = 0;
  memset(e.first_slots, 0, sizeof e.first_slots);
  e.objects = (ptr_map){ e.first_slots, FIRST_SLOTS - 1, 0, e.first_slots };
  e.upvalues = e.builtins = (ptr_map){ NULL, 0, 0, NULL };
  e.names = e.first_names;
  e.nnames = 0;
  e.capnames = FIRST_NAMES;
  e.path[0] = e.reason[0] = 0;

  int top = lua_gettop(L);
  lua_pushcfunction(L, enc_protected);
  lua_pushlightuserdata(L, &e);
  for (int i = 0; i < n; i++) lua_pushvalue(L, idx + i);
  int status = lua_pcall(L, n + 1, 0, 0);
  if (status != LUA_OK) {
    if (lua_type(L, -1) == LUA_TLIGHTUSERDATA && lua_touserdata(L, -1) == &e)
      compose_error(err, errlen, e.path, e.reason);
    else
      copy_error(L, &e, "", err, errlen);
    out->len = e.base;
  } else {
    last_size = out->len - e.base - (atomic_load(&canonical) ? e.slack : 0);
    atomic_fetch_add_explicit(&bytes_encoded, last_size, memory_order_relaxed);
  }
  lua_settop(L, top);
  map_free(&e.objects);
  map_free(&e.upvalues);
  map_free(&e.builtins);
  if (e.names != e.first_names) free(e.names);
  return status == LUA_OK ? 0 : -1;
}

/* ------------------------------------------------------------------ */
/* Decoder                                                             */
/* ------------------------------------------------------------------ */

/* Stack slots of the protected decoder's frame. The memo maps offsets of
   MAR_T_SHARED objects to the objects; pending holds table, metatable pairs. */
enum { SLOT_DEC = 1, SLOT_MEMO, SLOT_PENDING, SLOT_LOADED };

typedef struct Dec {
  lua_State *L;
  const unsigned char *start, *p, *end;
  int have_memo; /* SLOT_MEMO holds the memo table */
  lua_Integer npending;
  size_t presize_left; /* table slots we may still preallocate */
  size_t slack; /* bytes of offsets beyond one each (mar_canonical_sizes) */
  char err[256];
} Dec;

static void dec_value(Dec *d, int depth);

/* Raises our own error, with the offset where decoding stopped. */
static NOINLINE void dec_fail(Dec *d, const char *fmt, ...) {
  char msg[200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  snprintf(d->err, sizeof d->err, "bad message at byte %zu: %s", (size_t)(d->p - d->start), msg);
  lua_pushlightuserdata(d->L, d);
  lua_error(d->L);
}

static inline size_t bytes_left(const Dec *d) { return (size_t)(d->end - d->p); }

static inline void need(Dec *d, size_t n) {
  if (bytes_left(d) < n) dec_fail(d, "truncated");
}

static NOINLINE uint64_t rd_varint_long(Dec *d) {
  uint64_t v = 0;
  for (int shift = 0;; shift += 7) {
    need(d, 1);
    unsigned c = *d->p++;
    if (shift == 63 && c > 1) dec_fail(d, "varint overflows 64 bits");
    v |= (uint64_t)(c & 0x7f) << shift;
    if (!(c & 0x80)) return v;
  }
}

static inline uint64_t rd_varint(Dec *d) {
  if (d->p < d->end && *d->p < 0x80) return *d->p++; /* one byte: most of them */
  return rd_varint_long(d);
}

static inline uint32_t rd_u32(Dec *d) {
  need(d, 4);
  uint32_t v = load_le32(d->p);
  d->p += 4;
  return v;
}

/* A length-prefixed byte string inside the message. */
static inline const char *rd_bytes(Dec *d, size_t *len) {
  uint64_t n = rd_varint(d);
  if (n > bytes_left(d)) dec_fail(d, "string longer than the message");
  const char *s = (const char *)d->p;
  d->p += n;
  *len = (size_t)n;
  return s;
}

/* For messages: a name from the input, printable and short. */
static const char *printable(const char *s, size_t len, char *buf, size_t size) {
  size_t i = 0;
  for (; i < len && i + 1 < size; i++) buf[i] = (s[i] >= 32 && s[i] < 127) ? s[i] : '?';
  buf[i] = 0;
  return buf;
}

/* Remembers the value at the top as the object whose tag is at tagp. */
static void memo_add(Dec *d, const unsigned char *tagp) {
  lua_State *L = d->L;
  if (!d->have_memo) {
    lua_newtable(L);
    lua_replace(L, SLOT_MEMO);
    d->have_memo = 1;
  }
  lua_pushvalue(L, -1);
  lua_rawseti(L, SLOT_MEMO, (lua_Integer)(tagp - d->start));
}

/* Pushes the object an earlier tag (at offset) defined as MAR_T_SHARED. */
static inline void push_ref(Dec *d, uint64_t offset) {
  if (!d->have_memo || offset > (uint64_t)(d->p - d->start) ||
      lua_rawgeti(d->L, SLOT_MEMO, (lua_Integer)offset) == LUA_TNIL)
    dec_fail(d, "reference to unknown object at byte %llu", (unsigned long long)offset);
}

static NOINLINE void dec_table(Dec *d, int depth, unsigned tag, const unsigned char *tagp) {
  lua_State *L = d->L;
  if (depth >= MAR_MAX_DEPTH) dec_fail(d, "nesting deeper than %d levels", MAR_MAX_DEPTH);
  uint32_t narr = rd_u32(d), nhash = rd_u32(d);
  if (narr > bytes_left(d) || nhash > bytes_left(d) / 2) dec_fail(d, "table larger than the message");
  size_t want = (size_t)narr + nhash;
  if (want <= d->presize_left && narr <= INT_MAX && nhash <= INT_MAX) { /* a real message stays in budget */
    d->presize_left -= want;
    lua_createtable(L, (int)narr, (int)nhash);
  } else {
    lua_createtable(L, 0, 0);
  }
  int t = lua_gettop(L);
  if (tag & MAR_T_SHARED) memo_add(d, tagp);
  for (uint32_t i = 1; i <= narr; i++) {
    dec_value(d, depth + 1);
    lua_rawseti(L, t, i);
  }
  for (uint32_t i = 0; i < nhash; i++) {
    need(d, 1);
    unsigned ktag = *d->p; /* only these two can make an invalid key */
    if (ktag == MAR_T_NIL) dec_fail(d, "table key is nil");
    dec_value(d, depth + 1);
    if (ktag == MAR_T_FLOAT && lua_tonumber(L, -1) != lua_tonumber(L, -1)) dec_fail(d, "table key is NaN");
    dec_value(d, depth + 1);
    lua_rawset(L, t);
  }
  if ((tag & ~MAR_T_SHARED) == MAR_T_TABLE_META) {
    dec_value(d, depth + 1);
    if (!lua_istable(L, -1)) dec_fail(d, "metatable is not a table");
    if (lua_isnil(L, SLOT_PENDING)) { /* set metatables last: see the top comment */
      lua_newtable(L);
      lua_replace(L, SLOT_PENDING);
    }
    lua_pushvalue(L, t);
    lua_rawseti(L, SLOT_PENDING, ++d->npending);
    lua_rawseti(L, SLOT_PENDING, ++d->npending);
  }
}

/* Pushes the destination's package.loaded[name] for a name in the message. */
static void push_module(Dec *d, const char *name, size_t len) {
  lua_State *L = d->L;
  if (lua_isnil(L, SLOT_LOADED)) {
    if (!push_loaded(L)) dec_fail(d, "the destination has no package.loaded");
    lua_replace(L, SLOT_LOADED);
  }
  lua_pushlstring(L, name, len);
  if (lua_rawget(L, SLOT_LOADED) != LUA_TTABLE) {
    char buf[48];
    dec_fail(d, "module '%s' is not loaded in the destination", printable(name, len, buf, sizeof buf));
  }
}

static void dec_cfunction(Dec *d) {
  size_t mlen, klen;
  const char *mod = rd_bytes(d, &mlen);
  const char *key = rd_bytes(d, &klen);
  push_module(d, mod, mlen);
  lua_pushlstring(d->L, key, klen);
  if (lua_rawget(d->L, -2) != LUA_TFUNCTION || !lua_iscfunction(d->L, -1)) {
    char b1[48], b2[48];
    dec_fail(d, "no builtin '%s.%s' in the destination", printable(mod, mlen, b1, sizeof b1),
             printable(key, klen, b2, sizeof b2));
  }
  lua_remove(d->L, -2);
}

typedef struct chunk {
  const char *p;
  size_t len;
} chunk;

static const char *read_chunk(lua_State *L, void *ud, size_t *size) {
  (void)L;
  chunk *c = ud;
  *size = c->len;
  c->len = 0; /* everything at once, then end of input */
  return *size ? c->p : NULL;
}

/* Number of upvalues of the Lua function at idx. */
static int count_upvalues(lua_State *L, int idx) {
  lua_Debug ar;
  lua_pushvalue(L, idx);
  lua_getinfo(L, ">u", &ar);
  return ar.nups;
}

/* Makes upvalue i of the function at f share an earlier function's upvalue. */
static void dec_upjoin(Dec *d, int f, int i) {
  lua_State *L = d->L;
  const unsigned char *at = d->p;
  uint64_t offset = rd_varint(d), n = rd_varint(d);
  d->slack += (size_t)(d->p - at) - 2;
  push_ref(d, offset);
  if (lua_type(L, -1) != LUA_TFUNCTION || lua_iscfunction(L, -1))
    dec_fail(d, "upvalue joined to an object that is not a Lua function");
  if (n == 0 || n > (uint64_t)count_upvalues(L, -1)) /* lua_upvaluejoin does not check */
    dec_fail(d, "upvalue joined to a missing upvalue");
  lua_upvaluejoin(L, f, i, -1, (int)n);
  lua_pop(L, 1);
}

static void dec_lfunction(Dec *d, int depth, unsigned tag, const unsigned char *tagp) {
  lua_State *L = d->L;
  if (depth >= MAR_MAX_DEPTH) dec_fail(d, "nesting deeper than %d levels", MAR_MAX_DEPTH);
  if (!mac_key_ok) dec_fail(d, "cannot decode a function: no random key to check it with");
  uint32_t len = rd_u32(d);
  if (len > bytes_left(d) || bytes_left(d) - len < MAC_SIZE) dec_fail(d, "truncated function");
  const unsigned char *code = d->p;
  if (mac_of(code, len) != load_le64(code + len))
    dec_fail(d, "function bytecode failed authentication (not made by this process tree)");
  d->p += len + MAC_SIZE;
  chunk c = { (const char *)code, len };
  if (lua_load(L, read_chunk, &c, "=(marshal)", "b") != LUA_OK)
    dec_fail(d, "cannot load function: %s", lua_tostring(L, -1));
  int f = lua_gettop(L);
  if (tag & MAR_T_SHARED) memo_add(d, tagp);
  uint64_t nups = rd_varint(d);
  if (nups != (uint64_t)count_upvalues(L, f)) dec_fail(d, "wrong number of upvalues");
  for (int i = 1; i <= (int)nups; i++) {
    if (d->p < d->end && *d->p == MAR_T_UPJOIN) {
      d->p++;
      dec_upjoin(d, f, i);
    } else {
      dec_value(d, depth + 1);
      lua_setupvalue(L, f, i);
    }
  }
}

static void dec_udata(Dec *d, unsigned tag, const unsigned char *tagp) {
  lua_State *L = d->L;
  size_t nlen, len;
  const char *name = rd_bytes(d, &nlen);
  const char *bytes = rd_bytes(d, &len);
  char buf[64];
  const codec *c = codec_named(name, nlen);
  if (!c) dec_fail(d, "no codec for userdata '%s'", printable(name, nlen, buf, sizeof buf));
  if (len > MAR_UDATA_MAX) dec_fail(d, "userdata '%s' too long", c->tname);
  int top = lua_gettop(L);
  int ok = c->dec(L, (const unsigned char *)bytes, len) == 0 && lua_gettop(L) == top + 1;
  /* a nil or NaN could become an invalid table key through a REF */
  if (ok && (lua_isnil(L, -1) || (lua_type(L, -1) == LUA_TNUMBER && lua_tonumber(L, -1) != lua_tonumber(L, -1))))
    ok = 0;
  if (!ok) {
    lua_settop(L, top);
    dec_fail(d, "userdata '%s' rejected by its codec", c->tname);
  }
  if (tag & MAR_T_SHARED) memo_add(d, tagp);
}

static NOINLINE void dec_other(Dec *d, int depth, unsigned tag, const unsigned char *tagp) {
  switch (tag & ~MAR_T_SHARED) {
  case MAR_T_STR: { /* MAR_T_SHARED: a table key used again later */
    size_t len;
    const char *s = rd_bytes(d, &len);
    lua_pushlstring(d->L, s, len);
    memo_add(d, tagp);
    return;
  }
  case MAR_T_LFUNC: dec_lfunction(d, depth, tag, tagp); return;
  case MAR_T_UDATA: dec_udata(d, tag, tagp); return;
  }
  switch (tag) { /* the rest cannot be MAR_T_SHARED */
  case MAR_T_MODULE: {
    size_t len;
    const char *name = rd_bytes(d, &len);
    push_module(d, name, len);
    return;
  }
  case MAR_T_CFUNC: dec_cfunction(d); return;
  }
  d->p = tagp;
  if (tag == MAR_T_UPJOIN) dec_fail(d, "upvalue join outside a function");
  dec_fail(d, "unknown tag 0x%02x", tag);
}

static void dec_value(Dec *d, int depth) {
  lua_State *L = d->L;
  need(d, 1);
  const unsigned char *tagp = d->p++;
  unsigned tag = *tagp;
  switch (tag) {
  case MAR_T_INT: {
    uint64_t z = rd_varint(d);
    lua_pushinteger(L, (lua_Integer)((z >> 1) ^ (0 - (z & 1)))); /* un-zigzag */
    break;
  }
  case MAR_T_FLOAT: {
    need(d, 8);
    uint64_t bits = load_le64(d->p);
    d->p += 8;
    double x;
    memcpy(&x, &bits, sizeof x);
    lua_pushnumber(L, (lua_Number)x);
    break;
  }
  case MAR_T_STR: {
    size_t len;
    const char *s = rd_bytes(d, &len);
    lua_pushlstring(L, s, len);
    break;
  }
  case MAR_T_REF: {
    const unsigned char *at = d->p;
    uint64_t offset = rd_varint(d);
    d->slack += (size_t)(d->p - at) - 1;
    push_ref(d, offset);
    break;
  }
  case MAR_T_TABLE:
  case MAR_T_TABLE_META:
  case MAR_T_TABLE | MAR_T_SHARED:
  case MAR_T_TABLE_META | MAR_T_SHARED: dec_table(d, depth, tag, tagp); break;
  case MAR_T_NIL: lua_pushnil(L); break;
  case MAR_T_FALSE: lua_pushboolean(L, 0); break;
  case MAR_T_TRUE: lua_pushboolean(L, 1); break;
  default: dec_other(d, depth, tag, tagp);
  }
}

/* Runs under lua_pcall with the Dec as its argument; returns the values. */
static int dec_protected(lua_State *L) {
  Dec *d = lua_touserdata(L, SLOT_DEC);
  need(d, HEADER_SIZE);
  if (memcmp(d->p, MAGIC, sizeof MAGIC) != 0) dec_fail(d, "not a marshalled message");
  if (d->p[3] != FORMAT_VERSION) dec_fail(d, "format version %d, expected %d", d->p[3], FORMAT_VERSION);
  uint32_t nshared = load_le32(d->p + 4);
  d->p += HEADER_SIZE;
  uint64_t count = rd_varint(d);
  if (count > bytes_left(d) || count > INT_MAX / 2) dec_fail(d, "too many values");
  size_t memo_size = bytes_left(d) / 4; /* a shared object and a REF take 4 bytes or more */
  if (memo_size > nshared) memo_size = nshared;
  d->have_memo = memo_size > 0;
  if (d->have_memo)
    lua_createtable(L, 0, (int)(memo_size < INT_MAX ? memo_size : INT_MAX));
  else
    lua_pushnil(L); /* SLOT_MEMO, made when needed */
  lua_pushnil(L); /* SLOT_PENDING, made when needed */
  lua_pushnil(L); /* SLOT_LOADED, found when needed */
  if (!lua_checkstack(L, (int)count + 3 * MAR_MAX_DEPTH + 40)) /* three slots a level */
    dec_fail(d, "too many values for the Lua stack");
  for (uint64_t i = 0; i < count; i++) dec_value(d, 0);
  if (d->p != d->end) dec_fail(d, "%zu bytes after the last value", bytes_left(d));
  for (lua_Integer i = 1; i < d->npending; i += 2) {
    lua_rawgeti(L, SLOT_PENDING, i);
    lua_rawgeti(L, SLOT_PENDING, i + 1);
    lua_setmetatable(L, -2);
    lua_pop(L, 1);
  }
  return (int)count;
}

int mar_decode(lua_State *L, const unsigned char *p, size_t len, char *err, size_t errlen) {
  static const unsigned char empty[1];
  mar_init();
  if (!p && len) {
    set_error(err, errlen, "mar_decode: no input");
    return -1;
  }
  if (!lua_checkstack(L, 2)) {
    set_error(err, errlen, "mar_decode: Lua stack overflow");
    return -1;
  }
  Dec d;
  d.L = L;
  d.start = d.p = p ? p : empty;
  d.end = d.p + len;
  d.npending = 0;
  d.presize_left = len;
  d.slack = 0;
  d.err[0] = 0;
  int top = lua_gettop(L);
  lua_pushcfunction(L, dec_protected);
  lua_pushlightuserdata(L, &d);
  if (lua_pcall(L, 1, LUA_MULTRET, 0) != LUA_OK) {
    copy_error(L, &d, d.err, err, errlen);
    lua_settop(L, top);
    return -1;
  }
  last_size = len - (atomic_load(&canonical) ? d.slack : 0);
  atomic_fetch_add_explicit(&bytes_decoded, last_size, memory_order_relaxed);
  return lua_gettop(L) - top;
}
