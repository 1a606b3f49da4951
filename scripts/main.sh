#!/usr/bin/env bash
# The main job of the README: installs what is missing, builds, then serves and generates a
# video end to end with the embedded default model: magi-server with one local worker group
# (MAGI-1's pipeline on the random-weight "tiny" model, generated into out/state on first
# start), the magi CLI streaming the chunks into out/video.mp4 as they are made.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
bash scripts/serve_demo.sh out/video.mp4
