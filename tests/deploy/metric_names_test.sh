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
