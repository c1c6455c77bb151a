#!/usr/bin/env bash
# Configures (once) and builds brigade with Ninja and ccache.
#   deploy/build.sh [TARGET...]      default: everything
# BRIGADE_BUILD_DIR (default ./build) and BRIGADE_CMAKE_ARGS are honoured.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BRIGADE_BUILD_DIR:-build}
if [ ! -f "$build/build.ninja" ]; then
  # shellcheck disable=SC2086
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBRIGADE_REQUIRE_SERVER_DEPS=ON \
    ${BRIGADE_CMAKE_ARGS:-} >/dev/null
fi
cmake --build "$build" ${1:+--target "$@"}
