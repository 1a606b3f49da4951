#!/usr/bin/env bash
# Runs openai_sdk_test.mjs with the pinned official OpenAI Node SDK (package-lock.json),
# installed with `npm ci` into WORK_DIR/node_modules when the lock file changed.
# Usage: run_openai_sdk_test.sh SERVER_BIN WORKER_BIN WORK_DIR
# Exit: 0 pass, 1 fail (a missing node, npm, curl, ffprobe or openssl is a failure: scripts/setup.sh
# installs them).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
server="$1" worker="$2" work="$3"
for tool in node npm curl ffprobe openssl; do
  command -v "$tool" >/dev/null 2>&1 || { echo "FAIL: '$tool' not found (scripts/setup.sh installs it)"; exit 1; }
done
mkdir -p "$work/sdk"
cp "$here/package.json" "$here/package-lock.json" "$here/openai_sdk_test.mjs" "$here/../js_common/magi_server.mjs" "$work/sdk/"
lock_hash="$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)"
if [ "$(cat "$work/sdk/.installed" 2>/dev/null || true)" != "$lock_hash" ]; then
  (cd "$work/sdk" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$lock_hash" > "$work/sdk/.installed"
fi
# A CA and a server certificate for 127.0.0.1, for the HTTPS step (--tls-cert). Node reads
# NODE_EXTRA_CA_CERTS at start only, so they are made here, before node.
tls="$work/tls"
rm -rf "$tls" && mkdir -p "$tls"
(
  cd "$tls"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=magi test CA"
  openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=server
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > server.ext
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile server.ext
) >/dev/null 2>&1 || { echo "FAIL: openssl could not make the test certificates"; exit 1; }
export NODE_EXTRA_CA_CERTS="$tls/ca.pem" MAGI_TEST_TLS_DIR="$tls"
cd "$work/sdk"
exec node openai_sdk_test.mjs "$server" "$worker" "$work/run"
