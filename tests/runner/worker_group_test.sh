#!/usr/bin/env bash
# A worker group of two rank processes (TP=2 over Gloo) behind magi-server:
#  1. the launcher (the server's child) starts exactly two rank processes, and rank 0 registers;
#  2. a job through the CLI streams 4 chunks, and its frames equal a TP=1 run of the same request
#     (`magi generate --model_dir`, one process) up to the fp32 reduction order: decoded frames
#     differ by < 0.25 on average and in < 5% of the bytes (measured: 0.016 and 0.6%; a
#     different seed gives 25.6 and 98%, a rank that skipped its all-reduce far more than 0.25);
#  3. agreed cancellation: a long job cancelled after its first chunk frees the group within a
#     few seconds (the slot stays busy until the ranks report the job done, so a group that kept
#     computing would hold the next job back for the rest of the long one), and both rank
#     processes survive it and serve the next job;
#  4. stopping the server stops every rank process of the group.
set -euo pipefail
SERVER="$1"
MAGI="$2"
WORK=$(mktemp -d)
source "$(dirname "$0")/group_test_lib.sh"
trap group_cleanup EXIT

group_start "--tp=2"
# 1.
group_expect_ranks 2
# 2. TP=2 served == TP=1 local.
REQ=(--prompt "a fox in the snow" --frames 96 --width 64 --height 48)
"$MAGI" generate "${SRV[@]}" "${REQ[@]}" --output "$WORK/tp2.mp4" >/dev/null
n=$(ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=codec_name,nb_read_frames -of csv=p=0 "$WORK/tp2.mp4")
[ "$n" = "h264,96" ] || fail "the TP=2 group's video is '$n', expected h264,96"
"$MAGI" generate --model_dir "$WORK/state/models/tiny" --quiet "${REQ[@]}" --output "$WORK/tp1.mp4"
group_compare_frames "$WORK/tp1.mp4" "$WORK/tp2.mp4" "TP=2 vs TP=1"
# 3. Agreed cancellation. 40 chunks x 32 steps: ~20 s of work on this model.
group_cancel_then_next 960
# 4.
group_stop
echo "PASS: a TP=2 group (2 ranks) served the TP=1 frames, agreed on a cancel, and stopped with the server"
