#!/usr/bin/env bash
# eval_physics.sh MODEL_DIR [SCENES] [SEED] -- the Physics-IQ-style continuation eval of a model
# folder (docs/physics.md): magi-physics exports each held-out scene's first 24 frames and its
# caption, `magi generate --mode v2v` (in process, the model runner) continues each one for 72
# frames at the eval size, and magi-physics scores the continuations against the true ones,
# next to the ground-truth and repeat-last-frame baselines.
# Env: BUILD (default build), SIZE (64), STEPS (the model's default).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL_DIR="${1:?usage: scripts/eval_physics.sh MODEL_DIR [SCENES] [SEED]}"
SCENES="${2:-8}"
SEED="${3:-1}"
BUILD="${BUILD:-build}"
SIZE="${SIZE:-64}"
CONTEXT=24
FRAMES=96
PHYS="$BUILD/physics/magi-physics"
MAGI="$BUILD/client/magi"
for b in "$PHYS" "$MAGI"; do [[ -x $b ]] || { echo "eval_physics: $b is missing; build first (scripts/build.sh)" >&2; exit 1; }; done
[[ -f $MODEL_DIR/config.json ]] || { echo "eval_physics: $MODEL_DIR/config.json not found (a MAGI-1 model folder)" >&2; exit 1; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$PHYS" eval --scenes "$SCENES" --seed "$SEED" --context_frames "$CONTEXT" --frames "$FRAMES" --size "$SIZE" \
  --export_context "$WORK/context" >/dev/null
OUT="$WORK/$(basename "$(cd "$MODEL_DIR" && pwd)")"  # the table names the row after it
mkdir -p "$OUT"
steps=()
[[ -n ${STEPS:-} ]] && steps=(--steps "$STEPS")
for ((i = 0; i < SCENES; i++)); do
  "$MAGI" generate --model_dir "$MODEL_DIR" --quiet --mode v2v --prefix_video "$WORK/context/scene_${i}_context.mp4" \
    --prompt "$(cat "$WORK/context/scene_${i}.txt")" --frames $((FRAMES - CONTEXT)) --width "$SIZE" --height "$SIZE" \
    "${steps[@]}" --output "$OUT/scene_${i}.mp4"
done
"$PHYS" eval --scenes "$SCENES" --seed "$SEED" --context_frames "$CONTEXT" --frames "$FRAMES" --size "$SIZE" \
  --generated "$OUT"
