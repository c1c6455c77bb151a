#!/usr/bin/env bash
# The GPU script: on a machine with CUDA, CMake, ninja and PyTorch but none of
# brigade's Debian packages. Two parts, each sized for one device call of at
# most 8 minutes (the machine keeps the build between calls while it is warm):
#
#   run.sh check   build kernels/ alone (engine-only configure) for
#                  sm_90; the check program under compute-sanitizer (kernels and
#                  the tiny model); the whole check program; a first decode
#                  benchmark on tinyllama-1b at batch 1 and 64
#   run.sh bench   build if needed; the decode step at batch 1, 8,
#                  32, 64, 128; copy bandwidth, our projections and attention
#                  (cuda_kernel_bench); PyTorch on the same shapes: cuBLAS,
#                  SDPA backends (cuDNN), transformers eager and torch.compile
#                  (time-boxed, skipped rather than hung); the summary table
#   run.sh all     both (for a local run without the device tool's limit)
#
# Each stage writes its log and JSON under $OUT as it finishes, so a cut-off
# run still returns what it did; a table comes last. Every stage has a time
# limit, and the limits of each part add up to 8 minutes: check = build 150 s
# (configure 30 + build 120) + memcheck 120 + check 120 + bench 90;
# bench = build 150 (usually much less; nothing when the build is there) +
# decode 100 + kernels 60 + PyTorch 260 (compile 90 s per batch size).
#   env: OUT (default ./gpu-out), BRIGADE_COMMIT (recorded in machine.txt when
#        the copy has no .git), BRIGADE_GPU_SKIP_SANITIZER=1,
#        BRIGADE_GPU_COMPILE_TIMEOUT (default 90 s per batch size)
set -uo pipefail
MODE=${1:-check}
case $MODE in check|bench|all) ;; *) echo "usage: bench/gpu/run.sh [check|bench|all]" >&2; exit 2 ;; esac
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
  echo "commit ${BRIGADE_COMMIT:-$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)}, mode $MODE"
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem --format=csv 2>&1
  nvcc --version 2>&1 | tail -2
  cmake --version | head -1
  nproc
} >"$OUT/machine.txt"
cat "$OUT/machine.txt"

# 1. build (ninja does nothing when the build is up to date)
t=$(date +%s)
if timeout 30 cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBRIGADE_ENGINE_ONLY=ON -DBRIGADE_CUDA=ON \
     -DCMAKE_CUDA_ARCHITECTURES=90 -DBRIGADE_CUDA_PTXAS_VERBOSE=ON >"$OUT/configure.log" 2>&1 &&
   timeout 120 cmake --build "$BUILD" --target cuda_check cuda_bench cuda_kernel_bench -j "$(nproc)" >"$OUT/build.log" 2>&1; then
  stage build ok "$(elapsed $t)"
else
  stage build FAILED "$(elapsed $t)" "see build.log"
  tail -40 "$OUT/build.log" "$OUT/configure.log"
  printf '%s\n' "${summary[@]}"
  exit 1
fi
grep -E "registers|spill" "$OUT/build.log" >"$OUT/ptxas.txt" || true
CHECK="$BUILD/tests/gpu/cuda_check"
BENCH="$BUILD/bench/gpu/cuda_bench"
KBENCH="$BUILD/bench/gpu/cuda_kernel_bench"
MODEL="$MODELS/tinyllama-1b-f16.gguf"
export BRIGADE_REQUIRE_GPU=1

if [ "$MODE" != bench ]; then

# 2. compute-sanitizer on the quick check (kernels + tiny)
if [ "${BRIGADE_GPU_SKIP_SANITIZER:-0}" != 1 ] && command -v compute-sanitizer >/dev/null; then
  t=$(date +%s)
  timeout 120 compute-sanitizer --tool memcheck --error-exitcode 3 "$CHECK" --quick \
    --json "$OUT/check_sanitizer.json" >"$OUT/check_sanitizer.log" 2>&1
  rc=$?
  case $rc in
    0) stage "memcheck (quick)" ok "$(elapsed $t)" ;;
    124) stage "memcheck (quick)" TIMEOUT "$(elapsed $t)" "cut at 120 s" ;;
    *) stage "memcheck (quick)" FAILED "$(elapsed $t)" "exit $rc, see check_sanitizer.log" ;;
  esac
  tail -5 "$OUT/check_sanitizer.log"
else
  stage "memcheck (quick)" skipped 0
fi

# 3. the whole check
t=$(date +%s)
rm -f "$OUT/check.json" "$OUT/bench.json"
timeout 120 "$CHECK" --json "$OUT/check.json" >"$OUT/check.log" 2>&1
rc=$?
if [ $rc = 0 ]; then stage check ok "$(elapsed $t)"; else stage check FAILED "$(elapsed $t)" "exit $rc"; fi
grep -E "^(FAIL|ok  ) engine|FAIL|PASSED|FAILED" "$OUT/check.log" | tail -20

# 4. decode-step benchmark on tinyllama-1b
t=$(date +%s)
timeout 90 "$BENCH" -m "$MODEL" --synth tinyllama-1b \
  --batch 1,64 --context 128 --steps 64 --json "$OUT/bench.json" >"$OUT/bench.log" 2>&1
rc=$?
if [ $rc = 0 ]; then stage "bench tinyllama-1b" ok "$(elapsed $t)"; else stage "bench tinyllama-1b" FAILED "$(elapsed $t)" "exit $rc"; fi
fi  # check

if [ "$MODE" != check ]; then
# 5. the full benchmark: our decode step, kernels, then PyTorch
t=$(date +%s)
rm -f "$OUT/bench.json" "$OUT/kernels.json"  # no stale numbers from an earlier run in the summary
timeout 100 "$BENCH" -m "$MODEL" --synth tinyllama-1b \
  --batch 1,8,32,64,128 --context 128 --steps 64 --json "$OUT/bench.json" >"$OUT/bench.log" 2>&1
rc=$?
if [ $rc = 0 ]; then stage "decode 1..128" ok "$(elapsed $t)"; else stage "decode 1..128" FAILED "$(elapsed $t)" "exit $rc"; fi
t=$(date +%s)
timeout 60 "$KBENCH" --json "$OUT/kernels.json" >"$OUT/kernels.log" 2>&1
rc=$?
if [ $rc = 0 ]; then stage "kernels" ok "$(elapsed $t)"; else stage "kernels" FAILED "$(elapsed $t)" "exit $rc"; fi
t=$(date +%s)
rm -f "$OUT/torch.jsonl"
timeout 260 python3 "$ROOT/bench/gpu/torch_peer.py" --json "$OUT/torch.jsonl" \
  --compile-timeout "${BRIGADE_GPU_COMPILE_TIMEOUT:-90}" >"$OUT/torch.log" 2>&1
rc=$?
if [ $rc = 0 ]; then stage "pytorch peer" ok "$(elapsed $t)"; else stage "pytorch peer" FAILED "$(elapsed $t)" "exit $rc"; fi
fi  # bench

echo
echo "== brigade GPU run: $MODE ($(elapsed "$t_start") s) =="
head -2 "$OUT/machine.txt"
printf '%s\n' "${summary[@]}"
if [ "$MODE" != bench ] && [ -f "$OUT/check.log" ]; then
  echo "-- check --"
  grep -E "^(ok  |FAIL) engine" "$OUT/check.log"
  grep -cE "^ok  " "$OUT/check.log" | sed 's/^/checks ok: /'
  grep -E "^FAIL" "$OUT/check.log" | head -10
  tail -1 "$OUT/check.log"
fi
echo "-- decode step (bench.log) --"
grep -vE "^\{" "$OUT/bench.log" 2>/dev/null | tail -7
if [ "$MODE" != check ]; then
  python3 "$ROOT/bench/gpu/summarize.py" "$OUT"
fi
