#!/usr/bin/env bash
# train_tiny.sh OUT_DIR -- trains the tiny world model set from scratch on the synthetic physics
# world (issue #17; docs/training.md): the ViT VAE, then the DiT around it, then the
# Physics-IQ-style continuation eval of the result next to its baselines. Everything is seeded:
# the same command on the same host reproduces the same set. The fourteenth session's recipe
# (docs/training.md): a VAE of width 768 with one block each way, the least whose decoder can
# make colour (3 channels per pixel before its last convolution; width 256 paints every object
# brown), with the colour anchor and its position table on the 64 x 64 grid; then the 4-layer
# DiT with caption dropout and a moving average of the weights, on 4096 scenes for 20000
# steps; both stored in float16 (an 18 MB set); then the eval (20 s). Run whole on AMD EPYC,
# 2 cores, with the DiT's batches taken costliest first: "trained in 3512 s", 58.5 minutes
# (VAE 11.8, DiT 46.6; fifteenth session, docs/training.md). On an Intel Xeon @ 2.80 GHz the
# VAE took 16.2 minutes and the DiT's steps 0.17-0.20 s: about 80 minutes, estimated (sixteenth session).
# Env: BUILD (default build), VAE_STEPS (2000), DIT_STEPS (20000), EVAL_SCENES (20), THREADS (2).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:?usage: scripts/train_tiny.sh OUT_DIR}"
BUILD="${BUILD:-build}"
TRAIN="$BUILD/tools/train_tiny/magi-train-tiny"
[[ -x $TRAIN ]] || { echo "train_tiny: $TRAIN is missing; build first (scripts/build.sh)" >&2; exit 1; }
mkdir -p "$OUT"
start=$(date +%s)
"$TRAIN" vae --out "$OUT/vae" --steps "${VAE_STEPS:-2000}" --batch 4 --frames 12 --size 64 --lr 1e-3 \
  --kl_weight 1e-6 --colour_anchor 0.1 --embed 768 --layers 1 --store_dtype float16 --seed 1 --threads "${THREADS:-2}" --log_every 100 |
  tee "$OUT/vae.log"
"$TRAIN" dit --out "$OUT/set" --vae "$OUT/vae" --layers 4 --steps "${DIT_STEPS:-20000}" --batch 4 \
  --scenes 4096 --chunks 4 --size 64 --lr 2e-3 --v2v_fraction 0.6 --caption_dropout 0.2 --ema 0.999 --store_dtype float16 --seed 1 \
  --threads "${THREADS:-2}" --log_every 100 | tee "$OUT/dit.log"
echo "trained in $(( $(date +%s) - start )) s: $OUT/set"
SIZE=64 scripts/eval_physics.sh "$OUT/set" "${EVAL_SCENES:-20}" 1 | tee "$OUT/eval.txt"
