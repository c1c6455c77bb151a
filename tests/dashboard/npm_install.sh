#!/usr/bin/env bash
# The browser tests' driver, npm playwright-core (pinned; it drives Debian's
# chromium, no browser download), installed once into
# ~/.cache/brigade/npm-dashboard (or BRIGADE_NPM_CACHE); prints its
# node_modules folder. See tests/npm_pinned.sh.
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/../npm_pinned.sh" dashboard playwright-core 1.65.1
