#!/usr/bin/env bash
# Installs the Debian packages gilvm needs, only those that are missing.
# Used by `make demo` and `make test`; safe to run again.
set -euo pipefail
need=(liblua5.4-dev lua5.4 libjansson-dev libsodium-dev libcriterion-dev meson ninja-build pkg-config gcc clang libclang-rt-14-dev python3 help2man man-db clang-format-14)
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "setup: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
