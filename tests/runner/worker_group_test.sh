#!/usr/bin/env bash
# A worker group of two rank processes (TP=2 over Gloo) behind magi-server: the launcher
# starts the ranks, rank 0 registers and leads, a job through the CLI streams 4 chunks, and
# stopping the server stops every rank process of the group.
set -euo pipefail
SERVER="$1"
MAGI="$2"
WORK=$(mktemp -d)
cleanup() {
  [ -n "${PID:-}" ] && kill -TERM "$PID" 2>/dev/null || true
  sleep 1
  pkill -KILL -f "$WORK/state" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
"$SERVER" --listen=127.0.0.1:0 --http_listen=127.0.0.1:0 --api_listen= --state_dir="$WORK/state" --local_workers=1 \
  --worker_args="--tp=2" >"$WORK/out.txt" 2>"$WORK/err.txt" &
PID=$!
for _ in $(seq 1 100); do
  grep -q "registered" "$WORK/err.txt" 2>/dev/null && break
  sleep 0.2
done
grep -q "registered" "$WORK/err.txt" || { echo "FAIL: the TP=2 group never registered"; cat "$WORK/err.txt"; exit 1; }
port=$(grep -o "grpc=127.0.0.1:[0-9]*" "$WORK/out.txt" | cut -d: -f2)
ranks=$( (pgrep -f -- "--tp=2" || true) | wc -l)
[ "$ranks" -ge 3 ] || { echo "FAIL: expected a launcher and 2 ranks, found $ranks processes"; exit 1; }
"$MAGI" generate --server "127.0.0.1:$port" --prompt "a fox in the snow" --frames 96 --width 64 --height 48 \
  --output "$WORK/v.mp4" >/dev/null
n=$(ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=codec_name,nb_read_frames -of csv=p=0 "$WORK/v.mp4")
[ "$n" = "h264,96" ] || { echo "FAIL: the TP=2 group's video is '$n', expected h264,96"; exit 1; }
kill -TERM "$PID"
wait "$PID" || true
PID=
sleep 2
left=$( (pgrep -f -- "$WORK/state" || true) | wc -l)
[ "$left" = 0 ] || { echo "FAIL: $left worker processes outlived the server"; exit 1; }
echo "PASS: a TP=2 worker group served a 96-frame job and stopped with the server"
