// Shared by the JavaScript e2e tests (realtime/, openai_sdk/; their run scripts copy it next to the
// test): start the real magi-server with local synthetic workers (pass --default-model=synthetic:
// their model). Node built-ins only.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import assert from 'node:assert/strict';

export const servers = [];

// Starts magi-server on free ports; resolves to {api, http, proc} once it serves.
export async function startServer(serverBin, workerBin, work, name, extra) {
  const state = path.join(work, name);
  fs.mkdirSync(state, { recursive: true });
  const log = fs.openSync(path.join(state, 'server.log'), 'a');
  const proc = spawn(serverBin, ['--listen=127.0.0.1:0', '--http-listen=127.0.0.1:0', '--api-listen=127.0.0.1:0',
    `--state-dir=${state}`, `--worker-binary=${workerBin}`, '--drain-timeout-seconds=5', ...extra],
  { stdio: ['ignore', 'pipe', log] });
  servers.push(proc);
  const line = await new Promise((resolve, reject) => {
    const rl = readline.createInterface({ input: proc.stdout });
    rl.once('line', resolve);
    proc.once('exit', (code) => reject(new Error(`${name}: magi-server exited ${code}; log ${state}/server.log`)));
  });
  const m = / http=(\S+) .* api=(\S+)/.exec(line);
  assert.ok(m, `unexpected first line: ${line}`);
  return { api: m[2], http: m[1], proc };
}

export async function waitForWorkers(http, want) {
  for (let i = 0; i < 600; i++) {
    const text = await (await fetch(`http://${http}/metrics`)).text();
    const m = /^magi_worker_groups_up (\S+)$/m.exec(text);
    if (m && Number(m[1]) >= want) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('no worker group registered');
}

export function stopServers() {
  for (const p of servers) p.kill('SIGTERM');
}

export function check(what) {
  console.log(`ok - ${what}`);
}
