/*
 * marshal.c - the marshaller: Lua values to bytes and back (see marshal.h).
 *
 * THE FORMAT
 *
 *   message := 'G' 'V' 'M' version(=1) nobj:u32 count:varint value*count
 *
 * nobj is how many objects the message defines (a size hint for the
 * decoder), count how many values follow. varint is unsigned LEB128 (7 bits
 * a byte, low bits first); u32 is 4 bytes little-endian. Each value starts
 * with a one-byte tag:
 *
 *   NIL, FALSE, TRUE
 *   INT        zigzag varint (small negative numbers stay short)
 *   FLOAT      8 bytes: the IEEE-754 bits, little-endian (NaN payloads kept)
 *   STR        len:varint, bytes
 *   STR_MEMO   same, and the string becomes the next object (table keys)
 *   TABLE      narr:u32 nhash:u32, narr values (keys 1..narr), nhash
 *              key/value pairs; the table becomes the next object
 *   TABLE_META the same, followed by the metatable as a value
 *   REF        id:varint - the id-th object defined so far (1-based)
 *   MODULE     len:varint name - the destination's package.loaded[name]
 *   LFUNC      len:u32 bytecode mac:8 nups:varint upvalue*nups - a Lua
 *              function; it becomes the next object before its upvalues
 *   CFUNC      module:(len bytes) key:(len bytes) - package.loaded[module][key]
 *   UDATA      tname:(len bytes) len:varint bytes - rebuilt by a codec;
 *              becomes the next object
 *   upvalue := value | UPJOIN fnid:varint n:varint - share the n-th upvalue
 *              of object fnid (a function decoded earlier in the message)
 *
 * Objects are numbered in the order the decoder starts building them, so a
 * table can refer to itself (cycles) and a table reached twice is sent once
 * (shared references survive). Short strings used as table keys are objects
 * too, so the field names of a list of records are sent once.
 *
 * SAFETY CHOICES
 *
 * - Every Lua call that can raise an error (out of memory, mostly) runs
 *   inside one lua_pcall per encode or decode; our own failures are raised
 *   the same way, with a light userdata as the error value and the message
 *   kept in C. So mar_encode and mar_decode never longjmp out, and the C
 *   recursion holds no resource that an error would leak.
 * - Only raw accessors (lua_next, lua_rawget, lua_rawset, lua_getmetatable)
 *   touch the values: copying must not run user code through __index,
 *   __newindex, __pairs or __metatable. Metatables are set on the decoded
 *   tables at the very end, once every object is complete.
 * - The decoder trusts nothing: every read is bounds-checked, every count is
 *   compared with the bytes left before anything is allocated, the total
 *   size of preallocated tables is bounded by the message length, nesting
 *   is limited to MAR_MAX_DEPTH (which bounds the C recursion too), and the
 *   Lua stack is grown with lua_checkstack.
 * - Lua's loader for binary chunks does not verify bytecode: malformed
 *   bytecode can crash the VM or worse. So each function's bytecode carries
 *   a SipHash-2-4 tag keyed with 128 random bits drawn once per process
 *   (threads share the key, forked children inherit it). The decoder calls
 *   lua_load (in binary-only mode) only on bytecode whose tag checks, that
 *   is, on bytecode that lua_dump made in this process tree.
 */
#include "marshal.h"

#include <lauxlib.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

enum tag {
    T_NIL = 0x00, T_FALSE, T_TRUE, T_INT, T_FLOAT, T_STR, T_STR_MEMO,
    T_TABLE, T_TABLE_META, T_REF, T_MODULE, T_LFUNC, T_CFUNC, T_UDATA,
    T_UPJOIN
};

static const unsigned char MAGIC[3] = { 'G', 'V', 'M' };
#define FORMAT_VERSION 1
#define HEADER_SIZE 8           /* magic, version, nobj */
#define MAC_SIZE 8
#define MEMO_STRING_MAX 40      /* Lua interns strings up to this length */
#define MAX_CODECS 16
#define PATH_HEAD 4             /* steps shown before "..." in long paths */
#define PATH_TAIL 8             /* and after it */

/* ------------------------------------------------------------------ */
/* Counters and the secret key                                         */
/* ------------------------------------------------------------------ */

static atomic_ullong bytes_encoded, bytes_decoded;

void mar_counters(unsigned long long *encoded, unsigned long long *decoded)
{
    if (encoded) *encoded = atomic_load_explicit(&bytes_encoded, memory_order_relaxed);
    if (decoded) *decoded = atomic_load_explicit(&bytes_decoded, memory_order_relaxed);
}

static uint64_t mac_key[2];
static int mac_key_ok;
static pthread_once_t mac_key_once = PTHREAD_ONCE_INIT;

/* Fills buf with n random bytes from the kernel; 0 on success. */
static int random_bytes(unsigned char *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(buf + got, n - got, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    if (got == n) return 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);   /* kernels without getrandom */
    if (fd < 0) return -1;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    return got == n ? 0 : -1;
}

static uint64_t load_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static void store_le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static void make_key(void)
{
    unsigned char k[16];
    if (random_bytes(k, sizeof k) != 0) return;
    mac_key[0] = load_le64(k);
    mac_key[1] = load_le64(k + 8);
    mac_key_ok = 1;
}

int mar_init(void)
{
    pthread_once(&mac_key_once, make_key);
    return mac_key_ok ? 0 : -1;
}

/* SipHash-2-4 (Aumasson and Bernstein, 2012): a keyed 64-bit hash, cheap and
   unforgeable without the key. */
static uint64_t rotl64(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

static void sip_round(uint64_t v[4])
{
    v[0] += v[1]; v[1] = rotl64(v[1], 13); v[1] ^= v[0]; v[0] = rotl64(v[0], 32);
    v[2] += v[3]; v[3] = rotl64(v[3], 16); v[3] ^= v[2];
    v[0] += v[3]; v[3] = rotl64(v[3], 21); v[3] ^= v[0];
    v[2] += v[1]; v[1] = rotl64(v[1], 17); v[1] ^= v[2]; v[2] = rotl64(v[2], 32);
}

static uint64_t siphash24(const uint64_t key[2], const unsigned char *m, size_t n)
{
    uint64_t v[4] = {
        key[0] ^ 0x736f6d6570736575ULL, key[1] ^ 0x646f72616e646f6dULL,
        key[0] ^ 0x6c7967656e657261ULL, key[1] ^ 0x7465646279746573ULL,
    };
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {            /* whole 8-byte words */
        uint64_t w = load_le64(m + i);
        v[3] ^= w; sip_round(v); sip_round(v); v[0] ^= w;
    }
    uint64_t last = (uint64_t)n << 56;      /* tail bytes plus the length */
    for (size_t j = 0; i + j < n; j++) last |= (uint64_t)m[i + j] << (8 * j);
    v[3] ^= last; sip_round(v); sip_round(v); v[0] ^= last;
    v[2] ^= 0xff;
    for (int r = 0; r < 4; r++) sip_round(v);
    return v[0] ^ v[1] ^ v[2] ^ v[3];
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
static atomic_int ncodecs;          /* entries below it are complete (release/acquire) */
static pthread_mutex_t codecs_lock = PTHREAD_MUTEX_INITIALIZER;

int mar_register_udata(const char *tname, mar_udata_encode enc, mar_udata_decode dec)
{
    if (!tname || !enc || !dec || strlen(tname) >= sizeof codecs[0].tname) return -1;
    mar_init();
    pthread_mutex_lock(&codecs_lock);
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
    pthread_mutex_unlock(&codecs_lock);
    return ok ? 0 : -1;
}

static const codec *codec_named(const char *name, size_t len)
{
    int n = atomic_load_explicit(&ncodecs, memory_order_acquire);
    for (int i = 0; i < n; i++)
        if (strlen(codecs[i].tname) == len && memcmp(codecs[i].tname, name, len) == 0)
            return &codecs[i];
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Byte buffer and pointer map (shared C helpers)                      */
/* ------------------------------------------------------------------ */

void mar_buf_free(mar_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* Makes room for n more bytes, doubling the capacity; 0 or -1 (no memory). */
static int buf_grow(mar_buf *b, size_t n)
{
    if (b->cap - b->len >= n) return 0;
    if (n > SIZE_MAX / 2 - b->len) return -1;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < n) cap *= 2;
    unsigned char *data = realloc(b->data, cap);
    if (!data) return -1;
    b->data = data;
    b->cap = cap;
    return 0;
}

/* Open-addressing hash map from an object's address to two numbers. The
   encoder uses it to find objects it has already seen; addresses are stable
   because Lua's collector never moves objects, and everything we look at
   stays reachable from the values being encoded. */
typedef struct ptr_entry {
    const void *key;
    uint32_t a, b;
} ptr_entry;

typedef struct ptr_map {
    ptr_entry *slots;
    size_t mask, count;     /* capacity - 1, entries used */
} ptr_map;

static size_t ptr_hash(const void *p)
{
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 29;                       /* fold high bits into the low ones */
    return (size_t)(x * 0x9E3779B97F4A7C15ULL >> 20);
}

static int map_resize(ptr_map *m, size_t cap)
{
    ptr_entry *slots = calloc(cap, sizeof *slots);
    if (!slots) return -1;
    for (size_t i = 0; m->slots && i <= m->mask; i++) {
        if (!m->slots[i].key) continue;
        size_t j = ptr_hash(m->slots[i].key) & (cap - 1);
        while (slots[j].key) j = (j + 1) & (cap - 1);
        slots[j] = m->slots[i];
    }
    free(m->slots);
    m->slots = slots;
    m->mask = cap - 1;
    return 0;
}

/* Finds key, or inserts it (a = b = 0). *found tells which. NULL when out of
   memory. The entry is valid until the next insertion. */
static ptr_entry *map_slot(ptr_map *m, const void *key, int *found)
{
    if (!m->slots || (m->count + 1) * 2 > m->mask + 1) {
        if (map_resize(m, m->slots ? (m->mask + 1) * 2 : 64) != 0) return NULL;
    }
    size_t i = ptr_hash(key) & m->mask;
    while (m->slots[i].key) {
        if (m->slots[i].key == key) { *found = 1; return &m->slots[i]; }
        i = (i + 1) & m->mask;
    }
    *found = 0;
    m->count++;
    m->slots[i].key = key;
    m->slots[i].a = m->slots[i].b = 0;
    return &m->slots[i];
}

static void map_free(ptr_map *m)
{
    free(m->slots);
    m->slots = NULL;
    m->mask = m->count = 0;
}

/* ------------------------------------------------------------------ */
/* Encoder                                                             */
/* ------------------------------------------------------------------ */

/* How a value was reached from its parent, for error paths. */
enum step_kind { STEP_ROOT, STEP_INDEX, STEP_FIELD, STEP_KEY, STEP_META, STEP_UPVALUE };

typedef struct step {
    int kind;
    int slot;               /* FIELD: stack slot of the key; UPVALUE: of the function */
    int n;                  /* UPVALUE: its number */
    lua_Integer index;      /* ROOT, INDEX: the position */
} step;

enum { KIND_OBJECT = 0, KIND_MODULE = 1 };

typedef struct name_ref { const char *s; size_t len; } name_ref;   /* a Lua string's bytes */

typedef struct Enc {
    lua_State *L;
    mar_buf *out;
    const char *what;
    int nroots;
    uint32_t next_id;           /* objects defined so far */
    ptr_map objects;            /* table/function/udata/key string -> id (a), kind (b) */
    ptr_map upvalues;           /* lua_upvalueid -> function id (a), upvalue number (b) */
    ptr_map builtins;           /* C function -> module name (a), key name (b) */
    int modules_scanned, builtins_scanned;
    name_ref *names;            /* module and builtin names, kept alive by package.loaded */
    size_t nnames, capnames;
    step steps[MAR_MAX_DEPTH + 1];
    char err[512];
} Enc;

static void enc_value(Enc *e, int idx, int depth);

/* --- error paths --- */

typedef struct text { char *s; size_t size, len; } text;   /* bounded string builder */

static void text_add(text *t, const char *fmt, ...)
{
    if (t->len + 1 >= t->size) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->s + t->len, t->size - t->len, fmt, ap);
    va_end(ap);
    if (n > 0) t->len += (size_t)n < t->size - t->len ? (size_t)n : t->size - t->len - 1;
}

static int is_identifier(const char *s, size_t len)
{
    static const char *const keywords[] = {
        "and", "break", "do", "else", "elseif", "end", "false", "for", "function",
        "goto", "if", "in", "local", "nil", "not", "or", "repeat", "return", "then",
        "true", "until", "while", NULL
    };
    if (len == 0 || (s[0] >= '0' && s[0] <= '9')) return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
            return 0;
    }
    for (int i = 0; keywords[i]; i++)
        if (strlen(keywords[i]) == len && memcmp(keywords[i], s, len) == 0) return 0;
    return 1;
}

/* A string as a Lua literal, shortened to 32 bytes. */
static void text_quoted(text *t, const char *s, size_t len)
{
    text_add(t, "\"");
    for (size_t i = 0; i < len && i < 32; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') text_add(t, "\\%c", c);
        else if (c == '\n') text_add(t, "\\n");
        else if (c < 32 || c >= 127) text_add(t, "\\%u", c);
        else text_add(t, "%c", c);
    }
    text_add(t, len > 32 ? "...\"" : "\"");
}

static void text_step(Enc *e, text *t, const step *s)
{
    lua_State *L = e->L;
    switch (s->kind) {
    case STEP_ROOT:
        if (e->nroots == 1) text_add(t, "%s", e->what);
        else text_add(t, "%s[%lld]", e->what, (long long)s->index);
        break;
    case STEP_INDEX:
        text_add(t, "[%lld]", (long long)s->index);
        break;
    case STEP_FIELD:
        switch (lua_type(L, s->slot)) {
        case LUA_TSTRING: {
            size_t len;
            const char *k = lua_tolstring(L, s->slot, &len);
            if (is_identifier(k, len)) text_add(t, ".%s", k);
            else { text_add(t, "["); text_quoted(t, k, len); text_add(t, "]"); }
            break;
        }
        case LUA_TNUMBER:
            if (lua_isinteger(L, s->slot)) text_add(t, "[%lld]", (long long)lua_tointeger(L, s->slot));
            else text_add(t, "[%.14g]", (double)lua_tonumber(L, s->slot));
            break;
        case LUA_TBOOLEAN:
            text_add(t, lua_toboolean(L, s->slot) ? "[true]" : "[false]");
            break;
        default:
            text_add(t, "[<%s>]", luaL_typename(L, s->slot));
        }
        break;
    case STEP_KEY:
        text_add(t, ".<key>");
        break;
    case STEP_META:
        text_add(t, ".<metatable>");
        break;
    case STEP_UPVALUE: {
        const char *name = lua_getupvalue(L, s->slot, s->n);
        if (name) lua_pop(L, 1);
        lua_Debug ar;
        lua_pushvalue(L, s->slot);
        lua_getinfo(L, ">S", &ar);
        text_add(t, ".<upvalue '%s' of ", name && *name ? name : "?");
        if (strcmp(ar.what, "main") == 0) text_add(t, "main chunk (%s)>", ar.short_src);
        else text_add(t, "function (%s:%d)>", ar.short_src, ar.linedefined);
        break;
    }
    }
}

/* Raises our own error: "<path to steps[depth]>: <message>". The light
   userdata error value tells mar_encode that the message is in e->err. */
static void enc_fail(Enc *e, int depth, const char *fmt, ...)
{
    text t = { e->err, sizeof e->err, 0 };
    lua_checkstack(e->L, 4);    /* room to format upvalue steps (reserved earlier) */
    for (int d = 0; d <= depth; d++) {
        if (depth > PATH_HEAD + PATH_TAIL && d > PATH_HEAD && d <= depth - PATH_TAIL) {
            if (d == PATH_HEAD + 1) text_add(&t, "...");
            continue;
        }
        text_step(e, &t, &e->steps[d]);
    }
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    text_add(&t, ": %s", msg);
    lua_pushlightuserdata(e->L, e);
    lua_error(e->L);
}

static void enc_oom(Enc *e)
{
    snprintf(e->err, sizeof e->err, "not enough memory");
    lua_pushlightuserdata(e->L, e);
    lua_error(e->L);
}

/* --- writing bytes --- */

/* Pointer to n writable bytes at the end of the output. */
static inline unsigned char *room(Enc *e, size_t n)
{
    mar_buf *b = e->out;
    if (b->cap - b->len < n && buf_grow(b, n) != 0) enc_oom(e);
    return b->data + b->len;
}

static inline size_t varint_to(unsigned char *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) { p[n++] = (unsigned char)(v | 0x80); v >>= 7; }
    p[n++] = (unsigned char)v;
    return n;
}

static inline void put_byte(Enc *e, unsigned char c)
{
    *room(e, 1) = c;
    e->out->len++;
}

static inline void put_varint(Enc *e, uint64_t v)
{
    e->out->len += varint_to(room(e, 10), v);
}

static inline void put_tag_varint(Enc *e, unsigned char tag, uint64_t v)
{
    unsigned char *p = room(e, 11);
    p[0] = tag;
    e->out->len += 1 + varint_to(p + 1, v);
}

static void put_tag_bytes(Enc *e, unsigned char tag, const void *s, size_t len)
{
    unsigned char *p = room(e, 11 + len);
    p[0] = tag;
    size_t n = 1 + varint_to(p + 1, len);
    memcpy(p + n, s, len);
    e->out->len += n + len;
}

static void put_u32_at(mar_buf *b, size_t pos, uint32_t v)
{
    for (int i = 0; i < 4; i++) b->data[pos + i] = (unsigned char)(v >> (8 * i));
}

static inline void put_int(Enc *e, lua_Integer i)
{
    uint64_t u = (uint64_t)i;
    put_tag_varint(e, T_INT, i < 0 ? ~(u << 1) : u << 1);   /* zigzag */
}

static inline void put_float(Enc *e, lua_Number x)
{
    double d = (double)x;
    uint64_t bits;
    memcpy(&bits, &d, sizeof bits);
    unsigned char *p = room(e, 9);
    p[0] = T_FLOAT;
    store_le64(p + 1, bits);
    e->out->len += 9;
}

/* --- module and builtin names --- */

static uint32_t add_name(Enc *e, const char *s, size_t len)
{
    if (e->nnames == e->capnames) {
        size_t cap = e->capnames ? e->capnames * 2 : 64;
        name_ref *names = realloc(e->names, cap * sizeof *names);
        if (!names) enc_oom(e);
        e->names = names;
        e->capnames = cap;
    }
    e->names[e->nnames].s = s;
    e->names[e->nnames].len = len;
    return (uint32_t)e->nnames++;
}

static int is_standard_module(const char *s)
{
    static const char *const std[] = { "_G", "package", "coroutine", "table", "io", "os",
                                       "string", "math", "utf8", "debug", NULL };
    for (int i = 0; std[i]; i++)
        if (strcmp(std[i], s) == 0) return 1;
    return 0;
}

/* When one table is loaded under two names, prefer the one the destination
   surely has: a standard library, then the shorter, then the smaller name. */
static int better_module_name(const name_ref *a, const name_ref *b)
{
    int sa = is_standard_module(a->s), sb = is_standard_module(b->s);
    if (sa != sb) return sa;
    if (a->len != b->len) return a->len < b->len;
    return strcmp(a->s, b->s) < 0;
}

/* Pushes package.loaded (or nothing, returning 0, if it is missing). */
static int push_loaded(lua_State *L)
{
    if (lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE) == LUA_TTABLE) return 1;
    lua_pop(L, 1);
    return 0;
}

/* Marks every table in package.loaded as a module, so that it is sent by name. */
static void scan_modules(Enc *e)
{
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
            int found;
            ptr_entry *en = map_slot(&e->objects, lua_topointer(L, -1), &found);
            if (!en) enc_oom(e);
            if (!found || better_module_name(&name, &e->names[en->a])) {
                en->b = KIND_MODULE;
                en->a = add_name(e, s, len);
            }
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

/* Records the C functions of the module at the top of the stack. */
static void add_builtins(Enc *e, uint32_t module)
{
    lua_State *L = e->L;
    int mod = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, mod)) {
        if (lua_type(L, -2) == LUA_TSTRING && lua_iscfunction(L, -1)) {
            int found;
            ptr_entry *en = map_slot(&e->builtins, lua_topointer(L, -1), &found);
            if (!en) enc_oom(e);
            if (!found) {           /* the first name wins: _G is scanned first */
                size_t len;
                const char *s = lua_tolstring(L, -2, &len);
                en->a = module;
                en->b = UINT32_MAX;
                uint32_t key = add_name(e, s, len);
                en = map_slot(&e->builtins, lua_topointer(L, -1), &found);
                en->b = key;
            }
        }
        lua_pop(L, 1);
    }
}

/* Finds the names of all builtins: C functions in package.loaded's modules. */
static void scan_builtins(Enc *e)
{
    lua_State *L = e->L;
    e->builtins_scanned = 1;
    if (!push_loaded(L)) return;
    int loaded = lua_gettop(L);
    if (lua_getfield(L, loaded, LUA_GNAME) == LUA_TTABLE)
        add_builtins(e, add_name(e, LUA_GNAME, strlen(LUA_GNAME)));
    lua_pop(L, 1);
    lua_pushnil(L);
    while (lua_next(L, loaded)) {
        if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TTABLE) {
            size_t len;
            const char *s = lua_tolstring(L, -2, &len);
            add_builtins(e, add_name(e, s, len));
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

/* --- values --- */

/* An object seen before: a back-reference, or a module sent by name. */
static void put_known(Enc *e, const ptr_entry *en)
{
    if (en->b == KIND_MODULE) {
        const name_ref *name = &e->names[en->a];
        put_tag_bytes(e, T_MODULE, name->s, name->len);
    } else {
        put_tag_varint(e, T_REF, en->a);
    }
}

/* Looks the object at idx up; returns 1 if it was written as known, else
   gives it the next id and returns 0. */
static int enc_seen(Enc *e, int idx)
{
    int found;
    ptr_entry *en = map_slot(&e->objects, lua_topointer(e->L, idx), &found);
    if (!en) enc_oom(e);
    if (found) { put_known(e, en); return 1; }
    en->a = ++e->next_id;
    en->b = KIND_OBJECT;
    return 0;
}

/* Table keys: short strings are sent once, then by reference. */
static void enc_key(Enc *e, int idx, int depth)
{
    if (lua_type(e->L, idx) == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(e->L, idx, &len);
        if (len <= MEMO_STRING_MAX) {
            int found;
            ptr_entry *en = map_slot(&e->objects, s, &found);  /* interned: same text, same address */
            if (!en) enc_oom(e);
            if (found) { put_tag_varint(e, T_REF, en->a); return; }
            en->a = ++e->next_id;
            en->b = KIND_OBJECT;
            put_tag_bytes(e, T_STR_MEMO, s, len);
            return;
        }
    }
    enc_value(e, idx, depth);
}

static void enc_table(Enc *e, int t, int depth)
{
    lua_State *L = e->L;
    if (!e->modules_scanned) scan_modules(e);
    if (enc_seen(e, t)) return;
    if (depth >= MAR_MAX_DEPTH) enc_fail(e, depth, "nesting deeper than %d levels", MAR_MAX_DEPTH);
    if (!lua_checkstack(L, 8)) enc_fail(e, depth, "Lua stack overflow");

    int has_meta = lua_getmetatable(L, t);
    if (has_meta) lua_pop(L, 1);
    size_t head = e->out->len;
    room(e, 9)[0] = has_meta ? T_TABLE_META : T_TABLE;
    e->out->len += 9;                   /* counts patched below */

    size_t narr = 0, nhash = 0;
    int top = lua_gettop(L);            /* lua_next leaves the key at top+1, the value at top+2 */
    step *child = &e->steps[depth + 1];
    lua_pushnil(L);
    while (lua_next(L, t)) {
        /* lua_next walks the array part first, in order: keep 1..n as a list */
        if (nhash == 0 && lua_isinteger(L, top + 1) && lua_tointeger(L, top + 1) == (lua_Integer)narr + 1) {
            child->kind = STEP_INDEX;
            child->index = (lua_Integer)++narr;
        } else {
            child->kind = STEP_KEY;
            enc_key(e, top + 1, depth + 1);
            child->kind = STEP_FIELD;
            child->slot = top + 1;
            nhash++;
        }
        enc_value(e, top + 2, depth + 1);
        lua_settop(L, top + 1);
    }
    if (narr > UINT32_MAX || nhash > UINT32_MAX) enc_fail(e, depth, "table too large");
    put_u32_at(e->out, head + 1, (uint32_t)narr);
    put_u32_at(e->out, head + 5, (uint32_t)nhash);
    if (has_meta) {
        lua_getmetatable(L, t);
        child->kind = STEP_META;
        enc_value(e, top + 1, depth + 1);
        lua_settop(L, top);
    }
}

static int dump_writer(lua_State *L, const void *p, size_t size, void *ud)
{
    (void)L;
    mar_buf *b = ud;
    if (buf_grow(b, size) != 0) return 1;
    memcpy(b->data + b->len, p, size);
    b->len += size;
    return 0;
}

static void enc_cfunction(Enc *e, int f, int depth)
{
    if (!e->builtins_scanned) scan_builtins(e);
    int found = 0;
    ptr_entry *en = e->builtins.slots ? map_slot(&e->builtins, lua_topointer(e->L, f), &found) : NULL;
    if (!found) enc_fail(e, depth, "cannot copy a C function that is not a builtin");
    const name_ref *mod = &e->names[en->a], *key = &e->names[en->b];
    put_tag_bytes(e, T_CFUNC, mod->s, mod->len);
    put_varint(e, key->len);
    memcpy(room(e, key->len), key->s, key->len);
    e->out->len += key->len;
}

/* A Lua function: authenticated bytecode (with debug info), then upvalues. */
static void enc_lfunction(Enc *e, int f, int depth)
{
    lua_State *L = e->L;
    if (!e->modules_scanned) scan_modules(e);
    if (enc_seen(e, f)) return;
    uint32_t id = e->next_id;
    if (depth >= MAR_MAX_DEPTH) enc_fail(e, depth, "nesting deeper than %d levels", MAR_MAX_DEPTH);
    if (!mac_key_ok) enc_fail(e, depth, "cannot copy a function: no random key for authentication");
    if (!lua_checkstack(L, 8)) enc_fail(e, depth, "Lua stack overflow");

    size_t head = e->out->len;
    room(e, 5)[0] = T_LFUNC;
    e->out->len += 5;                   /* length patched below */
    lua_pushvalue(L, f);
    int status = lua_dump(L, dump_writer, e->out, 0);  /* 0: keep debug info */
    lua_pop(L, 1);
    if (status != 0) enc_oom(e);
    size_t len = e->out->len - head - 5;
    if (len > UINT32_MAX) enc_fail(e, depth, "function too large");
    put_u32_at(e->out, head + 1, (uint32_t)len);
    uint64_t mac = siphash24(mac_key, e->out->data + head + 5, len);
    store_le64(room(e, MAC_SIZE), mac);
    e->out->len += MAC_SIZE;

    lua_Debug ar;
    lua_pushvalue(L, f);
    lua_getinfo(L, ">u", &ar);
    put_varint(e, ar.nups);
    step *child = &e->steps[depth + 1];
    for (int i = 1; i <= ar.nups; i++) {
        int found;
        ptr_entry *en = map_slot(&e->upvalues, lua_upvalueid(L, f, i), &found);
        if (!en) enc_oom(e);
        if (found) {                    /* shared with a function sent earlier */
            put_tag_varint(e, T_UPJOIN, en->a);
            put_varint(e, en->b);
            continue;
        }
        en->a = id;
        en->b = (uint32_t)i;
        lua_getupvalue(L, f, i);
        child->kind = STEP_UPVALUE;
        child->slot = f;
        child->n = i;
        enc_value(e, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
    }
}
