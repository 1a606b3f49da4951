#!/usr/bin/env bash
# check_world_set.sh SET_DIR -- issue #17 item 5's checks of a trained world model set (e.g.
# OUT/set of scripts/train_tiny.sh), loaded only through the real loaders by
# `magi generate --model_dir`, as the main job serves it; exits 0 only when all pass:
#  1. it generates 96 frames at 64 x 64 from a caption alone (text-to-video);
#  2. "a red ball rolls to the right" draws a red blob in at least half the frames, moving
#     right over the first half second (least-squares slope of its centroid's x over frames
#     0-11 > 0, and frames 8-11 at least 3 px right of frames 0-3); "a blue ball rolls to the
#     left" a blue one moving left. Half a second, as the world's balls roll 0.3-0.7 frame
#     widths a second and bounce off the walls: over the whole video the true ball comes back
#     (world seeds 31, 102, 397 (red, right) and 3, 12, 75 (blue, left) all pass this check as
#     rendered; over the whole first chunk seed 102 would not);
#  3. its continuation eval (scripts/eval_physics.sh, 8 held-out scenes) beats the
#     repeat-last-frame baseline on MSE and on spatial, spatiotemporal and weighted IoU.
# Env: BUILD (default: build in the source tree).
set -euo pipefail
SET=$(realpath -m "${1:?usage: scripts/check_world_set.sh SET_DIR}")
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(realpath -m "${BUILD:-$ROOT/build}")
cd "$ROOT"
MAGI="$BUILD/client/magi"
[[ -x $MAGI ]] || { echo "check_world_set: $MAGI is missing; build first (scripts/build.sh)" >&2; exit 1; }
[[ -f $SET/config.json ]] || { echo "check_world_set: $SET/config.json not found (a MAGI-1 model set)" >&2; exit 1; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

"$MAGI" generate --model_dir "$SET" --quiet --prompt "a red ball rolls to the right" --frames 96 --width 64 \
  --height 64 --output "$WORK/red.mp4"
failed=0
python3 scripts/blob_motion.py "$WORK/red.mp4" red 1 || failed=1  # +1: right
"$MAGI" generate --model_dir "$SET" --quiet --prompt "a blue ball rolls to the left" --frames 96 --width 64 \
  --height 64 --output "$WORK/blue.mp4"
python3 scripts/blob_motion.py "$WORK/blue.mp4" blue -1 || failed=1  # -1: left

BUILD="$BUILD" SIZE=64 bash scripts/eval_physics.sh "$SET" 8 1 | tee "$WORK/eval.txt"
python3 - "$WORK/eval.txt" <<'PY' || failed=1
import sys
rows = {}
lines = open(sys.argv[1]).read().split("\n")
start = next(i for i, l in enumerate(lines) if l.startswith("method"))
for line in lines[start + 1:]:
    if not line.strip(): break
    t = line.split()
    rows[" ".join(t[:-5])] = [float(v) for v in t[-5:]]  # physics IQ, spatial, spatiotemporal, weighted, MSE
base = next((v for k, v in rows.items() if k.startswith("repeat")), None)
model = next((v for k, v in rows.items() if k.startswith("generated")), None)
if base is None or model is None: print("FAIL: the eval table lacks the baseline's or the model's row"); sys.exit(1)
names = ["spatial IoU", "spatiotemporal IoU", "weighted spatial IoU"]
bad = [n for i, n in enumerate(names) if model[1 + i] <= base[1 + i]] + (["MSE"] if model[4] >= base[4] else [])
if bad: print("FAIL: the set does not beat repeat-last-frame on", ", ".join(bad)); sys.exit(1)
print("the set beats repeat-last-frame on MSE and every IoU")
PY
if [[ $failed != 0 ]]; then echo "check_world_set: FAIL ($SET)"; exit 1; fi
echo "check_world_set: PASS ($SET)"
