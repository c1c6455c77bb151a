#!/usr/bin/env bash
# Configures and builds brigade with Ninja and ccache (the configure runs
# every time, so changed BRIGADE_CMAKE_ARGS take effect; it is quick).
#   deploy/build.sh [TARGET...]      default: everything
# BRIGADE_BUILD_DIR (default ./build) and BRIGADE_CMAKE_ARGS are honoured.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BRIGADE_BUILD_DIR:-build}
# shellcheck disable=SC2086
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBRIGADE_REQUIRE_SERVER_DEPS=ON \
  ${BRIGADE_CMAKE_ARGS:-} >/dev/null
cmake --build "$build" ${1:+--target "$@"}
