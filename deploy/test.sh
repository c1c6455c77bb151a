#!/usr/bin/env bash
# The README's test command (and CI's, via .ci/run): installs what is
# missing, configures, builds, and runs every CTest label but `long` (unit,
# asan, cli, gpu, ...; gpu skips cleanly without a GPU, the partition test
# without root). The `long` tests (the 60-event cluster chaos run, the
# 1000-session placement balance) run with `ctest -L long`; their results
# go in the notes. Prints the time of each stage.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BRIGADE_BUILD_DIR:-build}

stage() { printf '\n== %s\n' "$1"; stage_start=$(date +%s); }
stage_end() { local t=$(( $(date +%s) - stage_start )); timings+=("$1: ${t}s"); }
timings=()

stage "setup (Debian packages)"; deploy/setup.sh; stage_end setup
stage "configure and build"; deploy/build.sh; stage_end build
stage "tests (every label but long)"
set +e
ctest --test-dir "$build" --output-on-failure -j2 --timeout 600 -LE long
rc=$?
set -e
stage_end tests

printf '\n== stage times\n'; printf '  %s\n' "${timings[@]}"
exit $rc
