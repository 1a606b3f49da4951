#!/usr/bin/env bash
# Dashboard and PrometheusRule use only metrics registered in server/ (prometheus-cpp
# Build*().Name calls); and the check itself fails on a dashboard with an unknown metric.
# Usage: metric_names_test.sh REPO_ROOT WORK_DIR
set -euo pipefail
repo="$1"; work="$2"
mkdir -p "$work"
check=(/usr/bin/python3 "$repo/deploy/check_metric_names.py" --source "$repo/server")
dashboard="$repo/deploy/grafana/magi-serve.json"
rules="$repo/deploy/k8s/base/prometheusrule.yaml"

/usr/bin/python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$dashboard"
echo "ok   $dashboard is valid JSON"
"${check[@]}" "$dashboard" "$rules"

# Self-test: a renamed metric must be reported.
sed 's/magi_queue_depth/magi_queue_length/' "$dashboard" > "$work/broken.json"
if "${check[@]}" "$work/broken.json" > "$work/broken.log" 2>&1; then
  echo "FAIL self-test: a dashboard using magi_queue_length was accepted"; exit 1
fi
grep -q "magi_queue_length is not exported" "$work/broken.log"
echo "ok   self-test: unknown metric magi_queue_length rejected"

# Self-test: other exporters' metrics are known by name and label.
sed 's/DCGM_FI_DEV_GPU_UTIL/DCGM_FI_DEV_GPU_UTILIZATION/' "$dashboard" > "$work/broken-dcgm.json"
if "${check[@]}" "$work/broken-dcgm.json" > "$work/broken-dcgm.log" 2>&1; then
  echo "FAIL self-test: a dashboard using DCGM_FI_DEV_GPU_UTILIZATION was accepted"; exit 1
fi
grep -q "DCGM_FI_DEV_GPU_UTILIZATION is not exported" "$work/broken-dcgm.log"
echo "ok   self-test: unknown exporter metric DCGM_FI_DEV_GPU_UTILIZATION rejected"
sed 's/persistentvolumeclaim=/pvc=/' "$rules" > "$work/broken-rules.yaml"
if "${check[@]}" "$work/broken-rules.yaml" > "$work/broken-rules.log" 2>&1; then
  echo "FAIL self-test: an alert selecting kubelet_volume_stats_* by pvc= was accepted"; exit 1
fi
grep -q "kubelet_volume_stats_available_bytes (kubelet) has no label pvc" "$work/broken-rules.log"
echo "ok   self-test: unknown label pvc of an exporter metric rejected"
