#!/usr/bin/env bash
# direction_rate.sh SET_DIR [SEEDS] -- how far a world model set's text-to-video follows the
# direction its caption names (issue #17; docs/training.md): for noise seeds 1..SEEDS (default
# 8) it generates "a red ball rolls to the right" and "a red ball rolls to the left" with the
# same seed (so only the direction word differs) through `magi generate --model_dir`, measures
# the red blob's shift over the first half second (scripts/blob_motion.py), and prints each
# seed's two shifts, the share of videos moving the way named, and the mean of right minus
# left. A set that ignores the word draws the same path for both (difference about 0, half
# moving as named by chance). Env: BUILD (default: build in the source tree).
set -euo pipefail
SET=$(realpath -m "${1:?usage: scripts/direction_rate.sh SET_DIR [SEEDS]}")
SEEDS=${2:-8}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(realpath -m "${BUILD:-$ROOT/build}")
MAGI="$BUILD/client/magi"
[[ -x $MAGI ]] || { echo "direction_rate: $MAGI is missing; build first (scripts/build.sh)" >&2; exit 1; }
[[ -f $SET/config.json ]] || { echo "direction_rate: $SET/config.json not found (a MAGI-1 model set)" >&2; exit 1; }
[[ $SEEDS =~ ^[1-9][0-9]*$ ]] || { echo "direction_rate: SEEDS must be a positive integer, got '$SEEDS'" >&2; exit 1; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
for seed in $(seq 1 "$SEEDS"); do
  for dir in right left; do
    "$MAGI" generate --model_dir "$SET" --quiet --prompt "a red ball rolls to the $dir" --frames 96 --width 64 \
      --height 64 --seed "$seed" --output "$WORK/$seed-$dir.mp4"
    python3 "$ROOT/scripts/blob_motion.py" "$WORK/$seed-$dir.mp4" red | tail -1 | cut -d' ' -f2 > "$WORK/$seed-$dir.txt"
  done
  echo "seed $seed: shift $(cat "$WORK/$seed-right.txt") px (right), $(cat "$WORK/$seed-left.txt") px (left)"
done
python3 - "$WORK" "$SEEDS" <<'PY'
import math, sys
work, seeds = sys.argv[1], int(sys.argv[2])
named = diff = 0
pairs = 0
videos = 0
for s in range(1, seeds + 1):
    r = float(open(f"{work}/{s}-right.txt").read()); l = float(open(f"{work}/{s}-left.txt").read())
    for v, sign in ((r, 1), (l, -1)):
        if not math.isnan(v):
            videos += 1
            named += v * sign > 0
    if not (math.isnan(r) or math.isnan(l)):
        pairs += 1
        diff += r - l
print(f"moving the way named: {named} of {videos} videos with a red blob; mean shift right minus left "
      f"{diff / pairs if pairs else float('nan'):.2f} px over {pairs} seeds")
PY
