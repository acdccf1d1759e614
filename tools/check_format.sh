#!/usr/bin/env bash
# check_format.sh — every C file in base/, gil/, vm/, tests/ and bench/ is in the
# house style (.clang-format), as Debian 12's clang-format 14 formats it.
# The version is pinned: other versions format some constructs differently.
# Prints a Criterion-style Synthesis line (the whole tree is one test), which
# tools/run_tests.sh counts. To reformat: make format (tools/check_format.sh --fix)
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 2
fmt=clang-format-14
command -v "$fmt" >/dev/null || { echo "check_format: $fmt not found (tools/setup.sh installs it)" >&2; exit 2; }
mapfile -t files < <(find base gil vm tests bench -name '*.[ch]' -not -path '*/data/*' | sort)
if [ "${1:-}" = --fix ]; then
  "$fmt" -i "${files[@]}"
  exit 0
fi
passed=0 failed=0
for f in "${files[@]}"; do
  if "$fmt" --dry-run --Werror "$f" >/dev/null 2>&1; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "[FAIL] $f is not in the house style; first differences:"
    "$fmt" "$f" | diff -u "$f" - | head -20
  fi
done
echo "check_format: $passed files in the house style, $failed not"
ok=$((failed == 0))
echo "[====] Synthesis: Tested: 1 | Passing: $ok | Failing: $((1 - ok)) | Crashing: 0"
[ $failed -eq 0 ]
