#!/usr/bin/env bash
# The test command of the README: installs what is missing, builds, runs the whole suite.
# Golden vectors are read from ../shared/golden (next to the checkout) when present.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
# The host, so a failure seen on one kind of machine is diagnosable from the log alone.
echo "== $(./build/tools/golden/magi-golden --host)"
echo "== CPU flags: $(grep -m1 -ow 'avx512f\|avx512_bf16\|avx2\|fma' /proc/cpuinfo | sort -u | tr '\n' ' ')"
GOLDEN_ROOT="${MAGI_GOLDEN_ROOT:-$PWD/../shared/golden}"
status=0
if [ -d "$GOLDEN_ROOT" ]; then
  for dir in "$GOLDEN_ROOT"/*/; do
    echo "== magi-golden $dir"
    ./build/tools/golden/magi-golden "$dir" || status=1
  done
else
  echo "== no golden folder at $GOLDEN_ROOT: golden checks not run"
fi
echo "== media decoder fuzzing (bounded)"
bash scripts/fuzz.sh "${MAGI_FUZZ_SECONDS:-45}" || status=1
(cd build && ctest --output-on-failure -j"$(nproc)") || status=1
exit $status
