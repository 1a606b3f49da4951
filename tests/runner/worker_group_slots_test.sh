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
group_two_jobs_at_once "$LAYOUT two slots" "$WORK/state/models/tiny" A B
# 3.
group_cancel_then_next 960
# 4.
group_stop
echo "PASS: a $LAYOUT group with two slots ran two jobs at once, each with its one-process frames, agreed on a cancel, and stopped with the server"
