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
fail() { echo "FAIL: $*"; exit 1; }

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

"$SERVER" --listen=127.0.0.1:0 --http_listen=127.0.0.1:0 --api_listen= --state_dir="$WORK/state" --local_workers=1 \
  --default_model=tiny-cfg3 --worker_args="--model_dir=$WORK/tiny3 --cfg=2" >"$WORK/out.txt" 2>"$WORK/err.txt" &
PID=$!
for _ in $(seq 1 150); do
  grep -q "registered" "$WORK/err.txt" 2>/dev/null && break
  sleep 0.2
done
grep -q "registered" "$WORK/err.txt" || { cat "$WORK/err.txt"; fail "the CFG-parallel group never registered"; }
port=$(grep -o "grpc=127.0.0.1:[0-9]*" "$WORK/out.txt" | cut -d: -f2)
SRV=(--server "127.0.0.1:$port")

# 1. One launcher under the server, two ranks under it.
launcher=$(pgrep -P "$PID" -f magi-worker || true)
[ "$(echo "$launcher" | grep -c .)" = 1 ] || fail "expected one launcher process under the server, found '$launcher'"
ranks=$(pgrep -P "$launcher" -f magi-worker | sort)
[ "$(echo "$ranks" | grep -c .)" = 2 ] || fail "expected 2 rank processes under the launcher, found '$ranks'"

# 2. Served by the CFG group == one process.
REQ=(--prompt "a red ball bounces to the right" --frames 72 --width 64 --height 48 --seed 3)
"$MAGI" generate "${SRV[@]}" --model tiny-cfg3 "${REQ[@]}" --output "$WORK/cfg2.mp4" >/dev/null
"$MAGI" generate --model_dir "$WORK/tiny3" --quiet "${REQ[@]}" --output "$WORK/cfg1.mp4"
for f in cfg1 cfg2; do ffmpeg -v error -i "$WORK/$f.mp4" -f rawvideo -pix_fmt rgb24 "$WORK/$f.rgb"; done
python3 - "$WORK/cfg1.rgb" "$WORK/cfg2.rgb" <<'EOF'
import sys
a = open(sys.argv[1], "rb").read()
b = open(sys.argv[2], "rb").read()
if len(a) != len(b) or not a:
    sys.exit(f"FAIL: one process decoded to {len(a)} bytes, the CFG group to {len(b)}")
diff = [abs(x - y) for x, y in zip(a, b)]
mean = sum(diff) / len(diff)
frac = sum(1 for d in diff if d) / len(diff)
print(f"CFG-parallel (2 ranks) vs one process, decoded frames: mean |diff| {mean:.4f}, {100 * frac:.2f}% of bytes differ")
if mean >= 0.25 or frac >= 0.05:
    sys.exit("FAIL: the CFG group's frames are not the single process's")
EOF

# 3. Agreed cancellation of a long job; the next job runs at once on the same ranks.
jid=$("$MAGI" submit "${SRV[@]}" --model tiny-cfg3 --prompt "a long one" --frames 480 --steps 32 --width 64 --height 48 \
      --json | python3 -c "import sys, json; print(json.loads(sys.stdin.readline())['job_id'])")
for _ in $(seq 1 300); do
  done_chunks=$("$MAGI" get "${SRV[@]}" "$jid" --json | python3 -c "import sys, json; print(json.loads(sys.stdin.readline()).get('chunks_done', 0))")
  [ "$done_chunks" -ge 1 ] && break
  sleep 0.1
done
[ "$done_chunks" -ge 1 ] || fail "the long job made no chunk in 30 s"
"$MAGI" cancel "${SRV[@]}" "$jid" >/dev/null
t0=$(date +%s%N)
timeout 60 "$MAGI" generate "${SRV[@]}" --model tiny-cfg3 --prompt "the next one" --frames 24 --width 64 --height 48 \
  --output "$WORK/next.mp4" >/dev/null || fail "the job after a cancelled one did not finish within 60 s"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
state=$("$MAGI" get "${SRV[@]}" "$jid" --json | python3 -c "import sys, json; print(json.loads(sys.stdin.readline())['state'])")
[ "$state" = JOB_STATE_CANCELLED ] || fail "the cancelled job is $state"
[ "$ms" -lt 10000 ] || fail "the job after a cancelled one took $ms ms: the group kept computing the cancelled job"
echo "a job submitted after cancelling a long one finished in $ms ms"
[ "$(pgrep -P "$launcher" -f magi-worker | sort)" = "$ranks" ] || fail "the rank processes changed across the cancel"

# 4. Stop.
kill -TERM "$PID"
wait "$PID" || fail "magi-server exited with status $? on SIGTERM"
PID=
sleep 2
left=$( (pgrep -f -- "$WORK/state" || true) | wc -l)
[ "$left" = 0 ] || fail "$left worker processes outlived the server"
echo "PASS: a CFG-parallel group (2 ranks) served the single process's frames, agreed on a cancel, and stopped with the server"
