#!/usr/bin/env bash
# Builds and runs the test suite in each build directory given (plain,
# ASan+UBSan, TSan), then prints one total line: "N passed, N failed".
# Counts are Criterion's per-test counts, read from each run's Synthesis line
# (tools/check_layers.py prints one of the same form).
# A directory named build-fuzz instead builds the marshaller's libFuzzer
# target and fuzzes the decoder for FUZZ_SECONDS (default 20): one test.
set -uo pipefail
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:die_after_fork=0
export ASAN_OPTIONS=detect_leaks=1
passed=0 failed=0 status=0
failures=""  # one line per failed test or suite, repeated just before the total
fuzz() {
  local dir=$1 corpus
  ninja -C "$dir" tests/fuzz_marshal >"$dir/ninja.log" 2>&1 || { cat "$dir/ninja.log"; return 1; }
  corpus=$(mktemp -d)  # libFuzzer adds what it finds to its first directory: not the seeds
  "$dir/tests/fuzz_marshal" -max_total_time="${FUZZ_SECONDS:-20}" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$dir/" "$corpus" tests/data/marshal_corpus >"$dir/fuzz.log" 2>&1
  local rc=$?
  rm -rf "$corpus"
  grep -E '^#[0-9]+ *DONE|Done [0-9]+ runs' "$dir/fuzz.log" | tail -1 | sed 's/^/  fuzz: /'
  [ $rc -eq 0 ] || tail -40 "$dir/fuzz.log"
  return $rc
}

for dir in "$@"; do
  echo "== $dir"
  if [ "$(basename "$dir")" = build-fuzz ]; then
    if fuzz "$dir"; then passed=$((passed + 1)); else
      failed=$((failed + 1)); status=1; failures+="  $dir: fuzz_marshal"$'\n'
    fi
    continue
  fi
  if ! ninja -C "$dir" >"$dir/ninja.log" 2>&1; then
    cat "$dir/ninja.log"
    echo "build failed in $dir"
    failed=$((failed + 1)); status=1; failures+="  $dir: build failed"$'\n'; continue
  fi
  log="$dir/test-output.log"
  meson test -C "$dir" --print-errorlogs -v >"$log" 2>&1
  rc=$?
  grep -E '^ *[0-9]+/[0-9]+ ' "$log" | sed 's/^/  /'
  read -r p f < <(awk '/Synthesis: Tested:/ {
        for (i = 1; i <= NF; i++) { if ($i == "Passing:") p += $(i+1); if ($i == "Failing:") f += $(i+1); if ($i == "Crashing:") f += $(i+1) } }
      END { print p + 0, f + 0 }' "$log")
  passed=$((passed + p)); failed=$((failed + f))
  if [ $rc -ne 0 ]; then
    status=1
    [ "$f" -eq 0 ] && failed=$((failed + 1))  # a suite that died before its Synthesis line
    # What failed, and why: Criterion's [FAIL] lines and the assertion
    # messages before them (a sanitizer report in gilvm shows in the failed
    # test's message), and meson's suites that did not pass. Not every
    # sanitizer line: passing suites print expected ones (test_check's).
    grep -E '^\[(----|FAIL)\]|^ *[0-9]+/[0-9]+ .* (FAIL|TIMEOUT|ERROR)' "$log" | head -80
    failures+=$(grep -E '^\[FAIL\]|^ *[0-9]+/[0-9]+ .* (FAIL|TIMEOUT|ERROR)' "$log" | sed "s|^|  $dir: |")$'\n'
    echo "  (full log: $log)"
  fi
done
[ -n "$failures" ] && printf 'failed:\n%s' "$failures"
echo "$passed passed, $failed failed"
exit $status
