/*
 * dis.c — `gilvm dis script.lua`: each function's Lua 5.4 bytecode, its
 * source lines, and where gilvm's eval breaker can hand the GIL over.
 *
 * Debian's liblua5.4 exports no disassembler, so the chunk is dumped
 * (lua_dump, the format of Lua 5.4's ldump.c) and its instruction words
 * decoded here (lopcodes.h: 7-bit opcode, then A, k, B, C or Bx, sBx, sJ).
 *
 * Where a switch can happen. The breaker (vm/core/breaker.c) uses only
 * Lua's count hook. A drop request arms it with a count of 1 on the running
 * Lua state; lua_sethook marks every call frame, but luaV_execute keeps its
 * own copy of that mark (`trap`) and reloads it only at some instructions.
 * The hook, and so the switch, runs before the first instruction fetched
 * after such a reload. So an instruction is a switch point when it can be
 * the next one executed after a reload:
 *   always: the first instruction of a function (after VARARGPREP for a
 *     vararg one), the instruction after a CALL (the callee returned), the
 *     target of every JMP (conditional or not), both ways out of FORLOOP and
 *     of a generic for (TFORCALL calls the iterator), and after the
 *     instructions that always reload it: EQ, LEN, CONCAT, CLOSE, VARARG;
 *   slow path only: after an instruction that reloads it only when its fast
 *     path fails: a table access whose key is absent or whose object is not a
 *     table (an __index/__newindex may run), arithmetic on non-numbers
 *     (MMBIN*: a metamethod), a comparison of non-numbers, or a step of the
 *     garbage collector (NEWTABLE, CONCAT, CLOSURE);
 *   never: every other instruction follows its predecessor with no switch.
 * A resting count hook (the legacy GIL's check interval, a script's own
 * debug.sethook count or line hook, a ThreadSanitizer build's polling)
 * keeps the mark set, and then a switch can come before any instruction.
 */
#include "dis.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "breaker.h"
#include "gil.h"
#include "vec.h"

enum { MARK_NONE, MARK_SLOW, MARK_ALWAYS };
enum { F_ABC, F_ABX, F_ASBX, F_AX, F_SJ };

typedef struct opinfo {
  const char *name;
  char fmt; /* F_* */
  char reload; /* MARK_*: executing it reloads the breaker's mark always, or on its slow path */
  char skip; /* it goes on 2 instructions later: a test that does not jump, NEWTABLE (EXTRAARG) */
} opinfo;

#define A_ MARK_ALWAYS
#define S_ MARK_SLOW
static const opinfo ops[] = {
  /* Lua 5.4.4's lopcodes.h, in order */
  { "MOVE", F_ABC, 0, 0 },        { "LOADI", F_ASBX, 0, 0 },    { "LOADF", F_ASBX, 0, 0 },
  { "LOADK", F_ABX, 0, 0 },       { "LOADKX", F_ABX, 0, 0 },    { "LOADFALSE", F_ABC, 0, 0 },
  { "LFALSESKIP", F_ABC, 0, 0 },  { "LOADTRUE", F_ABC, 0, 0 },  { "LOADNIL", F_ABC, 0, 0 },
  { "GETUPVAL", F_ABC, 0, 0 },    { "SETUPVAL", F_ABC, 0, 0 },  { "GETTABUP", F_ABC, S_, 0 },
  { "GETTABLE", F_ABC, S_, 0 },   { "GETI", F_ABC, S_, 0 },     { "GETFIELD", F_ABC, S_, 0 },
  { "SETTABUP", F_ABC, S_, 0 },   { "SETTABLE", F_ABC, S_, 0 }, { "SETI", F_ABC, S_, 0 },
  { "SETFIELD", F_ABC, S_, 0 },   { "NEWTABLE", F_ABC, S_, 1 }, { "SELF", F_ABC, S_, 0 },
  { "ADDI", F_ABC, 0, 0 },        { "ADDK", F_ABC, 0, 0 },      { "SUBK", F_ABC, 0, 0 },
  { "MULK", F_ABC, 0, 0 },        { "MODK", F_ABC, 0, 0 },      { "POWK", F_ABC, 0, 0 },
  { "DIVK", F_ABC, 0, 0 },        { "IDIVK", F_ABC, 0, 0 },     { "BANDK", F_ABC, 0, 0 },
  { "BORK", F_ABC, 0, 0 },        { "BXORK", F_ABC, 0, 0 },     { "SHRI", F_ABC, 0, 0 },
  { "SHLI", F_ABC, 0, 0 },        { "ADD", F_ABC, 0, 0 },       { "SUB", F_ABC, 0, 0 },
  { "MUL", F_ABC, 0, 0 },         { "MOD", F_ABC, 0, 0 },       { "POW", F_ABC, 0, 0 },
  { "DIV", F_ABC, 0, 0 },         { "IDIV", F_ABC, 0, 0 },      { "BAND", F_ABC, 0, 0 },
  { "BOR", F_ABC, 0, 0 },         { "BXOR", F_ABC, 0, 0 },      { "SHL", F_ABC, 0, 0 },
  { "SHR", F_ABC, 0, 0 },         { "MMBIN", F_ABC, S_, 0 },    { "MMBINI", F_ABC, S_, 0 },
  { "MMBINK", F_ABC, S_, 0 },     { "UNM", F_ABC, S_, 0 },      { "BNOT", F_ABC, S_, 0 },
  { "NOT", F_ABC, 0, 0 },         { "LEN", F_ABC, A_, 0 },      { "CONCAT", F_ABC, A_, 0 },
  { "CLOSE", F_ABC, A_, 0 },      { "TBC", F_ABC, 0, 0 },       { "JMP", F_SJ, A_, 0 },
  { "EQ", F_ABC, A_, 1 },         { "LT", F_ABC, S_, 1 },       { "LE", F_ABC, S_, 1 },
  { "EQK", F_ABC, 0, 1 },         { "EQI", F_ABC, 0, 1 },       { "LTI", F_ABC, S_, 1 },
  { "LEI", F_ABC, S_, 1 },        { "GTI", F_ABC, S_, 1 },      { "GEI", F_ABC, S_, 1 },
  { "TEST", F_ABC, 0, 1 },        { "TESTSET", F_ABC, 0, 1 },   { "CALL", F_ABC, A_, 0 },
  { "TAILCALL", F_ABC, 0, 0 },    { "RETURN", F_ABC, 0, 0 },    { "RETURN0", F_ABC, 0, 0 },
  { "RETURN1", F_ABC, 0, 0 },     { "FORLOOP", F_ABX, A_, 0 },  { "FORPREP", F_ABX, 0, 0 },
  { "TFORPREP", F_ABX, 0, 0 },    { "TFORCALL", F_ABC, A_, 0 }, { "TFORLOOP", F_ABX, 0, 0 },
  { "SETLIST", F_ABC, 0, 0 },     { "CLOSURE", F_ABX, S_, 0 },  { "VARARG", F_ABC, A_, 0 },
  { "VARARGPREP", F_ABC, A_, 0 }, { "EXTRAARG", F_AX, 0, 0 },
};
#undef A_
#undef S_
#define NOPS ((int)(sizeof ops / sizeof ops[0]))

#define OP(i) ((int)((i)&0x7f))
#define ARG_A(i) ((int)(((i) >> 7) & 0xff))
#define ARG_K(i) ((int)(((i) >> 15) & 1))
#define ARG_B(i) ((int)(((i) >> 16) & 0xff))
#define ARG_C(i) ((int)(((i) >> 24) & 0xff))
#define ARG_BX(i) ((int)((i) >> 15))
#define ARG_SBX(i) (ARG_BX(i) - 0xffff)
#define ARG_SJ(i) ((int)((i) >> 7) - 0xffffff)
#define ARG_AX(i) ((int)((i) >> 7))

/* ---- reading a dumped chunk ---- */

typedef struct reader {
  const unsigned char *p, *end;
  int bad;
} reader;

typedef struct dconst { /* a constant: only strings are shown */
  char *str;
} dconst;

typedef struct dlocal {
  char *name;
  int startpc, endpc;
} dlocal;

typedef struct dfunc {
  int linedefined, lastlinedefined, numparams, is_vararg;
  uint32_t *code;
  int ncode;
  int *line; /* source line of each instruction (-1: stripped) */
  dconst *k;
  int nk;
  dlocal *locals;
  int nlocals;
  struct dfunc *protos;
  int nprotos;
  char name[64]; /* "function 'f'", from where its parent stores the closure */
} dfunc;

static unsigned byte(reader *r) {
  if (r->p >= r->end) {
    r->bad = 1;
    return 0;
  }
  return *r->p++;
}

static size_t varint(reader *r) { /* ldump.c's dumpSize: 7 bits a byte, most significant first, 0x80 ends */
  size_t x = 0;
  unsigned b;
  do {
    b = byte(r);
    x = (x << 7) | (b & 0x7f);
  } while (!(b & 0x80) && !r->bad);
  return x;
}

static void skip(reader *r, size_t n) {
  if ((size_t)(r->end - r->p) < n) {
    r->bad = 1;
    r->p = r->end;
  } else {
    r->p += n;
  }
}

static char *string(reader *r) { /* NULL for a NULL string; a malloc'd copy otherwise */
  size_t n = varint(r);
  if (n == 0 || r->bad) return NULL;
  n--;
  if ((size_t)(r->end - r->p) < n) {
    r->bad = 1;
    return NULL;
  }
  char *s = malloc(n + 1);
  if (s) {
    memcpy(s, r->p, n);
    s[n] = '\0';
  }
  r->p += n;
  return s;
}

static int count(reader *r, size_t each) { /* a vector's length, sanity-checked against what is left */
  size_t n = varint(r);
  if (n > (size_t)(r->end - r->p) / (each ? each : 1) || n > 1u << 26) r->bad = 1;
  return r->bad ? 0 : (int)n;
}

static void read_function(reader *r, dfunc *f) {
  free(string(r)); /* source: the script's name, known already */
  f->linedefined = (int)varint(r);
  f->lastlinedefined = (int)varint(r);
  f->numparams = (int)byte(r);
  f->is_vararg = (int)byte(r);
  byte(r); /* maxstacksize */
  f->ncode = count(r, 4);
  f->code = calloc((size_t)f->ncode + 1, sizeof *f->code);
  if (!f->code) r->bad = 1;
  for (int i = 0; i < f->ncode && !r->bad; i++) {
    memcpy(&f->code[i], r->p, 4); /* native byte order, as lua_dump wrote it */
    skip(r, 4);
  }
  f->nk = count(r, 1);
  f->k = calloc((size_t)f->nk + 1, sizeof *f->k);
  if (!f->k) r->bad = 1;
  for (int i = 0; i < f->nk && !r->bad; i++) {
    unsigned tag = byte(r);
    if (tag == 3 || tag == 19) /* integer, float */
      skip(r, 8);
    else if (tag == 4 || tag == 20) /* short, long string */
      f->k[i].str = string(r);
  }
  int nup = count(r, 3);
  skip(r, (size_t)nup * 3);
  f->nprotos = count(r, 1);
  f->protos = calloc((size_t)f->nprotos + 1, sizeof *f->protos);
  if (!f->protos) r->bad = 1;
  for (int i = 0; i < f->nprotos && !r->bad; i++) read_function(r, &f->protos[i]);
  /* debug: relative line deltas, absolute lines where a delta does not fit (-128) */
  int nline = count(r, 1);
  const unsigned char *delta = r->p;
  skip(r, (size_t)nline);
  int nabs = count(r, 2);
  int *abspc = calloc((size_t)nabs + 1, sizeof *abspc), *absline = calloc((size_t)nabs + 1, sizeof *absline);
  for (int i = 0; i < nabs && abspc && absline && !r->bad; i++) {
    abspc[i] = (int)varint(r);
    absline[i] = (int)varint(r);
  }
  f->line = calloc((size_t)f->ncode + 1, sizeof *f->line);
  if (!f->line || !abspc || !absline) r->bad = 1;
  for (int pc = 0, line = f->linedefined, a = 0; pc < f->ncode && !r->bad; pc++) {
    if (nline != f->ncode) {
      f->line[pc] = -1; /* stripped */
      continue;
    }
    if ((signed char)delta[pc] == -128) {
      while (a < nabs && abspc[a] < pc) a++;
      line = a < nabs && abspc[a] == pc ? absline[a] : line;
    } else {
      line += (signed char)delta[pc];
    }
    f->line[pc] = line;
  }
  free(abspc);
  free(absline);
  f->nlocals = count(r, 2);
  f->locals = calloc((size_t)f->nlocals + 1, sizeof *f->locals);
  if (!f->locals) r->bad = 1;
  for (int i = 0; i < f->nlocals && !r->bad; i++) {
    f->locals[i].name = string(r);
    f->locals[i].startpc = (int)varint(r);
    f->locals[i].endpc = (int)varint(r);
  }
  int nupnames = count(r, 1);
  for (int i = 0; i < nupnames && !r->bad; i++) free(string(r));
}

static void free_function(dfunc *f) {
  for (int i = 0; i < f->nk && f->k; i++) free(f->k[i].str);
  for (int i = 0; i < f->nlocals && f->locals; i++) free(f->locals[i].name);
  for (int i = 0; i < f->nprotos && f->protos; i++) free_function(&f->protos[i]);
  free(f->code);
  free(f->line);
  free(f->k);
  free(f->locals);
  free(f->protos);
}

/* ---- where the breaker can switch ---- */

static void raise_mark(char *mark, int ncode, int pc, int m) {
  if (pc >= 0 && pc < ncode && mark[pc] < m) mark[pc] = (char)m;
}

/* mark[pc]: MARK_* for "a switch can come just before instruction pc" (see the top). */
static void find_marks(const dfunc *f, char *mark) {
  memset(mark, MARK_NONE, (size_t)f->ncode);
  raise_mark(mark, f->ncode, f->is_vararg ? 1 : 0, MARK_ALWAYS); /* the function's entry */
  for (int pc = 0; pc < f->ncode; pc++) {
    uint32_t i = f->code[pc];
    int op = OP(i);
    if (op >= NOPS) continue;
    int m = ops[op].reload;
    const char *name = ops[op].name;
    if (strcmp(name, "JMP") == 0) {
      raise_mark(mark, f->ncode, pc + 1 + ARG_SJ(i), MARK_ALWAYS);
    } else if (strcmp(name, "FORLOOP") == 0 || strcmp(name, "TFORCALL") == 0) {
      int loop = strcmp(name, "FORLOOP") == 0 ? pc : pc + 1; /* TFORCALL runs its TFORLOOP with no fetch between */
      raise_mark(mark, f->ncode, loop + 1, MARK_ALWAYS);
      if (loop < f->ncode) raise_mark(mark, f->ncode, loop + 1 - ARG_BX(f->code[loop]), MARK_ALWAYS);
    } else if (m) {
      raise_mark(mark, f->ncode, pc + 1 + ops[op].skip, m);
    }
  }
}

/* The name its parent gives the closure made at pc: a local, or a global or field set right after. */
static void name_closures(dfunc *f) {
  for (int pc = 0; pc < f->ncode; pc++) {
    uint32_t i = f->code[pc];
    if (strcmp(ops[OP(i) < NOPS ? OP(i) : 0].name, "CLOSURE") || ARG_BX(i) >= f->nprotos) continue;
    dfunc *p = &f->protos[ARG_BX(i)];
    int reg = ARG_A(i), nth = 0;
    for (int l = 0; l < f->nlocals; l++) { /* the reg-th local alive after the closure is made */
      const dlocal *v = &f->locals[l];
      if (v->startpc <= pc + 1 && pc + 1 < v->endpc && nth++ == reg && v->name)
        snprintf(p->name, sizeof p->name, "function '%s'", v->name);
    }
    uint32_t n = pc + 1 < f->ncode ? f->code[pc + 1] : 0;
    const char *nn = ops[OP(n) < NOPS ? OP(n) : 0].name;
    int key = ARG_B(n);
    if (!p->name[0] && (!strcmp(nn, "SETTABUP") || !strcmp(nn, "SETFIELD")) && ARG_K(n) && ARG_C(n) == reg &&
        key < f->nk && f->k[key].str)
      snprintf(p->name, sizeof p->name, "function '%s'", f->k[key].str);
    if (!p->name[0]) snprintf(p->name, sizeof p->name, "function");
    name_closures(p);
  }
}

/* ---- printing ---- */

static const char *constant(const dfunc *f, int k) { return k >= 0 && k < f->nk && f->k[k].str ? f->k[k].str : NULL; }

/* Operands as luac -l prints them, and a comment: a jump's target, a global's or field's name. */
static void operands(const dfunc *f, int pc, char *buf, size_t len, char *note, size_t nlen) {
  uint32_t i = f->code[pc];
  int op = OP(i);
  const char *name = ops[op].name;
  note[0] = '\0';
  switch (ops[op].fmt) {
  case F_ABC: { /* some take a signed B or C (lopcodes.h's sB, sC) */
    int sb = !strcmp(name, "EQI") || !strcmp(name, "LTI") || !strcmp(name, "LEI") || !strcmp(name, "GTI") ||
        !strcmp(name, "GEI") || !strcmp(name, "MMBINI");
    int sc = !strcmp(name, "ADDI") || !strcmp(name, "SHRI") || !strcmp(name, "SHLI");
    snprintf(buf, len, "%d %d %d%s", ARG_A(i), ARG_B(i) - (sb ? 127 : 0), ARG_C(i) - (sc ? 127 : 0),
             ARG_K(i) ? "k" : "");
    break;
  }
  case F_ABX: snprintf(buf, len, "%d %d", ARG_A(i), ARG_BX(i)); break;
  case F_ASBX: snprintf(buf, len, "%d %d", ARG_A(i), ARG_SBX(i)); break;
  case F_AX: snprintf(buf, len, "%d", ARG_AX(i)); break;
  default: snprintf(buf, len, "%d", ARG_SJ(i)); break;
  }
  const char *s = NULL;
  if (!strcmp(name, "GETTABUP") || !strcmp(name, "GETFIELD")) s = constant(f, ARG_C(i));
  if (!strcmp(name, "SETTABUP") || !strcmp(name, "SETFIELD")) s = constant(f, ARG_B(i));
  if (!strcmp(name, "LOADK")) s = constant(f, ARG_BX(i));
  if (!strcmp(name, "SELF") && ARG_K(i)) s = constant(f, ARG_C(i));
  if (s) snprintf(note, nlen, "\"%.40s\"", s);
  if (!strcmp(name, "JMP")) snprintf(note, nlen, "to %d", pc + 2 + ARG_SJ(i));
  if (!strcmp(name, "FORLOOP") || !strcmp(name, "TFORLOOP")) snprintf(note, nlen, "to %d", pc + 2 - ARG_BX(i));
  if (!strcmp(name, "FORPREP")) snprintf(note, nlen, "exit to %d", pc + ARG_BX(i) + 3);
  if (!strcmp(name, "TFORPREP")) snprintf(note, nlen, "to %d", pc + ARG_BX(i) + 2);
}

typedef struct source {
  char **lines;
  int n;
  size_t cap;
} source;

static void read_source(const char *path, source *s) {
  memset(s, 0, sizeof *s);
  FILE *f = path && strcmp(path, "-") ? fopen(path, "r") : NULL;
  if (!f) return;
  char buf[4096];
  int fresh = 1;
  while (fgets(buf, sizeof buf, f)) {
    size_t n = strlen(buf);
    int whole = n && buf[n - 1] == '\n';
    if (whole) buf[--n] = '\0';
    if (fresh) VEC_PUSH(s->lines, s->n, s->cap, strdup(buf)); /* a longer line: its first 4095 bytes */
    fresh = whole;
  }
  fclose(f);
}

static const char *source_line(const source *s, int line) {
  if (line < 1 || line > s->n || !s->lines[line - 1]) return NULL;
  const char *t = s->lines[line - 1];
  while (*t == ' ' || *t == '\t') t++;
  return t;
}

static void print_function(FILE *out, const dfunc *f, const char *script, const source *src, int top) {
  char *mark = malloc((size_t)f->ncode + 1);
  if (!mark) return;
  find_marks(f, mark);
  if (top)
    fprintf(out, "\nmain chunk <%s> (%d instructions)\n", script, f->ncode);
  else
    fprintf(out, "\n%s <%s:%d,%d> (%d instructions)\n", f->name, script, f->linedefined, f->lastlinedefined, f->ncode);
  int last = -2;
  for (int pc = 0; pc < f->ncode; pc++) {
    int op = OP(f->code[pc]);
    if (op >= NOPS) {
      fprintf(out, "  %4d  ?  (unknown opcode %d)\n", pc + 1, op);
      continue;
    }
    if (f->line[pc] != last) {
      const char *text = source_line(src, f->line[pc]);
      if (f->line[pc] >= 0) fprintf(out, "  -- line %d%s%.100s\n", f->line[pc], text ? ": " : "", text ? text : "");
      last = f->line[pc];
    }
    char args[48], note[64];
    operands(f, pc, args, sizeof args, note, sizeof note);
    const char *m = mark[pc] == MARK_ALWAYS ? ">>" : mark[pc] == MARK_SLOW ? " ~" : "  ";
    if (note[0])
      fprintf(out, "  %s %4d  [%d]  %-10s %-12s; %s\n", m, pc + 1, f->line[pc], ops[op].name, args, note);
    else
      fprintf(out, "  %s %4d  [%d]  %-10s %s\n", m, pc + 1, f->line[pc], ops[op].name, args);
  }
  free(mark);
  for (int i = 0; i < f->nprotos; i++) print_function(out, &f->protos[i], script, src, 0);
}

typedef struct chunk {
  unsigned char *data;
  size_t len, cap;
} chunk;

static int writer(lua_State *L, const void *p, size_t sz, void *ud) {
  (void)L;
  chunk *c = ud;
  if (VEC_RESERVE(c->data, c->len, c->cap, sz, 4096) != 0) return 1;
  memcpy(c->data + c->len, p, sz);
  c->len += sz;
  return 0;
}

static void print_legend(FILE *out, const cli_options *o) {
  const gil_policy_info *pol = gil_policy_find(o->policy);
  int anywhere = o->check_interval > 0 || (pol && pol->default_check_interval > 0);
  fprintf(out,
          "gilvm dis: where the GIL can change hands in %s (Lua 5.4 bytecode)\n"
          "  >>  a check point: a pending drop request is honoured just before this instruction\n"
          "   ~  a check point only on a slow path: a metamethod or a missing table key, a\n"
          "      comparison or arithmetic on non-numbers, a garbage-collection step\n"
          "      (none) no switch between the instruction above and this one\n",
          o->script);
  if (anywhere)
    fprintf(out,
            "  -g %s: its check interval's count hook runs every N instructions, so a switch\n"
            "  can come before ANY instruction here, marked or not (x = x + 1 can lose updates)\n",
            o->policy);
  if (breaker_polling())
    fprintf(out, "  this gilvm polls for requests (a ThreadSanitizer build): a switch can come anywhere\n");
  fprintf(out, "  a script that sets a count or line hook (debug.sethook) can also be switched anywhere\n");
}

int dis_main(const cli_options *o) {
  lua_State *L = luaL_newstate();
  if (!L) {
    fprintf(stderr, "gilvm: out of memory\n");
    return EXIT_FAILURE;
  }
  const char *file = strcmp(o->script, "-") == 0 ? NULL : o->script;
  if (luaL_loadfilex(L, file, o->binary ? "bt" : "t") != LUA_OK) {
    fprintf(stderr, "gilvm: %s\n", lua_tostring(L, -1));
    lua_close(L);
    return EXIT_LOAD;
  }
  chunk c = { 0 };
  int dumped = lua_dump(L, writer, &c, 0) == 0;
  const unsigned char *p = c.data;
  size_t len = dumped ? c.len : 0;
  /* header: signature, version, format, LUAC_DATA, three sizes, LUAC_INT, LUAC_NUM, main's upvalues */
  reader r = { p, p + len, 0 };
  skip(&r, 4 + 1 + 1 + 6 + 3 + 8 + 8 + 1);
  dfunc main_f;
  memset(&main_f, 0, sizeof main_f);
  if (len < 5 || memcmp(p, LUA_SIGNATURE "\x54", 5) != 0) r.bad = 1;
  if (!r.bad) read_function(&r, &main_f);
  int rc = 0;
  if (r.bad) {
    fprintf(stderr, "gilvm: cannot read the bytecode of %s\n", o->script);
    rc = EXIT_LOAD;
  } else {
    source src;
    read_source(o->binary ? NULL : file, &src);
    name_closures(&main_f);
    print_legend(stdout, o);
    print_function(stdout, &main_f, o->script, &src, 1);
    for (int i = 0; i < src.n; i++) free(src.lines[i]);
    free(src.lines);
  }
  free_function(&main_f);
  free(c.data);
  lua_close(L);
  return rc;
}
