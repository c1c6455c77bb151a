#!/usr/bin/env bash
# The official OpenAI SDK for Node (openai, pinned), installed once into
# ~/.cache/brigade/npm-api (or BRIGADE_NPM_CACHE); prints its node_modules
# folder. See tests/npm_pinned.sh.
#
# usage: npm_install.sh          (prints DIR/node_modules)
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/../npm_pinned.sh" api openai 5.23.2
