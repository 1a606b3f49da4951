#!/usr/bin/env bash
# serve_demo.sh OUT.mp4 -- the main job, end to end: start magi-server with one local worker
# group (the default: MAGI-1 on the embedded "tiny" model, generated in out/state/models/tiny
# on first start), wait until the worker has registered, generate one video from a prompt,
# check the MP4 with ffprobe, print what was made, and stop the server with SIGTERM.
#
# The tiny model has random weights: the video is noise-like, but every stage is the real
# pipeline (T5 -> DiT AR engine with streaming chunks -> VAE decode -> H.264 fMP4).
# MODEL_DIR=DIR serves a MAGI-1 model set from DIR instead, under its serving_config.name, as
# the server's default model: e.g. the world model scripts/train_tiny.sh trains (OUT/set; its
# prompts describe the world's scenes, "a red ball rolls to the right", at 64 x 64).
#
# Environment: BUILD (default ./build), STATE (default out/state), MODEL_DIR (default: none,
# the embedded "tiny"), PROMPT, FRAMES (96 = 4 chunks of 24), WIDTH / HEIGHT (256; 64 with
# MODEL_DIR), STEPS (8), SEED (7).
set -euo pipefail

if [[ $# -ne 1 || "$1" == -h || "$1" == --help ]]; then
  echo "usage: scripts/serve_demo.sh OUT.mp4" >&2
  exit 2
fi
OUT=$(realpath -m "$1")
cd "$(dirname "$0")/.."  # repo root: ./build, out/state and proto/ are relative to it
BUILD=${BUILD:-./build}
STATE=${STATE:-out/state}
MODEL_DIR=${MODEL_DIR:-}
SERVER_MODEL_ARGS=()
MODEL_WHERE="$STATE/models/tiny"
if [[ -n $MODEL_DIR ]]; then
  [[ -f $MODEL_DIR/config.json ]] || { echo "serve_demo: MODEL_DIR $MODEL_DIR has no config.json (a MAGI-1 model set)" >&2; exit 1; }
  MODEL_DIR=$(realpath "$MODEL_DIR")
  # --worker-args is split at spaces.
  [[ $MODEL_DIR != *" "* ]] || { echo "serve_demo: MODEL_DIR '$MODEL_DIR' has a space (--worker-args splits at spaces): use a path without one" >&2; exit 1; }
  MODEL_NAME=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["serving_config"]["name"])' \
    "$MODEL_DIR/config.json")
  SERVER_MODEL_ARGS=(--worker-args="--model_dir=$MODEL_DIR" --default-model="$MODEL_NAME")
  MODEL_WHERE=$MODEL_DIR
  PROMPT=${PROMPT:-"a red ball rolls to the right"}
  WIDTH=${WIDTH:-64}
  HEIGHT=${HEIGHT:-64}
fi
PROMPT=${PROMPT:-"a red fox running through the snow, cinematic"}
FRAMES=${FRAMES:-96}
WIDTH=${WIDTH:-256}
HEIGHT=${HEIGHT:-256}
STEPS=${STEPS:-8}
SEED=${SEED:-7}
SERVER_BIN=$BUILD/server/magi-server
CLI_BIN=$BUILD/client/magi

for tool in "$SERVER_BIN" "$BUILD/worker/main/magi-worker"; do
  [[ -x $tool ]] || { echo "serve_demo: $tool is missing; build first (scripts/build.sh)" >&2; exit 1; }
done
command -v ffprobe >/dev/null || { echo "serve_demo: ffprobe is missing (Debian package ffmpeg)" >&2; exit 1; }
mkdir -p "$STATE" "$(dirname "$OUT")"
LOG=$STATE/serve_demo-server.log
WORK=$(mktemp -d)
SERVER_PID=

stop_server() {
  if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID"
    local rc=0
    wait "$SERVER_PID" || rc=$?
    if [[ $rc -ne 0 ]]; then
      echo "serve_demo: magi-server exited with status $rc after SIGTERM (want 0); log: $LOG" >&2
      SERVER_PID=
      rm -rf "$WORK"
      exit 1
    fi
    echo "serve_demo: server drained and stopped (SIGTERM, exit 0)"
  fi
  SERVER_PID=
  rm -rf "$WORK"
}
trap stop_server EXIT

# Free ports: the server picks them (port 0) and prints them on its first stdout line.
mkfifo "$WORK/stdout"
"$SERVER_BIN" --listen=127.0.0.1:0 --http-listen=127.0.0.1:0 --api-listen=127.0.0.1:0 --state-dir="$STATE" \
  --local-workers=1 "${SERVER_MODEL_ARGS[@]}" >"$WORK/stdout" 2>"$LOG" &
SERVER_PID=$!
exec 3<"$WORK/stdout"
if ! read -r -t 30 LINE <&3; then
  echo "serve_demo: magi-server did not start; log: $LOG" >&2
  tail -20 "$LOG" >&2
  exit 1
fi
[[ $LINE =~ grpc=([^[:space:]]+)\ http=([^[:space:]]+).*\ api=([^[:space:]]+) ]] || { echo "serve_demo: unexpected: $LINE" >&2; exit 1; }
ADDR=${BASH_REMATCH[1]}
HTTP=${BASH_REMATCH[2]}
API=${BASH_REMATCH[3]}
echo "serve_demo: magi-server pid $SERVER_PID, grpc $ADDR, http $HTTP, state $STATE"
echo "serve_demo: OpenAI-compatible API: http://$API/v1 (e.g. curl http://$API/v1/videos)"
curl -sf "http://$API/" | grep -c MediaSource >/dev/null || { echo "serve_demo: the viewer page at http://$API/ did not load; log: $LOG" >&2; exit 1; }
echo "serve_demo: viewer: http://$API/ (streams a video while it is made; http://$API/?prompt=a+fox&seconds=4 starts one)"

# Ready = /readyz answers 200 and a worker group has registered (the first start generates
# the tiny model set before the worker dials in).
T0=$(date +%s.%N)
for _ in $(seq 1 600); do
  if curl -fsS "http://$HTTP/readyz" >/dev/null 2>&1 &&
     curl -fsS "http://$HTTP/metrics" 2>/dev/null | grep -Ec '^magi_worker_groups_up [1-9]' >/dev/null; then
    break
  fi
  kill -0 "$SERVER_PID" 2>/dev/null || { echo "serve_demo: magi-server exited; log: $LOG" >&2; exit 1; }
  sleep 0.2
done
curl -fsS "http://$HTTP/metrics" | grep -Ec '^magi_worker_groups_up [1-9]' >/dev/null ||
  { echo "serve_demo: no worker group registered within 120 s; log: $LOG" >&2; exit 1; }
printf 'serve_demo: ready after %.1f s (model set in %s)\n' "$(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{print b-a}')" "$MODEL_WHERE"

rm -f "$OUT"
T1=$(date +%s.%N)
[[ -x $CLI_BIN ]] || { echo "serve_demo: $CLI_BIN is missing; build first (scripts/build.sh)" >&2; exit 1; }
if ! "$CLI_BIN" generate --server "$ADDR" --prompt "$PROMPT" --frames "$FRAMES" --width "$WIDTH" \
     --height "$HEIGHT" --steps "$STEPS" --seed "$SEED" --output "$OUT"; then
  echo "serve_demo: magi generate --server failed; server log: $LOG" >&2
  exit 1
fi
[[ -s $OUT ]] || { echo "serve_demo: magi generate wrote no $OUT" >&2; exit 1; }
HOW="magi generate --server (CLI)"
T2=$(date +%s.%N)

PROBE=$(ffprobe -v error -count_frames -select_streams v:0 \
  -show_entries stream=codec_name,width,height,nb_read_frames -of default=noprint_wrappers=1 "$OUT")
CODEC=$(sed -n 's/^codec_name=//p' <<<"$PROBE")
NFRAMES=$(sed -n 's/^nb_read_frames=//p' <<<"$PROBE")
if [[ $CODEC != h264 || $NFRAMES != "$FRAMES" ]]; then
  echo "serve_demo: $OUT failed the check: codec '$CODEC' (want h264), $NFRAMES frames (want $FRAMES)" >&2
  exit 1
fi
printf 'serve_demo: wrote %s via %s: h264 %sx%s, %s frames, %s bytes, generated in %.1f s\n' "$OUT" "$HOW" \
  "$(sed -n 's/^width=//p' <<<"$PROBE")" "$(sed -n 's/^height=//p' <<<"$PROBE")" "$NFRAMES" \
  "$(stat -c %s "$OUT")" "$(awk -v a="$T1" -v b="$T2" 'BEGIN{print b-a}')"
stop_server
trap - EXIT
