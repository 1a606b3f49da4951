# Shared steps of the worker-group script tests (sourced; the caller sets SERVER, MAGI, WORK,
# `set -euo pipefail`, and calls group_cleanup from its EXIT trap).
#   group_start "WORKER_ARGS" [SERVER_FLAG...]  magi-server with one local group; sets PID, SRV
#   group_expect_ranks N                        one launcher under the server, N ranks under it;
#                                               sets launcher, ranks
#   group_compare_frames A.mp4 B.mp4 LABEL      decoded RGB: mean |diff| < 0.25, < 5% bytes differ
#   group_two_jobs_at_once LABEL MODEL_DIR A B [MAGI_FLAG...]
#                                               the requests in the arrays named A and B submitted
#                                               at once: rank 0's count shows their DiT calls
#                                               shared a forward, and each video equals a
#                                               one-process run of it on MODEL_DIR
#   group_cancel_then_next FRAMES [MAGI_FLAG...] a long job cancelled after its first chunk frees
#                                               the group at once (the next 24-frame job < 8 s)
#   group_stop                                  SIGTERM: exit 0, no worker process left

fail() { echo "FAIL: $*"; exit 1; }

group_cleanup() {
  [ -n "${PID:-}" ] && kill -TERM "$PID" 2>/dev/null || true
  sleep 1
  pkill -KILL -f "$WORK/state" 2>/dev/null || true
  rm -rf "$WORK"
}

group_start() {
  local worker_args="$1"
  shift
  "$SERVER" --listen=127.0.0.1:0 --http_listen=127.0.0.1:0 --api_listen= --state_dir="$WORK/state" --local_workers=1 \
    --worker_args="$worker_args" "$@" >"$WORK/out.txt" 2>"$WORK/err.txt" &
  PID=$!
  for _ in $(seq 1 150); do
    grep -q "registered" "$WORK/err.txt" 2>/dev/null && break
    sleep 0.2
  done
  grep -q "registered" "$WORK/err.txt" || { cat "$WORK/err.txt"; fail "the worker group ($worker_args) never registered"; }
  local port
  port=$(grep -o "grpc=127.0.0.1:[0-9]*" "$WORK/out.txt" | cut -d: -f2)
  SRV=(--server "127.0.0.1:$port")
}

group_expect_ranks() {
  # The server's one child is the launcher; its children are the ranks (matching command lines
  # would also count the server, whose --worker_args holds the same flags).
  launcher=$(pgrep -P "$PID" -f magi-worker || true)
  [ "$(echo "$launcher" | grep -c .)" = 1 ] || fail "expected one launcher process under the server, found '$launcher'"
  ranks=$(pgrep -P "$launcher" -f magi-worker | sort)
  [ "$(echo "$ranks" | grep -c .)" = "$1" ] || fail "expected $1 rank processes under the launcher, found '$ranks'"
}

group_compare_frames() {
  local a="$1" b="$2" label="$3"
  for f in "$a" "$b"; do ffmpeg -v error -y -i "$f" -f rawvideo -pix_fmt rgb24 "$f.rgb"; done
  python3 - "$a.rgb" "$b.rgb" "$label" <<'EOF'
import sys
a = open(sys.argv[1], "rb").read()
b = open(sys.argv[2], "rb").read()
label = sys.argv[3]
if len(a) != len(b) or not a:
    sys.exit(f"FAIL: {label}: decoded to {len(a)} and {len(b)} bytes")
diff = [abs(x - y) for x, y in zip(a, b)]
mean = sum(diff) / len(diff)
frac = sum(1 for d in diff if d) / len(diff)
print(f"{label}, decoded frames: mean |diff| {mean:.4f}, {100 * frac:.2f}% of bytes differ, max {max(diff)}")
if mean >= 0.25 or frac >= 0.05:
    sys.exit(f"FAIL: {label}: the frames differ")
EOF
}

group_two_jobs_at_once() {
  local label="$1" model_dir="$2"
  local -n job_a="$3" job_b="$4"
  shift 4
  local ga gb last calls forwards widest
  "$MAGI" generate "${SRV[@]}" "$@" "${job_a[@]}" --output "$WORK/a2.mp4" >/dev/null &
  ga=$!
  "$MAGI" generate "${SRV[@]}" "$@" "${job_b[@]}" --output "$WORK/b2.mp4" >/dev/null &
  gb=$!
  wait "$ga" || fail "job A failed on the $label group"
  wait "$gb" || fail "job B failed on the $label group"
  # They ran at once, their calls sharing forwards: the leader's count after both jobs (a
  # forward of 2 calls holds one call of each job). Polling the job states instead missed the
  # overlap of these 2-second jobs on a loaded machine.
  last=$(grep -o "DiT calls so far: [0-9]* in [0-9]* forwards, widest [0-9]*" "$WORK/err.txt" | tail -1)
  echo "rank 0: $last"
  read -r calls forwards widest < <(echo "$last" | sed -E 's/.*: ([0-9]+) in ([0-9]+) forwards, widest ([0-9]+)/\1 \2 \3/')
  [ "${widest:-0}" = 2 ] && [ "$forwards" -lt "$calls" ] || fail "the two jobs' DiT calls never shared a forward ($last)"
  "$MAGI" generate --model_dir "$model_dir" --quiet "${job_a[@]}" --output "$WORK/a1.mp4"
  "$MAGI" generate --model_dir "$model_dir" --quiet "${job_b[@]}" --output "$WORK/b1.mp4"
  group_compare_frames "$WORK/a1.mp4" "$WORK/a2.mp4" "job A: $label vs one process"
  group_compare_frames "$WORK/b1.mp4" "$WORK/b2.mp4" "job B: $label vs one process"
}

group_cancel_then_next() {
  local frames="$1"
  shift
  local jid done_chunks=0 t0 ms state
  jid=$("$MAGI" submit "${SRV[@]}" "$@" --prompt "a long one" --frames "$frames" --steps 32 --width 64 --height 48 --json |
        python3 -c "import sys, json; print(json.loads(sys.stdin.readline())['job_id'])")
  for _ in $(seq 1 300); do
    done_chunks=$("$MAGI" get "${SRV[@]}" "$jid" --json | python3 -c "import sys, json; print(json.loads(sys.stdin.readline()).get('chunks_done', 0))")
    [ "$done_chunks" -ge 1 ] && break
    sleep 0.1
  done
  [ "$done_chunks" -ge 1 ] || fail "the long job made no chunk in 30 s"
  "$MAGI" cancel "${SRV[@]}" "$jid" >/dev/null
  t0=$(date +%s%N)
  timeout 60 "$MAGI" generate "${SRV[@]}" "$@" --prompt "the next one" --frames 24 --width 64 --height 48 \
    --output "$WORK/next.mp4" >/dev/null || fail "the job after a cancelled one did not finish within 60 s"
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  state=$("$MAGI" get "${SRV[@]}" "$jid" --json | python3 -c "import sys, json; print(json.loads(sys.stdin.readline())['state'])")
  [ "$state" = JOB_STATE_CANCELLED ] || fail "the cancelled job is $state"
  [ "$ms" -lt 8000 ] || fail "the job after a cancelled one took $ms ms: the group kept computing the cancelled job"
  echo "a job submitted after cancelling a long one finished in $ms ms"
  [ "$(pgrep -P "$launcher" -f magi-worker | sort)" = "$ranks" ] || fail "the rank processes changed across the cancel"
}

group_stop() {
  kill -TERM "$PID"
  wait "$PID" || fail "magi-server exited with status $? on SIGTERM"
  PID=
  sleep 2
  local left
  left=$( (pgrep -f -- "$WORK/state" || true) | wc -l)
  [ "$left" = 0 ] || fail "$left worker processes outlived the server"
}
