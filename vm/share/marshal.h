/*
 * marshal.h - copy Lua values between interpreters and processes, as bytes.
 *
 * gilvm's workers in `nogil` mode each own a lua_State, and in `fork` mode
 * they live in other processes; values cross between them only as bytes
 * made here. The encoder reads values from one lua_State, the decoder
 * rebuilds them in another (or in the same one, or in another process that
 * shares this process's key: a forked child, or a thread).
 *
 * What can be copied
 *   nil, booleans, integers and floats (the subtype is kept; floats are
 *   bit-exact, NaN and infinities included), strings (any bytes), tables
 *   (cycles and shared references kept: a table reached twice decodes as one
 *   table; metatables are copied as values), Lua functions (their bytecode
 *   with debug info, plus their upvalues; upvalues shared between functions
 *   of one message stay shared; sent in two messages, they become two
 *   copies), C functions that are builtins (found by name
 *   in package.loaded, e.g. "print", "math.sin"), userdata whose metatable
 *   has a codec (mar_register_udata), and tables that are package.loaded[name]
 *   (sent as the name and decoded as the destination's own module; this is
 *   how a function's _ENV becomes the destination's globals, even when such a
 *   table is itself the value sent).
 *   Anything else is refused with a message naming the type and the path.
 *
 * Error paths
 *   "<path>: <reason>", e.g. "results[3].cb: cannot copy a userdata".
 *   The root is `what` when one value is encoded, `what[i]` (1-based) when
 *   several are. Then, one step per level:
 *     .name          a field whose key is an identifier-like string
 *     ["a b"] [3] [1.5] [true]  any other key (long strings are shortened)
 *     [<table>]      a key that is a table, function... (other keys)
 *     .<key>         the key itself of a table entry (e.g. a userdata key)
 *     .<metatable>   the metatable of a table
 *     .<upvalue 'state' of function (file.lua:12)>   an upvalue
 *   A path of more than 12 steps shows the root, its first 4 and its last 8
 *   steps around "...". A message longer than errlen loses the middle of its
 *   path, never the reason.
 *   Example: "globals.handler.<upvalue 'conn' of function (db.lua:5)>.fd".
 *
 * All functions are thread-safe. None raises a Lua error (failures come back
 * as -1 and a message) and none leaves the Lua stack changed except by the
 * values mar_decode pushes.
 */
#ifndef GILVM_MARSHAL_H
#define GILVM_MARSHAL_H

#include <stddef.h>
#include <lua.h>

/* Values nested deeper than this (tables in tables, upvalues of functions...)
   are refused by the encoder and the decoder. */
#define MAR_MAX_DEPTH 200

/* Most bytes a userdata codec may produce for one handle. */
#define MAR_UDATA_MAX 64

/* The wire format's tags, one byte before each value (see the top of
   marshal.c); MAR_T_SHARED is or'ed into the tag of an object that later
   references (MAR_T_REF) point at. Public for tests that forge messages. */
enum mar_tag {
  MAR_T_NIL = 0,
  MAR_T_FALSE,
  MAR_T_TRUE,
  MAR_T_INT,
  MAR_T_FLOAT,
  MAR_T_STR,
  MAR_T_TABLE,
  MAR_T_TABLE_META,
  MAR_T_REF,
  MAR_T_MODULE,
  MAR_T_LFUNC,
  MAR_T_CFUNC,
  MAR_T_UDATA,
  MAR_T_UPJOIN
};
#define MAR_T_SHARED 0x80

/* A growable byte buffer. Start with `mar_buf b = {0};`, free with
   mar_buf_free(). mar_encode appends at b.len (set b.len = 0 to reuse). */
typedef struct mar_buf {
  unsigned char *data;
  size_t len, cap;
} mar_buf;

void mar_buf_free(mar_buf *b);

/* Creates the process's secret key (used to authenticate function bytecode).
   Idempotent and also done on first use; call it at start-up, before any
   fork(), so that parent and children share the key and can exchange
   functions. Returns 0, or -1 if no random bytes were available (functions
   then cannot be encoded or decoded; other values still work). */
int mar_init(void);

/* Encodes the n values at stack slots idx..idx+n-1 of L (n may be 0), and
   appends them to out as one message. `what` names the root for error paths
   ("argument", "results", "globals"...). Returns 0, or -1 with a message in
   err (out->len is then as before). */
int mar_encode(lua_State *L, int idx, int n, const char *what, mar_buf *out, char *err, size_t errlen);

/* Decodes one message of len bytes and pushes its values onto L. Returns how
   many values were pushed, or -1 with a message in err (nothing pushed).
   Safe on arbitrary bytes: never crashes, hangs, or allocates much more than
   a small multiple of len (plus what the decoded values need). */
int mar_decode(lua_State *L, const unsigned char *p, size_t len, char *err, size_t errlen);

/* Userdata codecs, so that handles of gilvm's shared objects can cross.
   A full userdata whose metatable is registry[tname] (luaL_newmetatable's
   name, at most 63 bytes) is encoded by enc into at most MAR_UDATA_MAX bytes,
   and rebuilt by dec, which pushes exactly one value. Both run inside the
   marshaller's protected call: they may raise Lua errors (the encode or
   decode then fails with that message). dec receives untrusted bytes and
   must check them; the value it pushes may not be nil or NaN (it could
   become a table key). Register at start-up, before other threads use the
   marshaller; at most 16 codecs. Returns 0, or -1 if the table is full, the
   name too long, or already registered. */
typedef int (*mar_udata_encode)(lua_State *L, int idx, unsigned char *out, size_t cap); /* bytes written, or -1 */
typedef int (*mar_udata_decode)(lua_State *L, const unsigned char *p, size_t len); /* 0 and one value pushed, or -1 */
int mar_register_udata(const char *tname, mar_udata_encode enc, mar_udata_decode dec);

/* Bytes of successful messages encoded and decoded since start, by all
   threads of this process (the report's "bytes copied"). Either may be NULL. */
void mar_counters(unsigned long long *encoded, unsigned long long *decoded);
/* Take a message back out of the counters: it stands for memory a real fork inherits (--sim's processes). */
void mar_uncount(unsigned long long encoded, unsigned long long decoded);
/* From now on count (and report in mar_last_size) every offset inside a message as one byte, so
   that a message's size does not depend on a table's key order (--sim: the figures must not
   follow Lua's per-run string-hash seed). The bytes themselves are unchanged. */
void mar_canonical_sizes(int on);
/* The size of the calling thread's last message encoded or decoded, as counted above. */
size_t mar_last_size(void);

#endif
