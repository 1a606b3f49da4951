#!/usr/bin/env bash
# Runs the libFuzzer targets (clang, ASan/UBSan) for a bounded time each:
#   media  — the media decoders (DecodeImage, DecodePrefixVideo), SECONDS (default 45)
#   config — the config.json parser and its round trip, SECONDS / 2 (at least 10)
#   safetensors — the checkpoint header parser and its layout promises, SECONDS / 3 (at least 10)
#   request — the edge's request validation and JobSpec geometry, SECONDS / 3 (at least 10)
# Usage: scripts/fuzz.sh [SECONDS]      (CI: bounded time per target)
#        scripts/fuzz.sh --soak [RUNS]  (each target until RUNS executions, default 10,000,000,
#                                        no time limit: hours for media; not in CI)
# Exit 0 = no finding; on a finding, the whole report and the reproducer's path under build-fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."
soak_runs=0
if [ "${1:-}" = "--soak" ]; then
  soak_runs="${2:-10000000}"
  case "$soak_runs" in ''|*[!0-9]*) echo "fuzz.sh: --soak RUNS must be a positive integer, got '$soak_runs'"; exit 2 ;; esac
  seconds=0
else
  seconds="${1:-45}"
  case "$seconds" in ''|*[!0-9]*) echo "fuzz.sh: SECONDS must be a positive integer, got '$seconds'"; exit 2 ;; esac
fi
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
cmake -S fuzz -B build-fuzz -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j"$(nproc)" >/dev/null
bash fuzz/make_seeds.sh build-fuzz/seeds >/dev/null
mkdir -p build-fuzz/seeds_config && cp configs/*.json build-fuzz/seeds_config/
python3 fuzz/make_safetensors_seeds.py build-fuzz/seeds_safetensors
build-fuzz/fuzz_request_seeds build-fuzz/seeds_request build-fuzz/seeds

# run NAME TARGET SECONDS SEED_DIR [libFuzzer flags...]
run() {
  local name="$1" target="$2" secs="$3" seeds="$4"
  shift 4
  mkdir -p "build-fuzz/corpus_$name"
  local log="build-fuzz/last_run_$name.log" rc=0
  local bound=(-max_total_time="$secs")
  [ "$soak_runs" -gt 0 ] && bound=(-runs="$soak_runs")
  "build-fuzz/$target" "build-fuzz/corpus_$name" "$seeds" "${bound[@]}" -rss_limit_mb=2048 \
    -artifact_prefix="build-fuzz/$name-" -print_final_stats=1 "$@" >"$log" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ]; then
    # A finding: the whole report (sanitizer stack, reproducer path), not a cut of it.
    cat "$log"
    echo "fuzz: $target exited with status $rc; reproducer under build-fuzz/ ($name-crash-*, -timeout-*, -oom-*)"
    return "$rc"
  fi
  echo "fuzz $name: $(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "$log" | tail -n 1), no finding"
}
status=0
run media fuzz_media_decode_libfuzzer "$seconds" build-fuzz/seeds -max_len=262144 -timeout=20 || status=1
config_seconds=$((seconds / 2 > 10 ? seconds / 2 : 10))
run config fuzz_config_parse_libfuzzer "$config_seconds" build-fuzz/seeds_config -max_len=65536 -timeout=10 || status=1
st_seconds=$((seconds / 3 > 10 ? seconds / 3 : 10))
run safetensors fuzz_safetensors_header_libfuzzer "$st_seconds" build-fuzz/seeds_safetensors -max_len=16384 -timeout=10 || status=1
run request fuzz_request_validator_libfuzzer "$st_seconds" build-fuzz/seeds_request -max_len=300000 -timeout=20 \
  -use_value_profile=1 || status=1
exit $status
