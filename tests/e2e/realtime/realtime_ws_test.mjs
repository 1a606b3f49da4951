// End-to-end test of the realtime video stream (GET /v1/realtime/video, a WebSocket): the
// real magi-server with a local synthetic worker group, driven by the npm `ws` client.
//
//   node realtime_ws_test.mjs SERVER_BIN WORKER_BIN WORK_DIR
// Exit 0 pass, 1 fail (the failing check is printed).
import WebSocket from 'ws';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import assert from 'node:assert/strict';
import { startServer, waitForWorkers, stopServers, check } from './magi_server.mjs';

const [serverBin, workerBin, work] = process.argv.slice(2);
fs.rmSync(work, { recursive: true, force: true });
fs.mkdirSync(work, { recursive: true });

// A connection whose messages are read in order: next() resolves to {text, json} or {binary}.
function connect(api) {
  const ws = new WebSocket(`ws://${api}/v1/realtime/video`);
  const inbox = [];
  const waiters = [];
  let closed = null;
  const deliver = (item) => (waiters.length ? waiters.shift()(item) : inbox.push(item));
  ws.on('message', (data, isBinary) => deliver(isBinary ? { binary: Buffer.from(data) } : { json: JSON.parse(data.toString()) }));
  ws.on('close', (code, reason) => { closed = { code, reason: reason.toString() }; deliver({ closed }); });
  ws.on('error', () => {});
  return {
    ws,
    open: () => new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); }),
    send: (obj) => ws.send(typeof obj === 'string' || Buffer.isBuffer(obj) ? obj : JSON.stringify(obj)),
    next: (ms = 30000) => (inbox.length ? Promise.resolve(inbox.shift()) : new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('timed out waiting for a message')), ms);
      waiters.push((item) => { clearTimeout(t); resolve(item); });
    })),
    closed: () => closed,
  };
}

// Reads a session to its end: the JSON messages, the binaries in order, the close.
async function readSession(c, onChunk) {
  const messages = [];
  const binaries = [];
  let expect = null;
  while (true) {
    const item = await c.next();
    if (item.closed) return { messages, binaries, closed: item.closed };
    if (item.binary) {
      assert.ok(expect, 'a binary message without a metadata message before it');
      assert.equal(item.binary.length, expect.bytes, `${expect.type} size`);
      binaries.push({ kind: expect.type, index: expect.index, data: item.binary });
      expect = null;
      continue;
    }
    const m = item.json;
    messages.push(m);
    if (m.type === 'init_segment' || m.type === 'chunk') {
      assert.equal(expect, null, 'two metadata messages in a row');
      expect = m;
      if (m.type === 'chunk' && onChunk) await onChunk(m, messages);
    }
  }
}

async function main() {
  const main = await startServer(serverBin, workerBin, work, 'main',
    ['--local-workers=1', '--worker-args=--runner=synthetic --synthetic-step-ms=40', '--default-model=synthetic']);
  await waitForWorkers(main.http, 1);
  const base = `http://${main.api}/v1`;
  const videos = async () => (await (await fetch(`${base}/videos?limit=100`)).json()).data.length;

  // Without the upgrade the route says what it is.
  const plain = await fetch(`http://${main.api}/v1/realtime/video`);
  assert.equal(plain.status, 426);
  assert.equal((await plain.json()).error.code, 'upgrade_required');
  check('GET /v1/realtime/video without Upgrade: 426 upgrade_required');

  // A whole session: started, progress, init segment first, one fragment per chunk, done.
  const c = connect(main.api);
  await c.open();
  c.send({ type: 'session.start', prompt: 'a red fox in the snow', seconds: '12', size: '64x64', fps: 8, steps: 4, seed: 5 });
  const statusAtChunk = [];
  let updateReply = null;
  const s = await readSession(c, async (m, messages) => {
    if (m.index === 0) {
      const id = messages[0].video.id;
      statusAtChunk.push((await (await fetch(`${base}/videos/${id}`)).json()).status);
      // A live prompt: used from the next chunk that has not started; the stream goes on.
      c.send({ type: 'prompt.update', prompt: 'a grey wolf' });
    }
  });
  const s0 = s.messages[0];
  assert.equal(s0.type, 'session.started');
  assert.match(s0.video.id, /\S/);
  assert.equal(s0.video.object, 'video');
  const types = s.messages.map((m) => m.type);
  assert.equal(types.at(-1), 'done', types.join(','));
  assert.equal(s.messages.at(-1).video.status, 'completed');
  assert.ok(types.includes('progress'), 'progress messages');
  updateReply = s.messages.find((m) => m.type === 'prompt.updated' || m.type === 'error');
  assert.ok(updateReply, 'a reply to prompt.update');
  assert.equal(updateReply.type, 'prompt.updated', JSON.stringify(updateReply));
  assert.equal(updateReply.prompt, 'a grey wolf');
  const nChunks = s.messages.filter((m) => m.type === 'chunk').length;
  assert.ok(updateReply.from_chunk >= 1 && updateReply.from_chunk < nChunks, `from_chunk ${updateReply.from_chunk}`);
  // The job records it: chunk_prompts shows the change from that chunk.
  const recorded = (await (await fetch(`${base}/videos/${s0.video.id}`)).json()).chunk_prompts;
  assert.deepEqual(recorded, [{ from_chunk: 0, text: 'a red fox in the snow' },
    { from_chunk: updateReply.from_chunk, text: 'a grey wolf' }]);
  assert.equal(s.closed.code, 1000);
  assert.equal(s.binaries[0].kind, 'init_segment');
  const chunks = s.binaries.slice(1);
  assert.ok(chunks.length >= 4, `chunks: ${chunks.length}`);
  chunks.forEach((b, i) => { assert.equal(b.kind, 'chunk'); assert.equal(b.index, i); });
  const chunkMeta = s.messages.filter((m) => m.type === 'chunk');
  assert.equal(chunkMeta.at(-1).frame_end, 96);
  assert.deepEqual(chunkMeta.map((m) => m.chunks_total), chunkMeta.map(() => chunks.length));
  assert.deepEqual(statusAtChunk, ['in_progress'], 'chunk 0 arrives while the video is in progress');
  check(`session: started, progress, init segment, ${chunks.length} chunks in order, done, close 1000; ` +
        'chunk 0 before the video completed; prompt.update after chunk 0 answered prompt.updated (from chunk ' +
        `${updateReply.from_chunk}) and recorded in chunk_prompts`);

  // init + fragments is a playable MP4 of the whole video.
  const file = path.join(work, 'stream.mp4');
  fs.writeFileSync(file, Buffer.concat(s.binaries.map((b) => b.data)));
  const probe = JSON.parse(execFileSync('ffprobe', ['-v', 'error', '-count_frames', '-select_streams', 'v:0',
    '-show_entries', 'stream=codec_name,width,height,nb_read_frames', '-of', 'json', file])).streams[0];
  assert.deepEqual([probe.codec_name, probe.width, probe.height, Number(probe.nb_read_frames)], ['h264', 64, 64, 96]);
  check('init segment + fragments: ffprobe h264 64x64, 96 frames');

  // Reconnect: resume from chunk 2 (init segment again, then chunks 2..).
  const r = connect(main.api);
  await r.open();
  r.send({ type: 'session.resume', video_id: s0.video.id, from_chunk: 2 });
  const resumed = await readSession(r);
  assert.equal(resumed.messages[0].type, 'session.started');
  assert.equal(resumed.binaries[0].kind, 'init_segment');
  assert.deepEqual(resumed.binaries.slice(1).map((b) => b.index), chunks.slice(2).map((b) => b.index));
  assert.deepEqual(resumed.binaries.at(-1).data, chunks.at(-1).data);
  assert.equal(resumed.messages.at(-1).type, 'done');
  check('session.resume from_chunk 2: init segment, then chunks 2.. with the same bytes, done');

  // Bad input: errors name the field, the connection stays usable, nothing is queued.
  const before = await videos();
  const b = connect(main.api);
  await b.open();
  b.send({ type: 'session.start', size: '64x64' });
  let m = (await b.next()).json;
  assert.deepEqual([m.type, m.fatal, m.error.param], ['error', false, 'prompt']);
  b.send({ type: 'session.start', prompt: 'x', size: '7x7000' });
  m = (await b.next()).json;
  assert.deepEqual([m.type, m.error.param], ['error', 'size']);
  b.send('not json');
  m = (await b.next()).json;
  assert.equal(m.type, 'error');
  b.send({ type: 'session.fly' });
  m = (await b.next()).json;
  assert.equal(m.error.param, 'type');
  b.send({ type: 'session.resume', video_id: 'video_nope' });
  m = (await b.next()).json;
  assert.deepEqual([m.error.code, m.error.param], ['not_found', 'video_id']);
  b.send(Buffer.from([1, 2, 3]));
  m = (await b.next()).json;
  assert.equal(m.error.code, 'binary_not_accepted');
  assert.equal((await b.next()).closed.code, 1003);
  // An oversized message (default limit 1 MiB) ends the connection: Beast sends close 1009 as
  // soon as the frame header declares too much, then closes the socket; a client still sending
  // the rest may get the reset first and see 1006 (Boost 1.74's teardown drains little). Either
  // way the message is not served.
  const big = connect(main.api);
  await big.open();
  big.send(JSON.stringify({ type: 'session.start', prompt: 'x'.repeat(2 << 20) }));
  const bigClose = (await big.next()).closed;
  assert.ok(bigClose && [1009, 1006].includes(bigClose.code), `close ${JSON.stringify(bigClose)}`);
  // A flood of control messages from a client: answered, bounded, the server stays up.
  const flood = connect(main.api);
  await flood.open();
  for (let i = 0; i < 2000; i++) flood.send({ type: 'prompt.update', prompt: 'p' });
  let answered = 0;
  while (answered < 2000) { m = (await flood.next()).json; assert.equal(m.error.code, 'no_session'); answered++; }
  flood.ws.close();
  assert.equal(await videos(), before, 'nothing queued by the bad sessions');
  assert.equal((await fetch(`${base}/videos?limit=1`)).status, 200);
  check('bad input: missing prompt, bad size, not JSON, unknown type, unknown video (errors naming the field, ' +
        'not fatal); binary message -> close 1003; 2 MiB message -> closed (1009, or 1006 when reset mid-send); 2000-message flood answered; nothing queued');

  // session.stop cancels the session's video.
  const st = connect(main.api);
  await st.open();
  st.send({ type: 'session.start', prompt: 'to be stopped', seconds: '12', size: '64x64', fps: 8, steps: 20 });
  const started = (await st.next()).json;
  st.send({ type: 'session.stop' });
  const stopped = await readSession(st);
  const last = stopped.messages.at(-1);
  assert.deepEqual([last.type, last.fatal, last.error.code], ['error', true, 'video_cancelled']);
  const after = await (await fetch(`${base}/videos/${started.video.id}`)).json();
  assert.equal(after.status, 'failed');
  check('session.stop: the video is cancelled (fatal error video_cancelled, status failed)');
}

main().then(() => { stopServers(); console.log('PASS'); process.exit(0); },
  (e) => { console.error(`FAIL: ${e.stack || e}`); stopServers(); process.exit(1); });
