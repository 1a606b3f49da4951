#!/bin/bash
# config_m.sh: config-M same-run benchmark, magi-serve `magi generate` against the MAGI-1 Python
# reference on CPU (issue #16 item 3). Manual benchmark, not part of CI.
#
#   bench/config_m.sh [--ours-only | --ref-only] [--schedule reference|stream_first]
#                     [--kv-cache windowed|dense] [--out-dir DIR] [--magi PATH]
#                     [--ours-arg ARG]...   (ARG passed on to `magi generate`, e.g.
#                                            --ours-arg=--lead-kv-budget-mb=-1)
#
# Inputs: the folder written by /work/shared/reference-bench/make_inputs_M.py (weights_M, caption_M,
# noise_M .safetensors) and that folder's config_M.json; the reference harness is
# /work/shared/reference-bench/run_ref.sh (see its README.md for the one-time set-up).
#
# What runs, one after the other in this one invocation:
#   1. ours:      magi generate --config (model/runtime/engine sections of config_M.json)
#                 --weights weights_M --captions (caption_embs [800,4096], emb_masks [800])
#                 --noise noise_M --threads $THREADS, under /usr/bin/time -v
#   2. reference: run_ref.sh gen (when MAGI_REF holds the export and $PYTHON imports torch)
# Both get THREADS (default 2) as OPENBLAS_NUM_THREADS / OMP_NUM_THREADS and run_ref.sh's
# OPENBLAS_CORETYPE rule (SkylakeX on AVX-512 CPUs when unset). Then one table: whole generation,
# first chunk, peak RSS, final-latent mean/std/absmax, ratios ours/reference against the targets
# (first chunk <= 0.25x, whole generation <= 0.65x, our peak RSS <= 1.2 GB), foreign_cores of both.
# Run it on a quiet machine and only trust runs with foreign_cores near 0.
#
# Environment:
#   MAGI_PERF_INPUTS   make_inputs_M.py output          (default /tmp/perfM)
#   MAGI_REF           SandAI-org/MAGI-1 @ 6ff822e export (default /tmp/magi_ref)
#   REF_BENCH          reference harness folder         (default /work/shared/reference-bench)
#   MAGI_BIN           magi CLI                          (default build/client/magi)
#   THREADS            threads for both sides            (default 2)
#   PYTHON             interpreter with torch + numpy    (default /usr/bin/python3)
#   OUT_DIR            raw outputs                       (default /tmp/configm, smoke: /tmp/configm-smoke)
# Smoke-test knobs: they change the workload, so NEVER use their timings (the table says SMOKE):
#   MAGI_BENCH_LAYERS=N       both sides: N transformer layers (ours gets a config with num_layers N
#                             and a weights file cut to layers 0..N-1)
#   MAGI_BENCH_NUM_FRAMES=F   both sides: F frames (ours then draws its own noise from seed 1234)
#   MAGI_BENCH_MAX_FORWARDS=K reference only (stops after K forwards); ours runs its whole schedule
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
RUN_OURS=1 RUN_REF=1 SCHEDULE="" KV_CACHE=""
OURS_ARGS=()
OUT_DIR="${OUT_DIR:-}"
MAGI_BIN="${MAGI_BIN:-$ROOT/build/client/magi}"
usage() { sed -n '2,35p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --ours-only) RUN_REF=0 ;;
    --ref-only) RUN_OURS=0 ;;
    --schedule) SCHEDULE="${2:?--schedule needs a value}"; shift ;;
    --schedule=*) SCHEDULE="${1#*=}" ;;
    --kv-cache) KV_CACHE="${2:?--kv-cache needs a value}"; shift ;;
    --kv-cache=*) KV_CACHE="${1#*=}" ;;
    --ours-arg) OURS_ARGS+=("${2:?--ours-arg needs a value}"); shift ;;
    --ours-arg=*) OURS_ARGS+=("${1#*=}") ;;
    --out-dir) OUT_DIR="${2:?--out-dir needs a value}"; shift ;;
    --out-dir=*) OUT_DIR="${1#*=}" ;;
    --magi) MAGI_BIN="${2:?--magi needs a value}"; shift ;;
    --magi=*) MAGI_BIN="${1#*=}" ;;
    -h|--help) usage; exit 0 ;;
    *) echo "config_m.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
if [ "$RUN_OURS" = 0 ] && [ "$RUN_REF" = 0 ]; then echo "config_m.sh: --ours-only and --ref-only exclude each other" >&2; exit 2; fi
case "$SCHEDULE" in ""|reference|stream_first) ;; *) echo "config_m.sh: --schedule must be reference or stream_first" >&2; exit 2 ;; esac

export MAGI_PERF_INPUTS="${MAGI_PERF_INPUTS:-/tmp/perfM}"
export MAGI_REF="${MAGI_REF:-/tmp/magi_ref}"
REF_BENCH="${REF_BENCH:-/work/shared/reference-bench}"
PYTHON="${PYTHON:-/usr/bin/python3}"
export THREADS="${THREADS:-2}"
SMOKE=""
for k in MAGI_BENCH_LAYERS MAGI_BENCH_NUM_FRAMES MAGI_BENCH_MAX_FORWARDS; do
  if [ -n "${!k:-}" ] && [ "${!k}" != 0 ]; then SMOKE="$SMOKE $k=${!k}"; fi
done
SMOKE="${SMOKE# }"
if [ -z "$OUT_DIR" ]; then
  if [ -n "$SMOKE" ]; then OUT_DIR=/tmp/configm-smoke; else OUT_DIR=/tmp/configm; fi
fi
mkdir -p "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"

# Same BLAS environment as run_ref.sh.
if [ -z "${OPENBLAS_CORETYPE:-}" ] && grep -qw avx512f /proc/cpuinfo; then
  export OPENBLAS_CORETYPE=SkylakeX
fi
export OPENBLAS_NUM_THREADS="$THREADS" OMP_NUM_THREADS="$THREADS"

for f in weights_M.safetensors caption_M.safetensors noise_M.safetensors; do
  if [ ! -f "$MAGI_PERF_INPUTS/$f" ]; then
    echo "config_m.sh: $MAGI_PERF_INPUTS/$f missing: run $PYTHON $REF_BENCH/make_inputs_M.py $MAGI_PERF_INPUTS" >&2
    exit 1
  fi
done
[ -f "$REF_BENCH/config_M.json" ] || { echo "config_m.sh: no $REF_BENCH/config_M.json" >&2; exit 1; }
if [ -n "$SMOKE" ]; then
  echo "config_m.sh: SMOKE TEST ($SMOKE): the workload differs from config M; timings are NOT for comparison" >&2
fi

# Can the reference run here?
REF_WHY=""
if [ "$RUN_REF" = 0 ]; then
  REF_WHY="--ours-only"
elif [ ! -f "$MAGI_REF/inference/model/dit/dit_module.py" ]; then
  REF_WHY="no MAGI-1 export at MAGI_REF=$MAGI_REF"
elif [ ! -x "$REF_BENCH/run_ref.sh" ]; then
  REF_WHY="no harness at $REF_BENCH/run_ref.sh"
elif ! "$PYTHON" -c 'import torch, numpy' >/dev/null 2>&1; then
  REF_WHY="$PYTHON cannot import torch and numpy"
fi

proc_stat() { head -1 /proc/stat; }

# ---------------------------------------------------------------------------------------------
# ours
# ---------------------------------------------------------------------------------------------
if [ "$RUN_OURS" = 1 ]; then
  [ -x "$MAGI_BIN" ] || { echo "config_m.sh: no magi CLI at $MAGI_BIN (build it, or --magi PATH)" >&2; exit 1; }
  echo "config_m.sh: preparing ours' inputs in $OUT_DIR" >&2
  # Config (model/runtime/engine sections only), captions reshaped to [800,4096] / [800], and for
  # MAGI_BENCH_LAYERS a weights file cut to the first N layers. Header rewrites only: the tensor
  # bytes are copied unchanged (stdlib only).
  "$PYTHON" - "$REF_BENCH/config_M.json" "$MAGI_PERF_INPUTS" "$OUT_DIR" "${MAGI_BENCH_LAYERS:-0}" <<'EOF'
import json, os, re, struct, sys
cfg_path, inputs, out, layers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4] or 0)
cfg = json.load(open(cfg_path))
c = {k: cfg[k] for k in ("model_config", "runtime_config", "engine_config")}
if layers:
    c["model_config"]["num_layers"] = layers
json.dump(c, open(os.path.join(out, "config_M_magi.json"), "w"), indent=1)

def read_header(path):
    f = open(path, "rb")
    n = struct.unpack("<Q", f.read(8))[0]
    return f, json.loads(f.read(n)), 8 + n

def write(path, src, hdr, base, keys, rename=lambda k: k, reshape=lambda k, s: s):
    new, off = {}, 0
    for k in keys:
        b, e = hdr[k]["data_offsets"]
        new[rename(k)] = dict(dtype=hdr[k]["dtype"], shape=reshape(k, hdr[k]["shape"]), data_offsets=[off, off + e - b])
        off += e - b
    h = json.dumps(new, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as o:
        o.write(struct.pack("<Q", len(h)))
        o.write(h)
        for k in keys:
            b, e = hdr[k]["data_offsets"]
            src.seek(base + b)
            left = e - b
            while left:
                chunk = src.read(min(left, 1 << 24))
                o.write(chunk)
                left -= len(chunk)

f, hdr, base = read_header(os.path.join(inputs, "caption_M.safetensors"))
shapes = {"input.caption_embs": hdr["input.caption_embs"]["shape"][-2:], "input.emb_masks": hdr["input.emb_masks"]["shape"][-1:]}
write(os.path.join(out, "captions_M_magi.safetensors"), f, hdr, base, ["input.caption_embs", "input.emb_masks"],
      rename=lambda k: k[len("input."):], reshape=lambda k, s: shapes[k])
print("captions: caption_embs %s, emb_masks %s (%s)" % (shapes["input.caption_embs"], shapes["input.emb_masks"],
      hdr["input.emb_masks"]["dtype"]), file=sys.stderr)
if layers:
    f, hdr, base = read_header(os.path.join(inputs, "weights_M.safetensors"))
    keep = [k for k in sorted(hdr) if k != "__metadata__" and
            not (re.match(r"videodit_blocks\.layers\.(\d+)\.", k) and int(re.match(r"videodit_blocks\.layers\.(\d+)\.", k).group(1)) >= layers)]
    write(os.path.join(out, "weights_M_%dlayer.safetensors" % layers), f, hdr, base, keep)
    print("SMOKE: weights cut to %d layer(s), %d tensors" % (layers, len(keep)), file=sys.stderr)
EOF
  WEIGHTS="$MAGI_PERF_INPUTS/weights_M.safetensors"
  if [ -n "${MAGI_BENCH_LAYERS:-}" ] && [ "${MAGI_BENCH_LAYERS}" != 0 ]; then
    WEIGHTS="$OUT_DIR/weights_M_${MAGI_BENCH_LAYERS}layer.safetensors"
  fi
  ARGS=(generate --config "$OUT_DIR/config_M_magi.json" --weights "$WEIGHTS"
        --captions "$OUT_DIR/captions_M_magi.safetensors" --out "$OUT_DIR/ours_chunks" --threads "$THREADS")
  if [ -n "${MAGI_BENCH_NUM_FRAMES:-}" ] && [ "${MAGI_BENCH_NUM_FRAMES}" != 0 ]; then
    ARGS+=(--num-frames "$MAGI_BENCH_NUM_FRAMES" --seed 1234)   # noise_M's shape is for 96 frames
  else
    ARGS+=(--noise "$MAGI_PERF_INPUTS/noise_M.safetensors")
  fi
  [ -n "$SCHEDULE" ] && ARGS+=(--schedule "$SCHEDULE")
  [ -n "$KV_CACHE" ] && ARGS+=(--kv-cache "$KV_CACHE")
  [ ${#OURS_ARGS[@]} -gt 0 ] && ARGS+=("${OURS_ARGS[@]}")
  rm -rf "$OUT_DIR/ours_chunks"
  echo "$MAGI_BIN ${ARGS[*]}" > "$OUT_DIR/ours.cmd"
  echo "config_m.sh: ours: $MAGI_BIN ${ARGS[*]}" >&2
  proc_stat > "$OUT_DIR/ours.procstat"
  set +e
  /usr/bin/time -v -o "$OUT_DIR/ours.time" "$MAGI_BIN" "${ARGS[@]}" 2> >(tee "$OUT_DIR/ours.stderr" >&2)
  rc=$?
  set -e
  proc_stat >> "$OUT_DIR/ours.procstat"
  sleep 0.2  # let tee finish
  if [ "$rc" != 0 ]; then echo "config_m.sh: magi generate failed (exit $rc), see $OUT_DIR/ours.stderr" >&2; exit 1; fi
else
  rm -f "$OUT_DIR/ours.time" "$OUT_DIR/ours.stderr" "$OUT_DIR/ours.procstat"
fi

# ---------------------------------------------------------------------------------------------
# reference
# ---------------------------------------------------------------------------------------------
rm -f "$OUT_DIR/ref_gen.json"
if [ -z "$REF_WHY" ]; then
  echo "config_m.sh: reference: THREADS=$THREADS $REF_BENCH/run_ref.sh gen --config $REF_BENCH/config_M.json --out $OUT_DIR/ref_gen.json" >&2
  set +e
  PYTHON="$PYTHON" "$REF_BENCH/run_ref.sh" gen --config "$REF_BENCH/config_M.json" --out "$OUT_DIR/ref_gen.json" >/dev/null 2> >(tee "$OUT_DIR/ref.stderr" >&2)
  rc=$?
  set -e
  sleep 0.2
  if [ "$rc" != 0 ]; then REF_WHY="run_ref.sh gen failed (exit $rc), see $OUT_DIR/ref.stderr"; rm -f "$OUT_DIR/ref_gen.json"; fi
fi

# ---------------------------------------------------------------------------------------------
# table
# ---------------------------------------------------------------------------------------------
"$PYTHON" - "$OUT_DIR" "$RUN_OURS" "$REF_WHY" "$SMOKE" "$THREADS" "$SCHEDULE" <<'EOF' | tee "$OUT_DIR/summary.txt"
import glob, json, os, re, struct, sys
out, run_ours, ref_why, smoke, threads, schedule = sys.argv[1], sys.argv[2] == "1", sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
HZ = os.sysconf("SC_CLK_TCK")

def cpu_info():
    model, avx512 = "?", False
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name") and model == "?":
            model = line.split(":", 1)[1].strip()
        if line.startswith("flags") and " avx512f" in line:
            avx512 = True
    return model, avx512

def ours():
    r = {}
    err = open(os.path.join(out, "ours.stderr")).read()
    m = re.search(r"done: (\d+) chunks in ([\d.]+)s \(first after ([\d.]+)s\), (\d+) forward steps, (\d+) model calls, (?:KV cache peak ([\d.]+) MiB, )?(\S+) order([^\n]*)", err)
    if m:
        r.update(chunks=int(m.group(1)), total_s=float(m.group(2)), first_s=float(m.group(3)),
                 forward_steps=int(m.group(4)), model_calls=int(m.group(5)), order=m.group(7),
                 kv_peak_mib=m.group(6), lead_kv=m.group(8).strip(", "))
    t = open(os.path.join(out, "ours.time")).read()
    g = lambda k: re.search(re.escape(k) + r":\s*(\S+)", t).group(1)
    r["rss_mb"] = int(g("Maximum resident set size (kbytes)")) / 1024.0
    cpu = float(g("User time (seconds)")) + float(g("System time (seconds)"))
    el = g("Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":")
    wall = sum(float(x) * 60 ** i for i, x in enumerate(reversed(el)))
    r["process_wall_s"], r["process_cpu_s"] = wall, cpu
    ps = [l.split() for l in open(os.path.join(out, "ours.procstat"))]
    busy = lambda v: sum(int(x) for i, x in enumerate(v[1:8]) if i != 3 and i != 4) / HZ  # user nice system irq softirq
    if len(ps) == 2 and wall > 0:
        r["foreign_cores"] = ((busy(ps[1]) - busy(ps[0])) - cpu) / wall
    # chunk latents and their yield times (metadata 'seconds', from the start of Generate)
    lat, yields = [], []
    import numpy as np
    for p in sorted(glob.glob(os.path.join(out, "ours_chunks", "chunk_*.safetensors"))):
        with open(p, "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            h = json.loads(f.read(n))
            i = h["latent"]
            assert i["dtype"] == "F32"
            f.seek(8 + n + i["data_offsets"][0])
            lat.append(np.frombuffer(f.read(i["data_offsets"][1] - i["data_offsets"][0]), dtype="<f4").reshape(i["shape"]))
            yields.append(float(h.get("__metadata__", {}).get("seconds", "nan")))
    if lat:
        x = np.concatenate(lat, axis=2).astype(np.float64)
        r["latent"] = dict(shape=list(x.shape), mean=x.mean(), std=x.std(ddof=1), absmax=np.abs(x).max())  # torch .std(): n-1
    r["yields"] = yields
    return r

model, avx512 = cpu_info()
o = ours() if run_ours else None
ref = None
rp = os.path.join(out, "ref_gen.json")
if not ref_why and os.path.exists(rp):
    ref = json.load(open(rp))

def f(x, fmt="%.1f"):
    return "-" if x is None else fmt % x

rows = []
def row(name, a, b, ratio=None, target=None):
    rows.append((name, a, b, ratio or "", target or ""))

print("config M same-run benchmark (issue #16 item 3)%s" % ("   *** SMOKE TEST: %s -- NOT FOR TIMING ***" % smoke if smoke else ""))
print("host: %s, %s, %d CPUs; threads %s; OPENBLAS_CORETYPE=%s" % (model, "AVX-512" if avx512 else "no AVX-512", os.cpu_count(),
      threads, os.environ.get("OPENBLAS_CORETYPE", "(unset)")))
if o:
    print("ours: %s order%s, %s forward steps, %s model calls; KV cache peak %s MiB%s; outputs in %s" % (
          o.get("order", "?"), " (--schedule %s)" % schedule if schedule else " (CLI default)",
          o.get("forward_steps"), o.get("model_calls"), o.get("kv_peak_mib") or "?",
          ("; " + o["lead_kv"]) if o.get("lead_kv") else "", out))
if ref:
    th = ref.get("threads", {})
    print("reference: torch %s, %s; threads %s; truncated %s; smoke %s" % (ref.get("torch"), ref.get("python"),
          json.dumps(th, separators=(",", ":")), ref.get("truncated"), ref.get("smoke")))
else:
    print("reference: NOT RUN (%s)" % (ref_why or "no ref_gen.json"))

ro = lambda k, d=None: (o or {}).get(k, d)
rg_total = ref.get("total_wall_s") if ref else None
rg_first = ref["chunk_yield_s"][0] if ref and ref.get("chunk_yield_s") else None
rg_rss = ref.get("peak_rss_mb") if ref else None
def ratio(a, b, tgt):
    if a is None or b is None or b == 0:
        return "", ""
    r = a / b
    return "%.3fx" % r, ("<= %.2fx %s" % (tgt, "MET" if r <= tgt else "MISSED"))

hdr = ("", "ours", "reference", "ours/ref", "target")
row("whole generation [s]", f(ro("total_s"), "%.2f"), f(rg_total, "%.2f"), *ratio(ro("total_s"), rg_total, 0.65))
row("first chunk [s]", f(ro("first_s"), "%.2f"), f(rg_first, "%.2f"), *ratio(ro("first_s"), rg_first, 0.25))
row("chunk yields [s]", " / ".join("%.1f" % y for y in ro("yields", [])) or "-",
    " / ".join("%.1f" % y for y in ref.get("chunk_yield_s", [])) if ref else "-")
rss = ro("rss_mb")
rows.append(("peak RSS [MiB]", f(rss), f(rg_rss), "%.3fx" % (rss / rg_rss) if rss and rg_rss else "",
             ("<= 1.2 GB (1144 MiB) %s" % ("MET" if rss * 1048576 <= 1.2e9 else "MISSED")) if rss else ""))
ol = ro("latent") or {}
rl = (ref or {}).get("final_latent") or {}
for k, fmt in (("mean", "%.7f"), ("std", "%.7f"), ("absmax", "%.6f")):
    a, b = ol.get(k), rl.get(k)
    row("final latent %s" % k, f(a, fmt), f(b, fmt), ("diff %.2e" % (a - b)) if a is not None and b is not None else "")
row("final latent shape", str(ol.get("shape", "-")), str(rl.get("shape", "-")))
row("foreign_cores", f(ro("foreign_cores"), "%.3f"), f((ref or {}).get("measured", {}).get("foreign_cores"), "%.3f"))
row("process wall / cpu [s]", "%s / %s" % (f(ro("process_wall_s"), "%.1f"), f(ro("process_cpu_s"), "%.1f")),
    "%s / %s" % (f((ref or {}).get("process_wall_s_total"), "%.1f"), f((ref or {}).get("process_cpu_s_total"), "%.1f")))
w = [max(len(str(r[i])) for r in rows + [hdr]) for i in range(5)]
line = lambda r: "| " + " | ".join(str(c).ljust(w[i]) for i, c in enumerate(r)) + " |"
print(line(hdr))
print("|" + "|".join("-" * (x + 2) for x in w) + "|")
for r in rows:
    print(line(r))
print("whole generation: ours = engine Generate() (after load), reference = generate_per_chunk loop (after load);")
print("peak RSS: ours = /usr/bin/time -v max RSS of the whole process, reference = ru_maxrss; foreign_cores = other load in cores")
if smoke:
    print("*** SMOKE TEST (%s): not config M, do not compare these timings ***" % smoke)
fc = [x for x in (ro("foreign_cores"), (ref or {}).get("measured", {}).get("foreign_cores")) if x is not None]
if any(x > 0.1 for x in fc):
    print("WARNING: foreign_cores > 0.1: the machine was not quiet, timings are not trustworthy")
EOF
