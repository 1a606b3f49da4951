#!/usr/bin/env bash
# train_tiny.sh OUT_DIR -- trains the tiny world model set from scratch on the synthetic physics
# world (issue #17; docs/training.md): the ViT VAE, then the DiT around it, then the
# Physics-IQ-style continuation eval of the result next to its baselines. Everything is seeded:
# the same command on the same host reproduces the same set. The third recipe of
# docs/training.md (timed whole: 57.4 minutes on 2 cores, AMD EPYC) with caption dropout, a
# moving average of the weights, and the VAE's colour anchor (about 60 minutes: an estimate from
# its two steps' times, 767.8 s + 2951.7 s with measures this script does not take), then the
# eval (20 s).
# Env: BUILD (default build), VAE_STEPS (3000), DIT_STEPS (20000), EVAL_SCENES (20), THREADS (2).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:?usage: scripts/train_tiny.sh OUT_DIR}"
BUILD="${BUILD:-build}"
TRAIN="$BUILD/tools/train_tiny/magi-train-tiny"
[[ -x $TRAIN ]] || { echo "train_tiny: $TRAIN is missing; build first (scripts/build.sh)" >&2; exit 1; }
mkdir -p "$OUT"
start=$(date +%s)
"$TRAIN" vae --out "$OUT/vae" --steps "${VAE_STEPS:-3000}" --batch 8 --frames 12 --size 64 --lr 1e-3 \
  --kl_weight 1e-6 --colour_anchor 0.1 --seed 1 --threads "${THREADS:-2}" --log_every 100 | tee "$OUT/vae.log"
"$TRAIN" dit --out "$OUT/set" --vae "$OUT/vae" --layers 4 --steps "${DIT_STEPS:-20000}" --batch 4 \
  --scenes 4096 --chunks 4 --size 64 --lr 2e-3 --v2v_fraction 0.6 --caption_dropout 0.2 --ema 0.999 --seed 1 \
  --threads "${THREADS:-2}" --log_every 100 | tee "$OUT/dit.log"
echo "trained in $(( $(date +%s) - start )) s: $OUT/set"
SIZE=64 scripts/eval_physics.sh "$OUT/set" "${EVAL_SCENES:-20}" 1 | tee "$OUT/eval.txt"
