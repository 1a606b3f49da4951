#!/usr/bin/env bash
# The main job of the README: installs what is missing, builds, and runs magi-serve's main
# job on the embedded tiny model. Output goes to ./out.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
mkdir -p out
./build/tools/dit_check/magi-dit-check --write-tiny out/tiny
./build/tools/dit_check/magi-dit-check --config out/tiny/config.json --checkpoint out/tiny/model.safetensors --chunks 4
