#!/usr/bin/env bash
# train_tiny.sh OUT_DIR -- trains the tiny world model set from scratch on the synthetic physics
# world (issue #17; docs/training.md): the ViT VAE, then the DiT around it, then the
# Physics-IQ-style continuation eval of the result next to its baselines. Everything is seeded:
# the same command on the same host reproduces the same set. The thirteenth session's recipe
# (docs/training.md): a VAE of width 768 with one block each way, the least whose decoder can
# make colour (3 channels per pixel before its last convolution; width 256 paints every object
# brown), with the colour anchor; then the 4-layer DiT with caption dropout and a moving
# average of the weights, on 2048 scenes for 17000 steps so that both fit the hour on 2 cores
# (about 17 + 33 minutes measured, AMD EPYC), then the eval (20 s).
# Env: BUILD (default build), VAE_STEPS (2000), DIT_STEPS (17000), EVAL_SCENES (20), THREADS (2).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:?usage: scripts/train_tiny.sh OUT_DIR}"
BUILD="${BUILD:-build}"
TRAIN="$BUILD/tools/train_tiny/magi-train-tiny"
[[ -x $TRAIN ]] || { echo "train_tiny: $TRAIN is missing; build first (scripts/build.sh)" >&2; exit 1; }
mkdir -p "$OUT"
start=$(date +%s)
"$TRAIN" vae --out "$OUT/vae" --steps "${VAE_STEPS:-2000}" --batch 4 --frames 12 --size 64 --lr 1e-3 \
  --kl_weight 1e-6 --colour_anchor 0.1 --embed 768 --layers 1 --seed 1 --threads "${THREADS:-2}" --log_every 100 |
  tee "$OUT/vae.log"
"$TRAIN" dit --out "$OUT/set" --vae "$OUT/vae" --layers 4 --steps "${DIT_STEPS:-17000}" --batch 4 \
  --scenes 2048 --chunks 4 --size 64 --lr 2e-3 --v2v_fraction 0.6 --caption_dropout 0.2 --ema 0.999 --seed 1 \
  --threads "${THREADS:-2}" --log_every 100 | tee "$OUT/dit.log"
echo "trained in $(( $(date +%s) - start )) s: $OUT/set"
SIZE=64 scripts/eval_physics.sh "$OUT/set" "${EVAL_SCENES:-20}" 1 | tee "$OUT/eval.txt"
