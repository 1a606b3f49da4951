#!/usr/bin/env bash
# Configures and builds magi-serve (Release) into ./build. Safe to re-run (incremental).
set -euo pipefail
cd "$(dirname "$0")/.."
# ccache hits across clones at other paths only with a base dir (notes/toolchain.md §9).
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build build -j"$jobs"
