#!/usr/bin/env python3
"""check_layers.py — every #include "..." in base/, gil/ and vm/ goes down the layers
(ARCHITECTURE.md), and no module includes its way back to itself.

    vm/cli -> vm/observe -> vm/lua -> vm/core -> vm/share -> gil -> base

A file may include headers of its own layer and of the layers below it. Include
directories make the build refuse most wrong-way includes; this catches the rest
(`#include "../core/x.h"`, `#include "vm/core/x.h"`). A module is a .c and its .h;
a circle between modules, even within one layer, is an error.
(A header with no .c of its own is no module; see has_source. base/vec.h and
base/check.h are such headers: in the lowest layer, every layer may use them.)

Usage: check_layers.py ROOT     check the tree at ROOT
       check_layers.py --self   also check that it catches a wrong-way include and a circle
Prints a Criterion-style Synthesis line, which tools/run_tests.sh counts.
"""
import os
import re
import sys
import tempfile

LAYERS = ['base', 'gil', 'vm/share', 'vm/core', 'vm/lua', 'vm/observe', 'vm/cli']  # bottom first
GENERATED = {'pool_lua.h': 'vm/lua/pool.lua'}  # made by the build, from the file named
# Headers a layer may not use although they are below it
FORBIDDEN = {
  ('vm/observe', 'vm/core/runtime.h'): 'the instruments read a finished run (snapshot.h), not the runtime',
}
INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.M)


def layer_of(rel):
  for i, layer in reversed(list(enumerate(LAYERS))):
    if rel == layer or rel.startswith(layer + '/'):
      return i
  return None


def resolve(root, rel, name):
  """Where the compiler finds `name` included from rel, as a path relative to root."""
  here = os.path.dirname(rel)
  for base in [here] + LAYERS + ['']:
    cand = os.path.normpath(os.path.join(base, name))
    if not cand.startswith('..') and os.path.isfile(os.path.join(root, cand)):
      return cand
  return GENERATED.get(name)


def module(rel):
  return os.path.splitext(rel)[0]


def has_source(root, rel):
  """A header with no .c of its own (gil_policy.h, exits.h) only declares: including
  it makes no dependency between modules, so it cannot close a circle."""
  return os.path.isfile(os.path.join(root, module(rel) + '.c'))


def check(root):
  """Returns (layer errors, circle errors)."""
  errors, edges = [], {}
  for layer in LAYERS:
    for dirpath, _, names in os.walk(os.path.join(root, layer)):
      for n in sorted(names):
        if not n.endswith(('.c', '.h')):
          continue
        rel = os.path.relpath(os.path.join(dirpath, n), root)
        with open(os.path.join(root, rel), encoding='utf-8') as f:
          text = f.read()
        for name in INCLUDE.findall(text):
          target = resolve(root, rel, name)
          if target is None:
            errors.append(f'{rel}: #include "{name}": not found in any layer')
            continue
          lt, lf = layer_of(target), layer_of(rel)
          if lt is None:
            errors.append(f'{rel}: #include "{name}" is {target}, outside the layers')
          elif lt > lf:
            errors.append(f'{rel}: #include "{name}": {LAYERS[lf]} may not use {LAYERS[lt]} (above it)')
          for (layer, header), why in FORBIDDEN.items():
            if LAYERS[lf] == layer and target == header:
              errors.append(f'{rel}: #include "{name}": {why}')
          if module(target) != module(rel) and has_source(root, target):
            edges.setdefault(module(rel), set()).add(module(target))
  return errors, circles(edges)


def circles(edges):
  """One message per circle found by a depth-first walk of the module graph."""
  found, state, stack = [], {}, []

  def walk(m):
    state[m] = 'open'
    stack.append(m)
    for t in sorted(edges.get(m, ())):
      if state.get(t) == 'open':
        found.append('circle: ' + ' -> '.join(stack[stack.index(t):] + [t]))
      elif t not in state:
        walk(t)
    stack.pop()
    state[m] = 'done'

  for m in sorted(edges):
    if m not in state:
      walk(m)
  return found


def self_check():
  """A tree with a wrong-way include and a circle: both must be reported."""
  with tempfile.TemporaryDirectory() as root:
    files = {
      'vm/core/a.h': '', 'vm/core/a.c': '#include "a.h"\n#include "b.h"\n',
      'vm/core/b.h': '', 'vm/core/b.c': '#include "b.h"\n#include "a.h"\n',
      'vm/share/s.c': '#include "../core/a.h"\n',
      'vm/core/runtime.h': '', 'vm/observe/r.c': '#include "runtime.h"\n',
    }
    for rel, text in files.items():
      os.makedirs(os.path.join(root, os.path.dirname(rel)), exist_ok=True)
      with open(os.path.join(root, rel), 'w') as f:
        f.write(text)
    errors, circ = check(root)
    wrong_way = any('vm/share/s.c' in e and 'may not use vm/core' in e for e in errors)
    runtime = any('vm/observe/r.c' in e and 'snapshot.h' in e for e in errors)
    return [('self: a wrong-way include is caught', wrong_way),
            ('self: an instrument that reads the runtime is caught', runtime),
            ('self: a circle is caught', any('vm/core/a' in c and 'vm/core/b' in c for c in circ))]


def main():
  args = sys.argv[1:]
  root = next((a for a in args if not a.startswith('--')), '.')
  errors, circ = check(root)
  results = [('includes go down the layers', not errors), ('no circles', not circ)]
  for e in errors + circ:
    print(e)
  if '--self' in args:
    results += self_check()
  for name, ok in results:
    print(f'[{"PASS" if ok else "FAIL"}] layers::{name}')
  p = sum(ok for _, ok in results)
  print(f'[====] Synthesis: Tested: {len(results)} | Passing: {p} | Failing: {len(results) - p} | Crashing: 0')
  return 0 if p == len(results) else 1


if __name__ == '__main__':
  sys.exit(main())
