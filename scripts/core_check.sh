#!/usr/bin/env bash
# The core-only configuration (-DMAGI_CORE_ONLY=ON, docs/gpu.md) must not rot: configure it in
# ./build-core, build magi-golden (the model core: kernels, parallel, model, engine, VAE, and
# the text encoder when sentencepiece is there) and run the DiT forward goldens with it.
# Cheap after scripts/build.sh: every object is a ccache hit of the full build (same flags,
# CCACHE_BASEDIR), so what it costs is the configure, the links and the forward cases.
#   scripts/core_check.sh [GOLDEN_DIR]    (default ../shared/golden/A)
set -euo pipefail
cd "$(dirname "$0")/.."
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
golden="${1:-${MAGI_GOLDEN_ROOT:-$PWD/../shared/golden}/A}"
t0=$(date +%s)
cmake -S . -B build-core -DCMAKE_BUILD_TYPE=Release -DMAGI_CORE_ONLY=ON -DMAGI_BUILD_TESTS=OFF >/dev/null
cmake --build build-core -j"$(nproc)" --target magi-golden
t1=$(date +%s)
# What the core must not need: none of the server side's libraries may be linked in directly
# (LibTorch itself may bring some of them; readelf lists only our own NEEDED entries).
if readelf -d build-core/tools/golden/magi-golden | grep NEEDED | grep -E 'grpc|protobuf|libav|libsw|sqlite|gtest'; then
  echo "== FAIL: the core-only magi-golden links a server-side library (above)"
  exit 1
fi
status=0
if [ -d "$golden" ]; then
  ./build-core/tools/golden/magi-golden "$golden" --only forward || status=1
elif [ "${MAGI_REQUIRE_GOLDEN:-0}" = "1" ]; then
  echo "== FAIL: no golden folder at $golden and MAGI_REQUIRE_GOLDEN=1"
  status=1
else
  echo "== no golden folder at $golden: core-only forward goldens not run"
fi
t2=$(date +%s)
echo "== core-only check: build $((t1 - t0)) s, forward goldens $((t2 - t1)) s"
exit $status
