#!/usr/bin/env bash
# Installs the Debian 12 packages brigade builds and tests with, and nothing
# else. Idempotent: when everything is present it only runs one dpkg query.
# Needs root or sudo for the install step.
#   deploy/setup.sh          everything the build and the tests need
#   deploy/setup.sh --build  only what `brigade` builds with (the images' build stage)
set -euo pipefail

# What `brigade` builds with (the images' build stage installs only these:
# deploy/setup.sh --build).
build_packages=(
  cmake ninja-build ccache g++ pkg-config python3   # build
  libcaf-dev libssl-dev                             # actors, BASP (CAF 0.17.6; its openssl module needs OpenSSL)
  libhiredis-dev libmsgpack-cxx-dev libboost-dev    # Redis store (msgpack-cxx needs Boost headers)
  prometheus-cpp-dev                                # metrics
  libcli11-dev                                      # command line
  nlohmann-json3-dev libcpp-httplib-dev             # the HTTP API (JSON, HTTP server and bench --api's client)
  libjs-chart.js                                    # the live dashboard's charts (Chart.js, embedded at build time)
)
# What the tests add.
test_packages=(
  googletest libgtest-dev                           # tests
  git                                               # clones llama.cpp from the npm peer's bundle (peer tests)
  redis-server                                      # the real store, started by the tests
  iproute2 nftables                                 # network namespaces and partitions (partition test, root)
  curl                                              # the API's raw SSE test
  prometheus python3-matplotlib python3-yaml        # scaling: promtool rules tests, a real Prometheus, the simulation's plot
  yamllint                                          # the Helm chart's rendered manifests (deploy label)
  chromium tmux                                     # the dashboard in a real browser, `brigade top` in a terminal
)

packages=("${build_packages[@]}")
build_only=0
if [ "${1:-}" = "--build" ]; then
  build_only=1
else
  packages+=("${test_packages[@]}")
fi

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$status" = "installed" ] || missing+=("$p")
done

# Node.js and npm run the llama.cpp peer checks (npm node-llama-cpp). Machines
# often carry a newer Node.js than Debian's: only install when the commands are absent.
if [ $build_only -eq 0 ]; then
  command -v node >/dev/null || missing+=(nodejs)
  command -v npm >/dev/null || missing+=(npm)
fi

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

echo "setup: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: need root or sudo to install ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
