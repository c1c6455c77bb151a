#!/usr/bin/env bash
# Installs the browser tests' npm packages (playwright-core, pinned: it drives
# Debian's chromium, no browser download) once into a cache outside the
# clone, and prints its node_modules folder on standard output.
#
#   BRIGADE_NPM_CACHE  the cache folder (default ~/.cache/brigade/npm-dashboard)
#
# Idempotent: when the pinned version is already there it does nothing (and
# needs no network). The install goes into a temporary folder that is renamed
# into place, so an interrupted install never leaves a half cache behind.
set -euo pipefail

PLAYWRIGHT_VERSION=1.65.1
CACHE="${BRIGADE_NPM_CACHE:-$HOME/.cache/brigade/npm-dashboard}"
DEST="$CACHE/playwright-core-$PLAYWRIGHT_VERSION"

installed_version() {
  local pkg="$DEST/node_modules/playwright-core/package.json"
  [[ -f "$pkg" ]] || return 1
  node -e 'process.stdout.write(require(process.argv[1]).version)' "$pkg"
}

if [[ "$(installed_version 2>/dev/null || true)" == "$PLAYWRIGHT_VERSION" ]]; then
  echo "$DEST/node_modules"
  exit 0
fi

command -v node >/dev/null || { echo "npm_install.sh: node is not installed (apt-get install nodejs npm)" >&2; exit 1; }
command -v npm >/dev/null || { echo "npm_install.sh: npm is not installed (apt-get install npm)" >&2; exit 1; }

mkdir -p "$CACHE"
TMP="$(mktemp -d "$CACHE/.install.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
printf '{"name":"brigade-dashboard-tests","private":true}\n' >"$TMP/package.json"
if ! (cd "$TMP" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm i -E --no-audit --no-fund --loglevel=error \
      "playwright-core@$PLAYWRIGHT_VERSION" >&2); then
  echo "npm_install.sh: could not install playwright-core@$PLAYWRIGHT_VERSION into $CACHE (is the npm registry reachable?)" >&2
  exit 1
fi
got="$(node -e 'process.stdout.write(require(process.argv[1]).version)' "$TMP/node_modules/playwright-core/package.json")"
if [[ "$got" != "$PLAYWRIGHT_VERSION" ]]; then
  echo "npm_install.sh: npm installed playwright-core $got, not $PLAYWRIGHT_VERSION" >&2
  exit 1
fi
rm -rf "$DEST.old"
if [[ -e "$DEST" ]]; then mv "$DEST" "$DEST.old"; fi
mv "$TMP" "$DEST"
rm -rf "$DEST.old"
trap - EXIT
echo "$DEST/node_modules"
