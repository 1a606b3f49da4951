#!/usr/bin/env bash
# Several jobs per rank group: a group of two rank processes over Gloo (TP=2, or the layout in
# the 3rd argument, e.g. --cp=2) with --max_jobs_per_group 2 behind magi-server:
#  1. the launcher starts exactly two rank processes, and rank 0 registers two slots;
#  2. two jobs submitted at once run at the same time (a forward took a call of each), each on both
#     ranks in its own slot, their same-shaped DiT calls batched in forwards whose order rank 0
#     announces; each video equals a one-process run of its request up to the fp32
#     reduction order (mean |diff| < 0.25, < 5% of bytes; the batched GEMMs round like TP's);
#  3. agreed cancellation still frees the group's slot at once;
#  4. stopping the server stops both rank processes.
# (CFG-parallel groups with two slots: cfg_group_test.sh SERVER MAGI 2.)
set -euo pipefail
SERVER="$1"
MAGI="$2"
LAYOUT="${3:---tp=2}"
WORK=$(mktemp -d)
source "$(dirname "$0")/group_test_lib.sh"
trap group_cleanup EXIT

group_start "$LAYOUT --max_jobs_per_group=2"
# 1.
group_expect_ranks 2
# 2. Two jobs at once; each equals its one-process run.
A=(--prompt "a fox in the snow" --frames 240 --width 64 --height 48 --seed 5)
B=(--prompt "a boat on a lake" --frames 192 --width 64 --height 48 --seed 9 --steps 12)
"$MAGI" generate "${SRV[@]}" "${A[@]}" --output "$WORK/a2.mp4" >/dev/null &
ga=$!
"$MAGI" generate "${SRV[@]}" "${B[@]}" --output "$WORK/b2.mp4" >/dev/null &
gb=$!
wait "$ga" || fail "job A failed on the two-slot group"
wait "$gb" || fail "job B failed on the two-slot group"
# They ran at once, their calls sharing forwards: the leader's count after both jobs (a
# forward of 2 calls holds one call of each job). Polling the job states instead missed the
# overlap of these 2-second jobs on a loaded machine.
last=$(grep -o "DiT calls so far: [0-9]* in [0-9]* forwards, widest [0-9]*" "$WORK/err.txt" | tail -1)
echo "rank 0: $last"
read -r calls forwards widest < <(echo "$last" | sed -E 's/.*: ([0-9]+) in ([0-9]+) forwards, widest ([0-9]+)/\1 \2 \3/')
[ "${widest:-0}" = 2 ] && [ "$forwards" -lt "$calls" ] || fail "the two jobs' DiT calls never shared a forward ($last)"
"$MAGI" generate --model_dir "$WORK/state/models/tiny" --quiet "${A[@]}" --output "$WORK/a1.mp4"
"$MAGI" generate --model_dir "$WORK/state/models/tiny" --quiet "${B[@]}" --output "$WORK/b1.mp4"
group_compare_frames "$WORK/a1.mp4" "$WORK/a2.mp4" "job A: $LAYOUT two slots vs one process"
group_compare_frames "$WORK/b1.mp4" "$WORK/b2.mp4" "job B: $LAYOUT two slots vs one process"
# 3.
group_cancel_then_next 960
# 4.
group_stop
echo "PASS: a $LAYOUT group with two slots ran two jobs at once, each with its one-process frames, agreed on a cancel, and stopped with the server"
