#!/usr/bin/env bash
# magi-dit-check --model_dir: the check the model-fetch Job (deploy/k8s/components/model-fetch)
# runs before it publishes a model folder. A folder missing any file magi-worker opens is
# refused naming it; a complete one (tiny random model) loads and runs one forward.
# Usage: dit_check_model_dir_test.sh MAGI_DIT_CHECK WORK_DIR
set -uo pipefail
bin="$1"; work="$2"
rm -rf "$work"; mkdir -p "$work"
failed=0
expect() {  # name, expected exit (0 or 1), message substring, args...
  local name="$1" want="$2" msg="$3"; shift 3
  local out; out="$("$bin" "$@" 2>&1)"; local rc=$?
  if [ "$rc" -eq "$want" ] && grep -q -- "$msg" <<<"$out"; then echo "ok   $name"
  else echo "FAIL $name: exit $rc (want $want), output: $out"; failed=1; fi
}
"$bin" --write-tiny "$work/dit" >/dev/null || { echo "FAIL --write-tiny"; exit 1; }
m="$work/magi-1-tiny"; mkdir -p "$m"
expect "no config.json" 1 "cannot be opened" --model_dir "$m"
python3 - "$work/dit/config.json" "$m/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["runtime_config"].update(load="../dit", t5_pretrained="t5", vae_pretrained="vae")
json.dump(c, open(sys.argv[2], "w"))
PY
python3 - "$m/config.json" "$work/bad-config/config.json" <<'PY'
import json, os, sys
c = json.load(open(sys.argv[1]))
c["runtime_config"]["num_steps"] = 6  # not a multiple of window_size 4
os.makedirs(os.path.dirname(sys.argv[2]), exist_ok=True)
json.dump(c, open(sys.argv[2], "w"))
PY
expect "inconsistent config.json" 1 "num_steps (6) must be divisible" --model_dir "$work/bad-config"
expect "no T5 folder" 1 "t5/config.json does not exist" --model_dir "$m"
mkdir -p "$m/t5" "$m/vae"; touch "$m/t5/config.json" "$m/t5/spiece.model" "$m/vae/config.json"
expect "T5 without safetensors" 1 "t5_pretrained .* holds no \*.safetensors" --model_dir "$m"
touch "$m/t5/model.safetensors"
expect "VAE without safetensors" 1 "vae_pretrained .* holds no \*.safetensors" --model_dir "$m"
touch "$m/vae/diffusion_pytorch_model.safetensors"
expect "no special_tokens.npz" 1 "special_tokens.npz does not exist" --model_dir "$m"
touch "$m/special_tokens.npz"
expect "complete folder loads and runs" 0 "forward: 1 chunks" --model_dir "$m" --chunks 1
expect "--model_dir with --config" 1 "replaces --config" --model_dir "$m" --config "$m/config.json"
exit "$failed"
