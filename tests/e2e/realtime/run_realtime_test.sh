#!/usr/bin/env bash
# Runs one realtime e2e test (realtime_ws_test.mjs or viewer_test.mjs) with the pinned npm
# packages of package-lock.json (ws, puppeteer-core), installed with `npm ci` into
# WORK_DIR/node_modules when the lock file changed.
# Usage: run_realtime_test.sh TEST.mjs SERVER_BIN WORKER_BIN WORK_DIR
# Exit: 0 pass, 1 fail (a missing node, npm, ffprobe -- or chromium for the viewer -- is a
# failure: scripts/setup.sh installs them).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
test="$1" server="$2" worker="$3" work="$4"
tools="node npm ffprobe"
if [ "$test" = viewer_test.mjs ]; then tools="$tools chromium"; fi
for tool in $tools; do
  command -v "$tool" >/dev/null 2>&1 || { echo "FAIL: '$tool' not found (scripts/setup.sh installs it)"; exit 1; }
done
mkdir -p "$work/js"
cp "$here/package.json" "$here/package-lock.json" "$here"/*.mjs "$here/../js_common/magi_server.mjs" "$work/js/"
lock_hash="$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)"
# One installer at a time: the two tests share the folder and may start together.
exec 9>"$work/js/.lock"
flock 9
if [ "$(cat "$work/js/.installed" 2>/dev/null || true)" != "$lock_hash" ]; then
  (cd "$work/js" && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
  echo "$lock_hash" > "$work/js/.installed"
fi
flock -u 9
cd "$work/js"
exec node "$test" "$server" "$worker" "$work/run_${test%.mjs}" "$(command -v chromium || true)"
