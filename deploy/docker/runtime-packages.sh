#!/usr/bin/env bash
# Prints, one a line, the Debian packages that hold the shared libraries a
# built binary loads (what an image's final stage must install to run it):
# ldd's paths, each resolved through dpkg -S. The images' build stage runs
# this on the binary it built; the deploy tests run it on CI's build.
# Exit 1, naming the library, when one is not found or no package holds it.
#   usage: runtime-packages.sh [--skip PREFIX] BINARY
# --skip: leave out libraries under PREFIX (a CUDA toolkit installed outside
# Debian's packages, as on CI's machines; the CUDA image takes its CUDA from
# NVIDIA's Debian repository, where dpkg knows it).
set -euo pipefail
skip=""
if [ "${1:-}" = "--skip" ]; then skip=$2; shift 2; fi
bin=${1:?usage: runtime-packages.sh [--skip PREFIX] BINARY}
[ -x "$bin" ] || { echo "runtime-packages.sh: $bin is not an executable" >&2; exit 1; }
out=$(ldd "$bin")
if grep -q "not found" <<<"$out"; then
  echo "runtime-packages.sh: $bin needs libraries this machine lacks:" >&2
  grep "not found" <<<"$out" >&2
  exit 1
fi
pkgs=()
while read -r lib; do
  if [ -n "$skip" ] && [[ "$(readlink -f "$lib")" == "$skip"* || "$lib" == "$skip"* ]]; then continue; fi
  # Debian 12 is merged-/usr: dpkg may know a library under /lib or /usr/lib.
  pkg=""
  for path in "$lib" "$(readlink -f "$lib")" "${lib#/usr}" "/usr$lib"; do
    pkg=$(dpkg -S "$path" 2>/dev/null | head -1 | cut -d: -f1) && [ -n "$pkg" ] && break
  done
  [ -n "$pkg" ] || { echo "runtime-packages.sh: no Debian package holds $lib" >&2; exit 1; }
  pkgs+=("$pkg")
done < <(awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' <<<"$out" | grep -v '^/lib64/ld-linux\|ld-linux-x86-64' || true)
printf '%s\n' "${pkgs[@]}" | sort -u
