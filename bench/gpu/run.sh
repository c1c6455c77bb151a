#!/usr/bin/env bash
# The GPU script (issue 6): on a machine with CUDA, CMake and ninja but none
# of brigade's Debian packages, in one call of at most 8 minutes:
#   1. build kernels/ alone (engine-only configure) with the CUDA backend, sm_90
#   2. the check program under compute-sanitizer (kernels and the tiny model)
#   3. the whole check program (kernels, tiny and small against the CPU)
#   4. a first decode-step benchmark on tinyllama-1b at batch 1 and 64
# Each stage writes its log and JSON under $OUT as it finishes, so a cut-off
# run still returns what it did; a table comes last.
#   usage: bench/gpu/run.sh            (OUT defaults to ./gpu-out)
#   env:   BRIGADE_GPU_SKIP_SANITIZER=1, BRIGADE_GPU_BATCHES=1,64
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${OUT:-$ROOT/gpu-out}
mkdir -p "$OUT"
BUILD=${BRIGADE_GPU_BUILD:-$ROOT/build-gpu}
MODELS=${BRIGADE_GPU_MODELS:-/tmp/brigade-gpu-models}
mkdir -p "$MODELS"
export TMPDIR=${TMPDIR:-/tmp}
summary=()
t_start=$(date +%s)
stage() {  # stage NAME STATUS SECONDS [NOTE]
  summary+=("$(printf '%-22s %-8s %6ss  %s' "$1" "$2" "$3" "${4:-}")")
  printf '{"stage":"%s","status":"%s","seconds":%s}\n' "$1" "$2" "$3" >>"$OUT/stages.jsonl"
}
elapsed() { echo $(( $(date +%s) - $1 )); }
export PATH="/usr/local/cuda/bin:$PATH"

# 0. what the machine is
{
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem --format=csv 2>&1
  nvcc --version 2>&1 | tail -2
  cmake --version | head -1
  nproc
} >"$OUT/machine.txt"
cat "$OUT/machine.txt"

# 1. build
t=$(date +%s)
if cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBRIGADE_ENGINE_ONLY=ON -DBRIGADE_CUDA=ON \
     -DCMAKE_CUDA_ARCHITECTURES=90 -DBRIGADE_CUDA_PTXAS_VERBOSE=ON >"$OUT/configure.log" 2>&1 &&
   cmake --build "$BUILD" --target cuda_check cuda_bench -j "$(nproc)" >"$OUT/build.log" 2>&1; then
  stage build ok "$(elapsed $t)"
else
  stage build FAILED "$(elapsed $t)" "see build.log"
  tail -40 "$OUT/build.log" "$OUT/configure.log"
  printf '%s\n' "${summary[@]}"
  exit 1
fi
grep -E "registers|spill" "$OUT/build.log" >"$OUT/ptxas.txt" || true
CHECK="$BUILD/kernels/cuda/cuda_check"
BENCH="$BUILD/kernels/cuda/cuda_bench"
export BRIGADE_REQUIRE_GPU=1

# 2. compute-sanitizer on the quick check (kernels + tiny)
if [ "${BRIGADE_GPU_SKIP_SANITIZER:-0}" != 1 ] && command -v compute-sanitizer >/dev/null; then
  t=$(date +%s)
  timeout 200 compute-sanitizer --tool memcheck --error-exitcode 3 "$CHECK" --quick \
    --json "$OUT/check_sanitizer.json" >"$OUT/check_sanitizer.log" 2>&1
  rc=$?
  case $rc in
    0) stage "memcheck (quick)" ok "$(elapsed $t)" ;;
    124) stage "memcheck (quick)" TIMEOUT "$(elapsed $t)" "cut at 200 s" ;;
    *) stage "memcheck (quick)" FAILED "$(elapsed $t)" "exit $rc, see check_sanitizer.log" ;;
  esac
  tail -5 "$OUT/check_sanitizer.log"
else
  stage "memcheck (quick)" skipped 0
fi

# 3. the whole check
t=$(date +%s)
timeout 240 "$CHECK" --json "$OUT/check.json" >"$OUT/check.log" 2>&1
rc=$?
if [ $rc = 0 ]; then stage check ok "$(elapsed $t)"; else stage check FAILED "$(elapsed $t)" "exit $rc"; fi
grep -E "^(FAIL|ok  ) engine|FAIL|PASSED|FAILED" "$OUT/check.log" | tail -20

# 4. decode-step benchmark on tinyllama-1b
t=$(date +%s)
timeout 180 "$BENCH" -m "$MODELS/tinyllama-1b-f16.gguf" --synth tinyllama-1b \
  --batch "${BRIGADE_GPU_BATCHES:-1,64}" --context 128 --steps 64 --json "$OUT/bench.json" >"$OUT/bench.log" 2>&1
rc=$?
if [ $rc = 0 ]; then stage "bench tinyllama-1b" ok "$(elapsed $t)"; else stage "bench tinyllama-1b" FAILED "$(elapsed $t)" "exit $rc"; fi

echo
echo "== brigade GPU run ($(elapsed "$t_start") s) =="
head -2 "$OUT/machine.txt"
printf '%s\n' "${summary[@]}"
echo "-- check --"
grep -E "^(ok  |FAIL) engine" "$OUT/check.log"
grep -cE "^ok  " "$OUT/check.log" | sed 's/^/checks ok: /'
grep -E "^FAIL" "$OUT/check.log" | head -10
tail -1 "$OUT/check.log"
echo "-- decode step (bench.log) --"
grep -vE "^\{" "$OUT/bench.log" | tail -6
