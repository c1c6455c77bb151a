#!/usr/bin/env bash
# Installs one pinned npm package (and what it depends on) once into a cache
# outside the clone, and prints its node_modules folder on standard output.
# The tests' npm tools go through it (tests/api/npm_install.sh: openai;
# tests/dashboard/npm_install.sh: playwright-core).
#
#   BRIGADE_NPM_CACHE  the cache folder (default ~/.cache/brigade/npm-SET)
#
# Idempotent: when the pinned version is already there it does nothing (and
# needs no network). The install goes into a temporary folder that is renamed
# into place, so an interrupted install never leaves a half cache behind.
#
# usage: npm_pinned.sh SET PACKAGE VERSION   (prints DIR/node_modules)
set -euo pipefail

SET=$1 PACKAGE=$2 VERSION=$3
CACHE="${BRIGADE_NPM_CACHE:-$HOME/.cache/brigade/npm-$SET}"
DEST="$CACHE/$PACKAGE-$VERSION"
me="npm_pinned.sh ($PACKAGE)"

installed_version() {
  local pkg="$DEST/node_modules/$PACKAGE/package.json"
  [[ -f "$pkg" ]] || return 1
  node -e 'process.stdout.write(require(process.argv[1]).version)' "$pkg"
}

if [[ "$(installed_version 2>/dev/null || true)" == "$VERSION" ]]; then
  echo "$DEST/node_modules"
  exit 0
fi

command -v node >/dev/null || { echo "$me: node is not installed (apt-get install nodejs npm)" >&2; exit 1; }
command -v npm >/dev/null || { echo "$me: npm is not installed (apt-get install npm)" >&2; exit 1; }

mkdir -p "$CACHE"
TMP="$(mktemp -d "$CACHE/.install.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
printf '{"name":"brigade-tests-%s","private":true}\n' "$SET" >"$TMP/package.json"
# Progress and audit output to stderr only: stdout is the folder. No browser
# download for playwright-core (the tests drive Debian's chromium).
if ! (cd "$TMP" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm i -E --no-audit --no-fund --loglevel=error \
      "$PACKAGE@$VERSION" >&2); then
  echo "$me: could not install $PACKAGE@$VERSION into $CACHE (is the npm registry reachable?)" >&2
  exit 1
fi
got="$(node -e 'process.stdout.write(require(process.argv[1]).version)' "$TMP/node_modules/$PACKAGE/package.json")"
if [[ "$got" != "$VERSION" ]]; then
  echo "$me: npm installed $PACKAGE $got, not $VERSION" >&2
  exit 1
fi
# Another run may have finished first: keep whichever is in place.
rm -rf "$DEST.old"
if [[ -e "$DEST" ]]; then mv "$DEST" "$DEST.old"; fi
mv "$TMP" "$DEST"
rm -rf "$DEST.old"
trap - EXIT
echo "$DEST/node_modules"
