#!/usr/bin/env bash
# conformance.sh — the official Lua 5.4.4 test suite under gilvm, six ways.
#
#   tools/conformance.sh SUITE_DIR      (make conformance [LUA_TESTS=DIR])
#
# Each way runs every file all.lua runs, one gilvm process per file, and
# then all.lua itself (which must end in "final OK"), in portable and soft
# mode (_port=true _soft=true), as the Lua authors run it:
#   direct        gilvm file.lua
#   contended     -s 50us, with a thread computing beside the main chunk
#                 (conformance/spin.lua), so forced switches land mid-test
#   legacy        the same under -g legacy (a count hook every 100 instructions)
#   worker-gil    inside a gil.spawn worker (conformance/in_worker.lua), -m gil
#   worker-nogil  the same, -m nogil
#   worker-fork   the same, -m fork
# It works on a copy of the suite (all.lua writes time.txt; the original may
# be read-only), prints OK/FAIL per file and way, the output of each failure
# (logs kept in a directory it names), and a total; exits 1 on any failure.
# GILVM (default build/gilvm) is the binary; CONFORMANCE_TIMEOUT (default
# 120) bounds each run in seconds; CONFORMANCE_WAYS picks ways by name.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
suite=${1:-}
if [ -z "$suite" ] || [ ! -f "$suite/all.lua" ]; then
  echo "conformance: no Lua test suite at '${suite}': give its directory," \
       "e.g. make conformance LUA_TESTS=../shared/lua-5.4.4-tests" >&2
  exit 2
fi
gilvm=$(realpath "${GILVM:-$root/build/gilvm}")
[ -x "$gilvm" ] || { echo "conformance: no gilvm binary at $gilvm (make all)" >&2; exit 2; }
limit=${CONFORMANCE_TIMEOUT:-120}
ways=(${CONFORMANCE_WAYS:-direct contended legacy worker-gil worker-nogil worker-fork})
# what all.lua runs in soft mode, in its order (big.lua is skipped by _soft)
files=(main gc db calls strings literals tpack attrib gengc locals constructs code cstack
       nextvar pm utf8 api events vararg closure coroutine goto errors math sort bitwise
       verybig files all)

work=$(mktemp -d "${TMPDIR:-/tmp}/gilvm-conformance.XXXXXX")
cp -R "$suite/." "$work/" && chmod -R u+w "$work"
logs=$work/logs
mkdir -p "$logs"
pre="_port=true _soft=true"
spin=$(cat "$root/tools/conformance/spin.lua")
worker=$root/tools/conformance/in_worker.lua

run() {  # way file log: run file.lua the way named, output to log
  local way=$1 f=$2.lua
  local -a cmd
  case $way in
    direct)       cmd=("$gilvm" -q -e "$pre" "$f") ;;
    contended)    cmd=("$gilvm" -q -s 50us -e "$pre" -e "$spin" "$f") ;;
    legacy)       cmd=("$gilvm" -q -g legacy -e "$pre" -e "$spin" "$f") ;;
    worker-gil)   cmd=("$gilvm" -q -m gil -e "$pre" "$worker" "$f") ;;
    worker-nogil) cmd=("$gilvm" -q -m nogil -e "$pre" "$worker" "$f") ;;
    worker-fork)  cmd=("$gilvm" -q -m fork -e "$pre" "$worker" "$f") ;;
    *) echo "unknown way $way" >"$3"; return 2 ;;
  esac
  (cd "$work" && timeout -k 5 "$limit" "${cmd[@]}" </dev/null >"$3" 2>&1)
  local rc=$?
  [ $rc -eq 124 ] && echo "conformance: timed out after ${limit}s" >>"$3"
  [ $rc -eq 0 ] || return 1
  [ "$2" != all ] || grep -q "^final OK" "$3"
}

passed=0 failed=0
declare -a failures=()
printf '%-16s' file; printf ' %-12s' "${ways[@]}"; echo
for f in "${files[@]}"; do
  [ -f "$work/$f.lua" ] || { echo "conformance: $suite has no $f.lua" >&2; failed=$((failed + 1)); continue; }
  printf '%-16s' "$f.lua"
  for way in "${ways[@]}"; do
    log=$logs/$way-$f.log
    if run "$way" "$f" "$log"; then
      printf ' %-12s' OK; passed=$((passed + 1))
    else
      printf ' %-12s' FAIL; failed=$((failed + 1)); failures+=("$log")
    fi
  done
  echo
done
for log in "${failures[@]}"; do
  echo "---- FAIL $(basename "$log" .log) (last lines of $log)"
  tail -n 15 "$log"
done
echo "conformance: $passed passed, $failed failed"
if [ $failed -eq 0 ]; then rm -rf "$work"; else echo "conformance: logs kept in $logs"; exit 1; fi
