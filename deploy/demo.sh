#!/usr/bin/env bash
# The README's main command: installs what is missing, builds `brigade`, then
# runs `brigade demo`: a node in this process on the built-in model (a
# synthetic 52M-parameter Llama, made once into ~/.cache/brigade), 32
# simulated users chatting with it over BASP for 15 seconds, with a live
# status line and a summary. Extra arguments go to `brigade demo`
# (e.g. --seconds 30 --users 64).
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/setup.sh
deploy/build.sh brigade
exec "${BRIGADE_BUILD_DIR:-build}/app/brigade" demo "$@"
