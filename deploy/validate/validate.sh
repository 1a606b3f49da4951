#!/usr/bin/env bash
# Renders every Kustomize overlay under deploy/k8s/overlays and checks it offline:
#   yamllint (sources + rendered), schema + consistency (validate.mjs), PromQL of the
#   PrometheusRule (promtool check rules) and the alert unit tests (promtool test rules),
#   then proves the checks can fail on deliberately broken copies.
# Usage: validate.sh [WORK_DIR]   (WORK_DIR holds node_modules and rendered output; default: a temp dir)
# Exit: 0 all good, 1 a check failed, 77 skipped (node or kubectl not installed).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
deploy="$(dirname "$here")"
for tool in node kubectl; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "SKIP: '$tool' is not installed; the Kubernetes manifests cannot be rendered/validated here."
    exit 77
  fi
done
for tool in npm yamllint promtool; do
  command -v "$tool" >/dev/null 2>&1 || { echo "FAIL: '$tool' not found (scripts/setup.sh installs it)"; exit 1; }
done

work="${1:-$(mktemp -d)}"
rm -rf "$work/rendered" "$work/components"  # no stale output of a removed overlay or component
mkdir -p "$work/validate" "$work/rendered" "$work/rules"
cp "$here/package.json" "$here/package-lock.json" "$here"/*.mjs "$work/validate/"

# npm ci only when the lock file changed since the last install in this work dir.
lock_hash="$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)"
if [ "$(cat "$work/validate/.installed" 2>/dev/null || true)" != "$lock_hash" ]; then
  (cd "$work/validate" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$lock_hash" > "$work/validate/.installed"
fi

failed=0
step() { echo "== $*"; }

overlays=()
for dir in "$deploy"/k8s/overlays/*/; do
  overlays+=("$(basename "$dir")")
done
[ ${#overlays[@]} -gt 0 ] || { echo "FAIL: no overlays under $deploy/k8s/overlays"; exit 1; }

step "kustomize: ${overlays[*]}"
for o in "${overlays[@]}"; do
  if kubectl kustomize "$deploy/k8s/overlays/$o" > "$work/rendered/$o.yaml"; then
    echo "ok   rendered $o ($(grep -c '^kind:' "$work/rendered/$o.yaml") objects)"
  else
    echo "FAIL kubectl kustomize $o"; failed=1
  fi
done

# Components (deploy/k8s/components): each rendered on the overlay it is meant for, validated
# like an overlay. COMPONENT:OVERLAY[+COMPONENT...] (client-auth and tls are in the production overlays).
component_builds=(
  models-storage-class:single-node model-fetch:single-node model-fetch:cpu
  rdma:multi-node host-network:multi-node group-topology:multi-node
  gpu-product:single-node gpu-product:multi-node runtime-class:single-node runtime-class:multi-node
  priority-class:single-node priority-class:multi-node
  openshift:single-node+model-fetch openshift:multi-node openshift:cpu
  keda-autoscaling:single-node
)
comp_dirs=()
for dir in "$deploy"/k8s/components/*/; do comp_dirs+=("$(basename "$dir")"); done
for c in "${comp_dirs[@]}"; do
  [ "$c" = client-auth ] || [ "$c" = tls ] && continue
  printf '%s\n' "${component_builds[@]}" | grep -q "^$c:" || { echo "FAIL component $c is not rendered by validate.sh (add it to component_builds)"; failed=1; }
done
# As an operator would: the component added to (a copy of) the overlay's kustomization, so that
# the overlay's images and namespace apply to what it adds.
for build in "${component_builds[@]}"; do
  comp="${build%%:*}" rest="${build#*:}"
  overlay="${rest%%+*}" extra=""
  [ "$rest" != "$overlay" ] && extra="${rest#*+}"
  out_name="component-$comp-on-$overlay${extra:+-with-$extra}"
  tree="$work/components/$out_name"
  rm -rf "$tree"; mkdir -p "$tree"; cp -R "$deploy/k8s/." "$tree/"
  kfile="$tree/overlays/$overlay/kustomization.yaml"
  if grep -q '^components:' "$kfile"; then
    sed -i "/^components:/a\\  - ../../components/$comp" "$kfile"
    [ -n "$extra" ] && sed -i "/^components:/a\\  - ../../components/$extra" "$kfile"
  else
    { echo "components:"; [ -n "$extra" ] && echo "  - ../../components/$extra"; echo "  - ../../components/$comp"; } >> "$kfile"
  fi
  if kubectl kustomize "$tree/overlays/$overlay" > "$work/rendered/$out_name.yaml"; then
    echo "ok   rendered $out_name ($(grep -c '^kind:' "$work/rendered/$out_name.yaml") objects)"
  else
    echo "FAIL kubectl kustomize $out_name"; failed=1
  fi
done

step "yamllint"
yamllint -c "$deploy/.yamllint" "$deploy/k8s" "$work"/rendered/*.yaml && echo "ok   yamllint" || failed=1

step "schema and consistency"
node "$work/validate/validate.mjs" "$work"/rendered/*.yaml || failed=1

step "PrometheusRule: promtool check rules / test rules"
for o in "${overlays[@]}"; do
  mkdir -p "$work/rules/$o"
  if node "$work/validate/extract-rules.mjs" "$work/rendered/$o.yaml" "$work/rules/$o/magi-server.rules.yaml"; then
    cp "$deploy/k8s/tests/alerts_test.yaml" "$work/rules/$o/"
    promtool check rules "$work/rules/$o/magi-server.rules.yaml" || failed=1
    (cd "$work/rules/$o" && promtool test rules alerts_test.yaml) || failed=1
  else
    failed=1
  fi
done

# The checks above must be able to fail: break copies on purpose and expect each breakage
# to be reported with its own message.
step "self-test: broken manifests must be rejected"
base_yaml="$work/rendered/single-node.yaml"
expect_failure() {  # name, sed expression, message the validator must print [, rendered file]
  local name="$1" expr="$2" message="$3" src="${4:-$base_yaml}" out="$work/broken-$1.yaml"
  sed -e "$expr" "$src" > "$out"
  if cmp -s "$out" "$src"; then
    echo "FAIL self-test $name: the sed expression changed nothing"; failed=1; return
  fi
  if node "$work/validate/validate.mjs" "$out" > "$out.log" 2>&1; then
    echo "FAIL self-test $name: validate.mjs accepted it"; failed=1
  elif grep -q -- "$message" "$out.log"; then
    echo "ok   self-test $name rejected ($message)"
  else
    echo "FAIL self-test $name: rejected without '$message':"; grep FAIL "$out.log" | head -5; failed=1
  fi
}
expect_failure grace 's/terminationGracePeriodSeconds: 630/terminationGracePeriodSeconds: 30/' "the kubelet would kill the drain"
expect_failure schema 's/containerPort: 9464/containerPort: eighty/' "must be integer"
expect_failure gpus '0,/nvidia.com\/gpu: "8"/s//nvidia.com\/gpu: "4"/' "GPU request == limit"
expect_failure layout 's/--cp=8/--cp=4/' "ranks per pod"
expect_failure probe-port 's/port: http-metrics/port: http/' "no such container port"
expect_failure selector 's/claimName: magi-models/claimName: magi-model/' "no PersistentVolumeClaim magi-model"
expect_failure token-mount 's|mountPath: /etc/magi/worker-token|mountPath: /etc/magi/token|' "is not in a mounted Secret volume"
expect_failure no-token '/--worker_token_file=/d' "not set: the server would generate"
expect_failure worker-port 's/--server=magi-server-workers:50052/--server=magi-server-workers:50051/' "has no port 50051"
expect_failure netpol-port 's/- port: worker-pool/- port: workers/' "no container port workers"
expect_failure dashed-flag 's/--state_dir=/--state-dir=/' "flags use underscores"
# Issue 19: worker probes, LeaderReady, the RWX model claim, no GPU for the server, model names.
lws_yaml="$work/rendered/multi-node.yaml"
expect_failure no-startup-probe 's/startupProbe:/startupProbeOff:/' "has no startupProbe"
expect_failure liveness-path 's|path: /healthz|path: /livez|' "livenessProbe must be GET /healthz"
expect_failure readiness-path '/kind: StatefulSet/,/path: \/readyz/s/path: \/readyz/path: \/healthz/' "readinessProbe must be GET /readyz"
expect_failure tls-grpc-probe '/readinessProbe:/{n;n;/httpGet:/{N;N;s|httpGet:\n\( *\)path: /readyz\n *port: http-metrics|grpc:\n\1port: 50051|}}' "which speaks plaintext to a TLS port"
expect_failure no-http-listen '/--http_listen=0.0.0.0:8081/d' "probes need --http_listen"
expect_failure leader-created 's/startupPolicy: LeaderReady/startupPolicy: LeaderCreated/' "startupPolicy LeaderCreated" "$lws_yaml"
expect_failure leader-readyz '/tcpSocket:/{N;s|tcpSocket:\n\( *\)port: rendezvous|httpGet:\n\1path: /readyz\n\1port: probes|}' "would deadlock the group" "$lws_yaml"
expect_failure rwo-models 's/- ReadWriteMany/- ReadWriteOnce/' "must be ReadWriteMany"
expect_failure server-gpu-env 's/value: void/value: all/' "NVIDIA_VISIBLE_DEVICES is all"
expect_failure server-cuda-image 's|magi-serve:0.1.0-cpu|magi-serve:0.1.0-cuda|' "is the CUDA workers' image"
expect_failure no-model-name '/--model_name=/d' "--model_name not set"
r="$work/rendered"
expect_failure default-model '/--default_model=magi-1-24b/d' "--default_model tiny is not among the served models"
expect_failure mig-default-model '/--default_model=magi-1-4.5b-distill/d' "--default_model magi-1-24b is not among the served models" "$r/mig-4.5b.yaml"
expect_failure podmonitor-port '/podMetricsEndpoints:/,/selector:/s/port: probes/port: metrics/' "no container port metrics"
expect_failure keda-model 's/model="magi-1-24b"/model="magi-1-4.5b"/' "selects model magi-1-4.5b but" "$r/component-keda-autoscaling-on-single-node.yaml"
expect_failure keda-target 's/^    kind: StatefulSet$/    kind: Deployment/' "scaleTargetRef Deployment/magi-worker is not in the manifests" "$r/component-keda-autoscaling-on-single-node.yaml"
expect_failure keda-no-model 's/{model="magi-1-24b"}//g' "has no model=" "$r/component-keda-autoscaling-on-single-node.yaml"
expect_failure mig-count '0,/nvidia.com\/mig-3g.40gb: "1"/s//nvidia.com\/mig-3g.40gb: "2"/' "GPU request == limit" "$r/mig-4.5b.yaml"
expect_failure mig-and-gpu 's/^\( *\)nvidia.com\/mig-3g.40gb: "1"/&\n\1nvidia.com\/gpu: "1"/' "several GPU resources" "$r/mig-4.5b.yaml"
expect_failure priority-class 's/priorityClassName: magi-worker/priorityClassName: magi-workers/' "no PriorityClass magi-workers" "$r/component-priority-class-on-single-node.yaml"
expect_failure fetch-init-mount '/mountPath: \/tmp$/{n;s/name: tmp$/name: scratch/}' "init container verify mount /tmp has a volume: no volume scratch" "$r/component-model-fetch-on-single-node.yaml"
expect_failure bad-model-name 's/--model_name=magi-1-24b/--model_name=magi 1/' "is not 1-64 of"
printf 'a: 1\na: 2\n' > "$work/broken-duplicate.yaml"
if yamllint -c "$deploy/.yamllint" "$work/broken-duplicate.yaml" >/dev/null 2>&1; then
  echo "FAIL self-test yamllint accepted a duplicate key"; failed=1
else
  echo "ok   self-test yamllint rejects duplicate keys"
fi

if [ "$failed" -ne 0 ]; then
  echo "deploy validate: FAILED (see FAIL lines above)"
  exit 1
fi
echo "deploy validate: all overlays valid (${overlays[*]})"
