#!/usr/bin/env bash
# Runs the media decoder fuzz target (libFuzzer + ASan/UBSan, clang) for a bounded time.
# Usage: scripts/fuzz.sh [SECONDS]   (default 45). Exit 0 = no finding.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-45}"
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
cmake -S fuzz -B build-fuzz -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j"$(nproc)" >/dev/null
bash fuzz/make_seeds.sh build-fuzz/seeds >/dev/null
mkdir -p build-fuzz/corpus
log=build-fuzz/last_run.log
rc=0
build-fuzz/fuzz_media_decode_libfuzzer build-fuzz/corpus build-fuzz/seeds \
  -max_total_time="$seconds" -max_len=262144 -rss_limit_mb=2048 -timeout=20 \
  -artifact_prefix=build-fuzz/ -print_final_stats=1 >"$log" 2>&1 || rc=$?
if [ "$rc" -ne 0 ]; then
  # A finding: the whole report (sanitizer stack, reproducer path), not a cut of it.
  cat "$log"
  echo "fuzz: the fuzzer exited with status $rc; reproducer under build-fuzz/ (crash-*, timeout-*, oom-*)"
  exit "$rc"
fi
tail -n 5 "$log"
