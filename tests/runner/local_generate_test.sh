#!/usr/bin/env bash
# `magi generate --model_dir` end to end in one process on the tiny model: a 4-chunk t2v
# with a chunk-wise prompt, the growing MP4 and per-chunk fragments checked with ffprobe,
# and a bad request refused with the field named.
set -euo pipefail
MAGI="$1"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$MAGI" generate --model_dir "$WORK/tiny" --create_tiny --quiet --prompt "a red fox in the snow" \
  --chunk_prompt 2="the fox jumps" --frames 96 --width 64 --height 48 \
  --output "$WORK/out.mp4" --fragments_dir "$WORK/frag"
got=$(ffprobe -v error -count_frames -select_streams v:0 \
  -show_entries stream=codec_name,width,height,nb_read_frames -of csv=p=0 "$WORK/out.mp4")
[ "$got" = "h264,64,48,96" ] || { echo "FAIL: out.mp4 is '$got', expected h264,64,48,96"; exit 1; }
for k in 0 1 2 3; do
  cat "$WORK/frag/init.mp4" "$WORK"/frag/chunk_00[0-$k].m4s > "$WORK/prefix.mp4"
  n=$(ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames -of csv=p=0 "$WORK/prefix.mp4")
  [ "$n" = "$(( (k + 1) * 24 ))" ] || { echo "FAIL: init + fragments 0..$k play $n frames"; exit 1; }
done
if err=$("$MAGI" generate --model_dir "$WORK/tiny" --prompt "x" --width 100 --output "$WORK/bad.mp4" 2>&1); then
  echo "FAIL: a width of 100 was accepted"; exit 1
fi
case "$err" in *width*) ;; *) echo "FAIL: the error does not name the field: $err"; exit 1 ;; esac
echo "PASS: magi generate --model_dir wrote 96 frames in 4 playable fragments"
