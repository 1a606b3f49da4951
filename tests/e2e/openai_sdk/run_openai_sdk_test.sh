#!/usr/bin/env bash
# Runs openai_sdk_test.mjs with the pinned official OpenAI Node SDK (package-lock.json),
# installed with `npm ci` into WORK_DIR/node_modules when the lock file changed.
# Usage: run_openai_sdk_test.sh SERVER_BIN WORKER_BIN WORK_DIR
# Exit: 0 pass, 1 fail (a missing node, npm, curl or ffprobe is a failure: scripts/setup.sh
# installs them).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
server="$1" worker="$2" work="$3"
for tool in node npm curl ffprobe; do
  command -v "$tool" >/dev/null 2>&1 || { echo "FAIL: '$tool' not found (scripts/setup.sh installs it)"; exit 1; }
done
mkdir -p "$work/sdk"
cp "$here/package.json" "$here/package-lock.json" "$here/openai_sdk_test.mjs" "$here/../js_common/magi_server.mjs" "$work/sdk/"
lock_hash="$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)"
if [ "$(cat "$work/sdk/.installed" 2>/dev/null || true)" != "$lock_hash" ]; then
  (cd "$work/sdk" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$lock_hash" > "$work/sdk/.installed"
fi
cd "$work/sdk"
exec node openai_sdk_test.mjs "$server" "$worker" "$work/run"
