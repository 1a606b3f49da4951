#!/usr/bin/env bash
# Writes small valid seed inputs for fuzz_media_decode into DIR (default build-fuzz/seeds,
# ignored by git): JPEG, PNG (rgb, rgba, palette, 16-bit), WebP (lossy, lossless), MP4
# (H.264 with and without faststart, rotated), MOV (ProRes), WebM (VP9, VP8). Needs ffmpeg.
set -euo pipefail
dir="${1:-$(dirname "$0")/../build-fuzz/seeds}"
mkdir -p "$dir"
ff() { ffmpeg -v error -nostdin -y "$@"; }
src=(-f lavfi -i testsrc2=size=48x32:rate=24)
ff "${src[@]}" -frames:v 1 "$dir/a.jpg"
ff "${src[@]}" -frames:v 1 -pix_fmt yuvj444p "$dir/b.jpg"
ff "${src[@]}" -frames:v 1 "$dir/c.png"
ff "${src[@]}" -frames:v 1 -pix_fmt rgba "$dir/d.png"
ff "${src[@]}" -frames:v 1 -pix_fmt pal8 "$dir/e.png"
ff "${src[@]}" -frames:v 1 -pix_fmt rgb48be "$dir/f.png"
ff "${src[@]}" -frames:v 1 -c:v libwebp "$dir/g.webp"
ff "${src[@]}" -frames:v 1 -c:v libwebp -lossless 1 "$dir/h.webp"
ff "${src[@]}" -frames:v 6 -c:v libx264 -preset ultrafast "$dir/i.mp4"
ff "${src[@]}" -frames:v 6 -c:v libx264 -movflags +faststart "$dir/j.mp4"
ff -i "$dir/i.mp4" -c copy -metadata:s:v:0 rotate=90 "$dir/k.mp4"
ff "${src[@]}" -frames:v 3 -c:v prores "$dir/l.mov"
ff "${src[@]}" -frames:v 6 -c:v libvpx-vp9 -deadline realtime -cpu-used 8 "$dir/m.webm"
ff "${src[@]}" -frames:v 6 -c:v libvpx -deadline realtime "$dir/n.webm"
ls -l "$dir"
