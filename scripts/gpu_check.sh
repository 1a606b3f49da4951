#!/usr/bin/env bash
# scripts/gpu_check.sh: the one prepared check for a machine with an NVIDIA GPU, nvcc and a
# PyTorch wheel but no apt (docs/gpu.md). It builds the core (-DMAGI_CORE_ONLY=ON) against the
# wheel's CUDA LibTorch, then runs, each step under its own time limit:
#   1. magi-cuda-check            NCCL/CUDA runtime versions, devices, one kernel launch
#   2. magi-golden (cpu)          every golden case with this LibTorch on the CPU (2.x numerics)
#   3. magi-golden (cuda)         forward / ar / vae cases on cuda:0, when magi-golden has --device
#   4. NCCL, one rank             the collectives checks on a one-rank NCCL communicator, cuda:0
#   5. NCCL, two ranks            RankGroup::Join(nccl) + collectives on TP (NCCL) and world
#                                 (Gloo), when there are two GPUs
#   6. test suite                 the core-only GoogleTest suites (kernels incl. CUDA twins, rank
#                                 groups), when GoogleTest was built
#   7. bench_dit_forward          one 4.5B-shaped layer over one 720p chunk on cuda:0, fp32+bf16
# and prints one summary (also written to $OUT/summary.txt). Aimed at < 8 minutes on an
# H100/H200 with 16 cores. Exit 0 only if nothing FAILed (a SKIP says why it did not run).
#
# What the box must have: an NVIDIA driver and GPU, nvcc (CUDA toolkit), python with a CUDA
# PyTorch wheel, cmake >= 3.20, a C++17 compiler. What travels with the tree: third_party/
# (scripts/vendor_core_deps.sh: Abseil, nlohmann-json, GoogleTest) and a golden folder.
#
#   scripts/gpu_check.sh [--golden DIR] [--python PY] [--build-dir DIR] [--out DIR] [--jobs N]
# Environment: MAGI_ABSL_SOURCE_DIR (an abseil-cpp source tree, needed for old-ABI wheels),
#   NCCL_ROOT (an NCCL install when neither the nvidia-nccl wheel nor the toolkit has one),
#   GPU_CHECK_TIME_SCALE (multiplies every step's time limit; default 1, for slow machines).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
T0=$(date +%s)

golden=""
for g in "$ROOT/golden/A" "$ROOT/../shared/golden/A"; do
  [ -z "$golden" ] && [ -f "$g/golden.json" ] && golden=$g
done
PY=${PYTHON:-python3}
BUILD=$ROOT/build-gpu
OUT=${OUT:-$ROOT/gpu_check_out}
JOBS=$(nproc)
while [ $# -gt 0 ]; do
  case "$1" in
    --golden) golden=$2; shift 2 ;;
    --python) PY=$2; shift 2 ;;
    --build-dir) BUILD=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --jobs) JOBS=$2; shift 2 ;;
    *) echo "gpu_check: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
mkdir -p "$OUT"
SUMMARY=()
FAILED=0
note() { echo "== $*"; }
record() {  # record PASS|FAIL|SKIP name detail
  SUMMARY+=("$(printf '%-4s %-22s %s' "$1" "$2" "$3")")
  [ "$1" = FAIL ] && FAILED=1
  echo "== $1 $2: $3"
}
# run_step NAME SECONDS CMD...: output to $OUT/NAME.log (tail shown on failure); sets $rc.
run_step() {
  local name=$1 limit=$(( $2 * ${GPU_CHECK_TIME_SCALE:-1} )); shift 2
  local s=$(date +%s)
  timeout --kill-after=10 "$limit" "$@" >"$OUT/$name.log" 2>&1
  rc=$?
  elapsed=$(( $(date +%s) - s ))
  if [ $rc -ne 0 ]; then
    [ $rc -eq 124 ] && echo "   (timed out after ${limit} s)" >>"$OUT/$name.log"
    tail -n 25 "$OUT/$name.log" | sed 's/^/   | /'
  fi
}
finish() {
  local total=$(( $(date +%s) - T0 ))
  {
    echo "================ magi-serve gpu_check summary ================"
    echo "host:    $(hostname) $(nproc) cores; ${GPU_LINE:-no GPU line}"
    echo "torch:   ${TORCH_LINE:-unknown}"
    echo "nvcc:    ${NVCC_LINE:-unknown}"
    for l in "${SUMMARY[@]}"; do echo "$l"; done
    echo "total:   ${total} s; logs in $OUT"
    echo "result:  $([ $FAILED -eq 0 ] && echo OK || echo FAILED)"
  } | tee "$OUT/summary.txt"
  exit $FAILED
}

# ---- the box -------------------------------------------------------------------------------
if ! command -v nvidia-smi >/dev/null 2>&1; then
  record FAIL gpu "nvidia-smi not found: no NVIDIA driver on this machine"; finish
fi
GPU_LINE=$(nvidia-smi --query-gpu=name,memory.total,compute_cap --format=csv,noheader 2>/dev/null | head -n 1)
NGPU=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | wc -l)
if [ -z "$GPU_LINE" ] || [ "$NGPU" -lt 1 ]; then
  record FAIL gpu "nvidia-smi lists no GPU"; finish
fi
ARCH=$(echo "$GPU_LINE" | awk -F', ' '{print $3}' | tr -d '.')
GPU_LINE="$NGPU x $GPU_LINE"
NVCC=$(command -v nvcc || true)
[ -z "$NVCC" ] && [ -x /usr/local/cuda/bin/nvcc ] && NVCC=/usr/local/cuda/bin/nvcc
if [ -z "$NVCC" ]; then record FAIL nvcc "no nvcc on PATH or in /usr/local/cuda/bin"; finish; fi
NVCC_LINE="$NVCC ($("$NVCC" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'))"
if ! command -v cmake >/dev/null 2>&1; then
  record FAIL cmake "cmake not found (needs >= 3.20; 'pip install cmake' where pip works)"; finish
fi
if ! TORCH_INFO=$("$PY" - <<'EOF' 2>"$OUT/python.log"
import os, torch
nccl = ""
try:
    import nvidia.nccl as n
    nccl = list(n.__path__)[0]
except Exception:
    pass
print(torch.utils.cmake_prefix_path)
print(torch.__version__)
print(torch.version.cuda or "")
print(int(torch.cuda.is_available()))
print(int(torch.compiled_with_cxx11_abi()))
print(nccl)
EOF
); then
  record FAIL torch "$PY cannot import torch (see $OUT/python.log)"; finish
fi
{ read -r TORCH_PREFIX; read -r TORCH_VERSION; read -r TORCH_CUDA; read -r TORCH_CUDA_OK; read -r TORCH_CXX11; read -r WHEEL_NCCL; } <<<"$TORCH_INFO"
TORCH_LINE="torch $TORCH_VERSION (CUDA ${TORCH_CUDA:-none}, cuda available: $TORCH_CUDA_OK, cxx11 ABI: $TORCH_CXX11)"
if [ -z "$TORCH_CUDA" ]; then record FAIL torch "this PyTorch is a CPU build: $TORCH_LINE"; finish; fi
note "$GPU_LINE; $TORCH_LINE; nvcc $NVCC_LINE"

# ---- configure and build ---------------------------------------------------------------------
CMAKE_ARGS=(-DCMAKE_BUILD_TYPE=Release -DMAGI_CORE_ONLY=ON -DMAGI_WITH_CUDA=ON -DMAGI_PREFER_VENDORED=ON
            "-DCMAKE_PREFIX_PATH=$TORCH_PREFIX" "-DCMAKE_CUDA_COMPILER=$NVCC" "-DCMAKE_CUDA_ARCHITECTURES=$ARCH"
            "-DCUDAToolkit_ROOT=$(dirname "$(dirname "$NVCC")")")
# Ninja when there is one, for a fresh build dir (an existing one keeps its generator).
command -v ninja >/dev/null 2>&1 && [ ! -f "$BUILD/CMakeCache.txt" ] && CMAKE_ARGS+=(-G Ninja)
NCCL_ROOT=${NCCL_ROOT:-$WHEEL_NCCL}
[ -n "$NCCL_ROOT" ] && CMAKE_ARGS+=("-DNCCL_ROOT=$NCCL_ROOT")
[ -n "$golden" ] && CMAKE_ARGS+=("-DMAGI_GOLDEN_DIR=$golden")  # the test suites' golden folder
if [ -z "${MAGI_ABSL_SOURCE_DIR:-}" ] && [ "$TORCH_CXX11" = 0 ] && [ -d "$ROOT/third_party/abseil-cpp" ]; then
  MAGI_ABSL_SOURCE_DIR=$ROOT/third_party/abseil-cpp  # old-ABI wheel: build Abseil with its flags
fi
if [ -n "${MAGI_ABSL_SOURCE_DIR:-}" ]; then
  CMAKE_ARGS+=("-DMAGI_ABSL_SOURCE_DIR=$MAGI_ABSL_SOURCE_DIR")
elif [ "$TORCH_CXX11" = 0 ]; then
  record FAIL abseil "this wheel uses the old C++ ABI (_GLIBCXX_USE_CXX11_ABI=0) and the vendored Debian Abseil the new one: vendor Abseil sources (ABSL_SOURCE=... scripts/vendor_core_deps.sh) or set MAGI_ABSL_SOURCE_DIR"
  finish
elif [ ! -d "$ROOT/third_party/absl" ]; then
  note "no third_party/absl (scripts/vendor_core_deps.sh): relying on an installed Abseil"
fi
run_step configure 240 cmake -S "$ROOT" -B "$BUILD" "${CMAKE_ARGS[@]}"
if [ $rc -ne 0 ]; then record FAIL configure "cmake failed (${elapsed} s, $OUT/configure.log)"; finish; fi
TARGETS=(magi-golden magi-cuda-check magi-dit-check bench_dit_forward rank_probe)
HAVE_TESTS=0
if grep -q '^MAGI_BUILD_TESTS:BOOL=ON' "$BUILD/CMakeCache.txt" && [ -f "$BUILD/tests/CTestTestfile.cmake" ]; then
  HAVE_TESTS=1
fi
run_step build 330 cmake --build "$BUILD" -j"$JOBS" --target "${TARGETS[@]}"
if [ $rc -ne 0 ]; then record FAIL build "core build failed (${elapsed} s, $OUT/build.log)"; finish; fi
record PASS build "core-only build against torch $TORCH_VERSION, sm_$ARCH (${elapsed} s)"
if [ $HAVE_TESTS -eq 1 ]; then
  run_step build_tests 150 cmake --build "$BUILD" -j"$JOBS"
  [ $rc -ne 0 ] && { record FAIL build_tests "the core test suites did not build (${elapsed} s, $OUT/build_tests.log)"; HAVE_TESTS=0; }
fi
BIN=$BUILD
# ---- 1. CUDA self-check ----------------------------------------------------------------------
# On this box a GPU is the point: "no usable CUDA device" is a failure here, not a skip.
run_step cuda_check 60 "$BIN/tools/cuda_check/magi-cuda-check"
if [ $rc -eq 0 ] && grep -q 'LayerNorm1p kernel: ok' "$OUT/cuda_check.log"; then
  record PASS cuda-check "$(head -n 1 "$OUT/cuda_check.log"); $(grep -m1 'device 0' "$OUT/cuda_check.log" | sed 's/^ *//')"
else
  record FAIL cuda-check "exit $rc: $(tail -n 1 "$OUT/cuda_check.log") ($OUT/cuda_check.log)"
fi
# ---- 2./3. goldens ---------------------------------------------------------------------------
golden_line() { grep -E '^[0-9]+ passed' "$OUT/$1.log" | tail -n 1; }
if [ -z "$golden" ]; then
  record SKIP golden-cpu "no golden folder (put one at golden/A or pass --golden DIR)"
  record SKIP golden-cuda "no golden folder"
else
  run_step golden_cpu 150 "$BIN/tools/golden/magi-golden" "$golden"
  [ $rc -eq 0 ] && record PASS golden-cpu "$(golden_line golden_cpu)" || record FAIL golden-cpu "exit $rc: $(golden_line golden_cpu) ($OUT/golden_cpu.log)"
  if "$BIN/tools/golden/magi-golden" --help 2>&1 | grep -q -- '--device'; then
    for kind in forward ar vae; do
      run_step "golden_cuda_$kind" 120 "$BIN/tools/golden/magi-golden" "$golden" --only "$kind" --device cuda
      [ $rc -eq 0 ] && record PASS "golden-cuda-$kind" "$(golden_line "golden_cuda_$kind")" \
                    || record FAIL "golden-cuda-$kind" "exit $rc: $(golden_line "golden_cuda_$kind") ($OUT/golden_cuda_$kind.log)"
    done
  else
    record SKIP golden-cuda "this tree's magi-golden has no --device flag yet (device placement, issue 12 item 2)"
  fi
fi
# ---- 4./5. NCCL ------------------------------------------------------------------------------
run_step nccl_one_rank 60 env MASTER_ADDR=127.0.0.1 MASTER_PORT=29611 RANK=0 LOCAL_RANK=0 WORLD_SIZE=1 \
  "$BIN/tests/parallel/rank_probe" nccl1
# The probe also passes where it may refuse (no GPU); here it must have run the collectives.
if [ $rc -eq 0 ] && grep -q 'one-rank NCCL communicator on cuda:0 .*: ok' "$OUT/nccl_one_rank.log"; then
  record PASS nccl-1-rank "$(tail -n 1 "$OUT/nccl_one_rank.log")"
else
  record FAIL nccl-1-rank "exit $rc: $(tail -n 1 "$OUT/nccl_one_rank.log") ($OUT/nccl_one_rank.log)"
fi
if [ "$NGPU" -ge 2 ]; then
  two_ranks() {
    local pids=() r bad=0
    for r in 0 1; do
      MASTER_ADDR=127.0.0.1 MASTER_PORT=29612 RANK=$r LOCAL_RANK=$r WORLD_SIZE=2 MAGI_DIST_TIMEOUT_S=30 \
        "$BIN/tests/parallel/rank_probe" nccl & pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || bad=1; done
    return $bad
  }
  run_step nccl_two_ranks 90 bash -c "$(declare -f two_ranks); BIN='$BIN'; two_ranks"
  if [ $rc -eq 0 ] && [ "$(grep -c 'NCCL tp group and Gloo world group on cuda:[01]: ok' "$OUT/nccl_two_ranks.log")" -eq 2 ]; then
    record PASS nccl-2-ranks "$(grep -m1 'rank 0' "$OUT/nccl_two_ranks.log")"
  else
    record FAIL nccl-2-ranks "exit $rc: $(tail -n 1 "$OUT/nccl_two_ranks.log") ($OUT/nccl_two_ranks.log)"
  fi
else
  record SKIP nccl-2-ranks "one GPU: NCCL needs a device per rank"
fi
# ---- 6. GoogleTest suites (kernel twins, rank groups) ---------------------------------------
if [ $HAVE_TESTS -eq 1 ]; then
  run_step ctest 200 ctest --test-dir "$BUILD" --output-on-failure -j 8
  line=$(grep -E 'tests passed' "$OUT/ctest.log" | tail -n 1)
  [ $rc -eq 0 ] && record PASS tests "$line" || record FAIL tests "exit $rc: $line ($OUT/ctest.log)"
  skipped=$(grep -c 'Skipped' "$OUT/ctest.log" 2>/dev/null)
  [ "${skipped:-0}" -gt 0 ] && record SKIP tests-skipped "$skipped test(s) skipped: see $OUT/ctest.log"
else
  record SKIP tests "no GoogleTest on this box or in third_party/ (scripts/vendor_core_deps.sh copies it)"
fi
# ---- 7. benchmark ----------------------------------------------------------------------------
run_step bench 150 "$BIN/bench/bench_dit_forward" --shape 4.5b --device cuda:0 --reps 3
if [ $rc -eq 0 ]; then
  record PASS bench "$(grep -E '^fp32: forward' "$OUT/bench.log" | cut -c1-110)"
  record PASS bench "$(grep -E '^bf16: forward' "$OUT/bench.log" | cut -c1-110)"
else
  record FAIL bench "exit $rc ($OUT/bench.log)"
fi
finish
