#!/usr/bin/env bash
# A CFG-parallel worker group (magi-worker --cfg=2: two rank processes, each with the whole
# tiny DiT, splitting cfg_number 3's three guidance passes per step) behind magi-server:
#  1. the launcher starts exactly two rank processes and rank 0 registers;
#  2. a job through the CLI makes the frames of a one-process run of the same request (the
#     halves of the unconditional pass batch fewer chunks per GEMM: equal up to fp32 rounding;
#     measured equal);
#  3. agreed cancellation still works (every rank polls at the same points though it runs other
#     passes: a mismatch hangs the group, which the first version of CFG-parallel did);
#  4. stopping the server stops both ranks.
# With a third argument of 2 (--max_jobs_per_group=2), step 2 runs two jobs at once instead: each
# runs on both ranks in its own slot (its own CFG channel; each replica orders its own
# forwards), their DiT calls share forwards, and each video equals its one-process run.
set -euo pipefail
SERVER="$1"
MAGI="$2"
SLOTS="${3:-1}"
WORK=$(mktemp -d)
source "$(dirname "$0")/group_test_lib.sh"
trap group_cleanup EXIT

# The tiny set as a base model: cfg_number 3, not distilled, served as "tiny-cfg3".
"$MAGI" generate --model_dir "$WORK/tiny3" --create_tiny --quiet --prompt "x" --frames 24 --width 64 --height 48 \
  --output "$WORK/seed.mp4"
python3 - "$WORK/tiny3/config.json" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
c["runtime_config"]["cfg_number"] = 3
c["engine_config"]["distill"] = False
c.setdefault("serving_config", {})["name"] = "tiny-cfg3"
json.dump(c, open(sys.argv[1], "w"), indent=1)
EOF

group_start "--model_dir=$WORK/tiny3 --cfg=2 --max_jobs_per_group=$SLOTS" --default_model=tiny-cfg3
# 1.
group_expect_ranks 2
# 2. Served by the CFG group == one process.
REQ=(--prompt "a red ball bounces to the right" --frames 72 --width 64 --height 48 --seed 3)
if [ "$SLOTS" = 1 ]; then
  "$MAGI" generate "${SRV[@]}" --model tiny-cfg3 "${REQ[@]}" --output "$WORK/cfg2.mp4" >/dev/null
  "$MAGI" generate --model_dir "$WORK/tiny3" --quiet "${REQ[@]}" --output "$WORK/cfg1.mp4"
  group_compare_frames "$WORK/cfg1.mp4" "$WORK/cfg2.mp4" "CFG-parallel (2 ranks) vs one process"
else
  B=(--prompt "a boat on a lake" --frames 96 --width 64 --height 48 --seed 9 --steps 12)
  group_two_jobs_at_once "CFG-parallel (2 ranks) two-slot" "$WORK/tiny3" REQ B --model tiny-cfg3
fi
# 3.
group_cancel_then_next 480 --model tiny-cfg3
# 4.
group_stop
echo "PASS: a CFG-parallel group (2 ranks, $SLOTS slot(s)) served the single process's frames, agreed on a cancel, and stopped with the server"
