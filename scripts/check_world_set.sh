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

check_motion() {  # VIDEO COLOUR DIRECTION(+1 right, -1 left)
  python3 - "$@" <<'PY'
import subprocess, sys
path, colour, direction = sys.argv[1], sys.argv[2], int(sys.argv[3])
probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height",
                        "-of", "csv=p=0", path], capture_output=True, text=True, check=True).stdout.split(",")
w, h = int(probe[0]), int(probe[1])
raw = subprocess.run(["ffmpeg", "-loglevel", "error", "-i", path, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                     capture_output=True, check=True).stdout
fb = w * h * 3
n = len(raw) // fb
def hit(r, g, b):  # the world's red (220, 40, 40) and blue (40, 80, 220), allowing for blur
    if colour == "red": return r > g + 40 and r > b + 40
    return b > r + 40 and b > g + 40
xs = []
for f in range(n):
    fr = raw[f * fb:(f + 1) * fb]
    cnt = sx = 0
    for i in range(w * h):
        if hit(fr[3 * i], fr[3 * i + 1], fr[3 * i + 2]):
            cnt += 1; sx += i % w
    if cnt >= 4: xs.append((f, sx / cnt))
print(f"{path}: {n} frames {w}x{h}; {colour} blob in {len(xs)} frames; centroid x every 2nd frame of the first "
      "half second:", " ".join(f"{x:.0f}" for f, x in xs if f < 12 and f % 2 == 0))
if n != 96 or (w, h) != (64, 64): print("FAIL: want 96 frames at 64x64"); sys.exit(1)
if len(xs) < n // 2: print(f"FAIL: the {colour} blob is in {len(xs)} of {n} frames (want >= {n // 2})"); sys.exit(1)
first = [(f, x) for f, x in xs if f < 12]
if len(first) < 8: print(f"FAIL: the {colour} blob is in {len(first)} of the first 12 frames (want >= 8)"); sys.exit(1)
fm = sum(f for f, _ in first) / len(first); xm = sum(x for _, x in first) / len(first)
slope = sum((f - fm) * (x - xm) for f, x in first) / sum((f - fm) ** 2 for f, _ in first)
early = [x for f, x in first if f < 4]; late = [x for f, x in first if f >= 8]
if not early or not late: print("FAIL: no blob in frames 0-3 or 8-11"); sys.exit(1)
shift = sum(late) / len(late) - sum(early) / len(early)
print(f"frames 0-11: slope {slope:.2f} px/frame, shift {shift:.1f} px from frames 0-3 to 8-11 "
      f"(want the sign {direction:+d}, at least 3 px)")
if slope * direction <= 0 or shift * direction < 3: print("FAIL: the blob does not move that way"); sys.exit(1)
PY
}

"$MAGI" generate --model_dir "$SET" --quiet --prompt "a red ball rolls to the right" --frames 96 --width 64 \
  --height 64 --output "$WORK/red.mp4"
failed=0
check_motion "$WORK/red.mp4" red 1 || failed=1
"$MAGI" generate --model_dir "$SET" --quiet --prompt "a blue ball rolls to the left" --frames 96 --width 64 \
  --height 64 --output "$WORK/blue.mp4"
check_motion "$WORK/blue.mp4" blue -1 || failed=1

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
