#!/usr/bin/env bash
# Installs the official OpenAI SDK for Node (openai, pinned) once into a cache
# outside the clone, and prints its node_modules folder on standard output.
#
#   BRIGADE_NPM_CACHE  the cache folder (default ~/.cache/brigade/npm-api)
#
# Idempotent: when the pinned version is already there it does nothing (and
# needs no network). The install goes into a temporary folder that is renamed
# into place, so an interrupted install never leaves a half cache behind.
#
# usage: npm_install.sh          (prints DIR/node_modules)
set -euo pipefail

OPENAI_VERSION=5.23.2
CACHE="${BRIGADE_NPM_CACHE:-$HOME/.cache/brigade/npm-api}"
DEST="$CACHE/openai-$OPENAI_VERSION"

installed_version() {
  local pkg="$DEST/node_modules/openai/package.json"
  [[ -f "$pkg" ]] || return 1
  node -e 'process.stdout.write(require(process.argv[1]).version)' "$pkg"
}

if [[ "$(installed_version 2>/dev/null || true)" == "$OPENAI_VERSION" ]]; then
  echo "$DEST/node_modules"
  exit 0
fi

command -v node >/dev/null || { echo "npm_install.sh: node is not installed (apt-get install nodejs npm)" >&2; exit 1; }
command -v npm >/dev/null || { echo "npm_install.sh: npm is not installed (apt-get install npm)" >&2; exit 1; }

mkdir -p "$CACHE"
TMP="$(mktemp -d "$CACHE/.install.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
printf '{"name":"brigade-api-tests","private":true}\n' >"$TMP/package.json"
# Progress and audit output to stderr only: stdout is the folder.
if ! (cd "$TMP" && npm i -E --no-audit --no-fund --loglevel=error "openai@$OPENAI_VERSION" >&2); then
  echo "npm_install.sh: could not install openai@$OPENAI_VERSION into $CACHE (is the npm registry reachable?)" >&2
  exit 1
fi
got="$(node -e 'process.stdout.write(require(process.argv[1]).version)' "$TMP/node_modules/openai/package.json")"
if [[ "$got" != "$OPENAI_VERSION" ]]; then
  echo "npm_install.sh: npm installed openai $got, not $OPENAI_VERSION" >&2
  exit 1
fi
# Another run may have finished first: keep whichever is in place.
rm -rf "$DEST.old"
if [[ -e "$DEST" ]]; then mv "$DEST" "$DEST.old"; fi
mv "$TMP" "$DEST"
rm -rf "$DEST.old"
trap - EXIT
echo "$DEST/node_modules"
