#!/usr/bin/env bash
# CTest entry of the OpenAI SDK test (label `api`): installs the pinned SDK
# once into the cache outside the clone (npm_install.sh), then runs
# sdk_test.mjs against BRIGADE.
#
# usage: run_sdk.sh BRIGADE
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BRIGADE="${1:?usage: run_sdk.sh BRIGADE}"
command -v node >/dev/null || { echo "run_sdk.sh: node is not installed (deploy/setup.sh installs it)" >&2; exit 1; }
NODE_MODULES="$("$HERE/npm_install.sh")"
BRIGADE_NODE_MODULES="$NODE_MODULES" exec node "$HERE/sdk_test.mjs" "$BRIGADE"
