#!/usr/bin/env bash
# `magi generate --model_dir` and the same request served by magi-server (one local worker
# group on the same tiny model set) write the same bytes: both encode with the one fMP4 chunk
# writer (worker/media/fmp4_chunk_writer.h) and the encoding the JobSpec fixes. The served
# file is init segment + fragments; the local file adds the mfra tail, so the local pieces
# (--fragments_dir) are compared. Also: --fps 12 writes a 12 fps video.
set -euo pipefail
SERVER="$1"
MAGI="$2"
WORK=$(mktemp -d)
cleanup() {
  [ -n "${PID:-}" ] && kill -TERM "$PID" 2>/dev/null || true
  wait "${PID:-}" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
"$SERVER" --listen=127.0.0.1:0 --http_listen=127.0.0.1:0 --api_listen= --state_dir="$WORK/state" --local_workers=1 \
  >"$WORK/out.txt" 2>"$WORK/err.txt" &
PID=$!
for _ in $(seq 1 300); do
  grep -q "registered" "$WORK/err.txt" 2>/dev/null && break
  sleep 0.2
done
grep -q "registered" "$WORK/err.txt" || { echo "FAIL: the local worker never registered"; cat "$WORK/err.txt"; exit 1; }
port=$(grep -o "grpc=127.0.0.1:[0-9]*" "$WORK/out.txt" | cut -d: -f2)
REQ=(--prompt "a fox in the snow" --chunk_prompt 1="the fox jumps" --frames 44 --width 64 --height 48 --fps 12)
"$MAGI" generate --server "127.0.0.1:$port" --prompt "a fox in the snow" --chunk-prompt 1="the fox jumps" \
  --frames 44 --width 64 --height 48 --fps 12 --output "$WORK/served.mp4" >/dev/null
"$MAGI" generate --model_dir "$WORK/state/models/tiny" --quiet "${REQ[@]}" \
  --output "$WORK/local.mp4" --fragments_dir "$WORK/frag"
rate=$(ffprobe -v error -select_streams v:0 -show_entries stream=r_frame_rate,nb_frames -of csv=p=0 "$WORK/local.mp4")
case "$rate" in 12/1,*) ;; *) echo "FAIL: --fps 12 wrote '$rate' (r_frame_rate,nb_frames)"; exit 1 ;; esac
n=$(ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames -of csv=p=0 "$WORK/local.mp4")
[ "$n" = 44 ] || { echo "FAIL: local.mp4 has $n frames, expected 44"; exit 1; }
cat "$WORK/frag/init.mp4" "$WORK"/frag/chunk_*.m4s > "$WORK/local_pieces.mp4"
cmp "$WORK/local_pieces.mp4" "$WORK/served.mp4" || {
  echo "FAIL: the local pieces ($(stat -c %s "$WORK/local_pieces.mp4") bytes) differ from the served video" \
       "($(stat -c %s "$WORK/served.mp4") bytes)"; exit 1; }
head -c "$(stat -c %s "$WORK/served.mp4")" "$WORK/local.mp4" | cmp - "$WORK/served.mp4" || {
  echo "FAIL: local.mp4 does not start with the served bytes"; exit 1; }
echo "PASS: a local run wrote the served run's $(stat -c %s "$WORK/served.mp4") bytes, at 12 fps"
