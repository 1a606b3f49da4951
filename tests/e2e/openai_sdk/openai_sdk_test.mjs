// End-to-end test of the OpenAI-compatible API: the real magi-server with a local worker
// group (synthetic frame runner), driven by the official OpenAI Node SDK (npm `openai`,
// unchanged, baseURL pointed at us) and by raw HTTP (curl and fetch) for what an SDK hides:
// the error JSON, Range requests, content types, body limits.
//
//   node openai_sdk_test.mjs SERVER_BIN WORKER_BIN WORK_DIR
// Exit 0 pass, 1 fail (the failing check is printed).
import OpenAI from 'openai';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import assert from 'node:assert/strict';
import { servers, startServer as startMagiServer, waitForWorkers } from './magi_server.mjs';

const [serverBin, workerBin, work] = process.argv.slice(2);
fs.rmSync(work, { recursive: true, force: true });
fs.mkdirSync(work, { recursive: true });

// magi-server on free ports ({api, http, proc} once it serves) under WORK/NAME.
const startServer = (name, extra) => startMagiServer(serverBin, workerBin, work, name, extra);

async function pollUntilDone(client, id) {
  const seen = new Set();
  for (let i = 0; i < 600; i++) {
    const v = await client.videos.retrieve(id);
    seen.add(v.status);
    assert.ok(v.progress >= 0 && v.progress <= 100, `progress ${v.progress}`);
    if (v.status === 'completed' || v.status === 'failed') return { v, seen };
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`video ${id} did not finish`);
}

// The SDK's typed error for `promise`, with the error JSON's param checked.
async function expectError(promise, Type, param, text) {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof Type, `expected ${Type.name}, got ${e.constructor.name}: ${e.message}`);
    if (param !== undefined) assert.equal(e.param, param, e.message);
    if (text) assert.ok(e.message.includes(text), `'${e.message}' lacks '${text}'`);
    return e;
  }
  throw new Error(`expected ${Type.name}, the call succeeded`);
}

function check(name) {
  console.log(`ok - ${name}`);
}

async function main() {
  const main = await startServer('main', ['--local-workers=1', '--worker-args=--runner=synthetic --synthetic-step-ms=20', '--default-model=synthetic']);
  await waitForWorkers(main.http, 1);
  const base = `http://${main.api}/v1`;
  const client = new OpenAI({ baseURL: base, apiKey: 'not-checked', maxRetries: 0 });

  // create (multipart, as the SDK sends it) -> retrieve until completed -> downloadContent -> ffprobe
  const created = await client.videos.create({
    model: 'synthetic', prompt: 'a red fox running through snow', seconds: '6', size: '64x64',
    fps: 8, steps: 4, seed: 42, chunk_prompts: ['the fox jumps'],  // our extensions, as extra fields
  });
  assert.equal(created.object, 'video');
  assert.equal(created.status, 'queued');
  assert.equal(created.seconds, '6');
  assert.equal(created.size, '64x64');
  assert.equal(created.model, 'synthetic');
  assert.equal(created.prompt, 'a red fox running through snow');
  const { v: done, seen } = await pollUntilDone(client, created.id);
  assert.equal(done.status, 'completed', JSON.stringify(done));
  assert.equal(done.progress, 100);
  assert.ok(done.completed_at >= done.created_at);
  assert.ok(seen.has('completed'));
  check(`create + retrieve until completed (statuses seen: ${[...seen].join(', ')})`);

  const response = await client.videos.downloadContent(created.id);
  assert.equal(response.headers.get('content-type'), 'video/mp4');
  const mp4 = Buffer.from(await response.arrayBuffer());
  const file = path.join(work, 'video.mp4');
  fs.writeFileSync(file, mp4);
  const probe = JSON.parse(execFileSync('ffprobe', ['-v', 'error', '-count_frames', '-select_streams', 'v:0',
    '-show_entries', 'stream=codec_name,width,height,nb_read_frames', '-of', 'json', file]));
  const stream = probe.streams[0];
  assert.equal(stream.codec_name, 'h264');
  assert.equal(stream.width, 64);
  assert.equal(stream.height, 64);
  assert.equal(Number(stream.nb_read_frames), 48);  // 6 s at 8 fps
  check(`downloadContent: ${mp4.length} bytes, ffprobe h264 64x64, 48 frames`);

  // The thumbnail variant: a JPEG of the first frame at the video's size.
  const thumbResponse = await client.videos.downloadContent(created.id, { variant: 'thumbnail' });
  assert.equal(thumbResponse.headers.get('content-type'), 'image/jpeg');
  const thumb = Buffer.from(await thumbResponse.arrayBuffer());
  assert.equal(thumb.readUInt16BE(0), 0xffd8, 'JPEG start-of-image marker');
  const thumbFile = path.join(work, 'thumb.jpg');
  fs.writeFileSync(thumbFile, thumb);
  const thumbProbe = JSON.parse(execFileSync('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_name,width,height',
    '-of', 'json', thumbFile])).streams[0];
  assert.deepEqual([thumbProbe.codec_name, thumbProbe.width, thumbProbe.height], ['mjpeg', 64, 64]);
  check(`downloadContent variant=thumbnail: ${thumb.length} bytes JPEG, ffprobe mjpeg 64x64`);

  // The spritesheet variant: 16 evenly spaced frames of the 48, 4 per row, at the video's size.
  const sheet = Buffer.from(await (await client.videos.downloadContent(created.id, { variant: 'spritesheet' })).arrayBuffer());
  assert.equal(sheet.readUInt16BE(0), 0xffd8, 'JPEG start-of-image marker');
  const sheetFile = path.join(work, 'sheet.jpg');
  fs.writeFileSync(sheetFile, sheet);
  const sheetProbe = JSON.parse(execFileSync('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_name,width,height',
    '-of', 'json', sheetFile])).streams[0];
  assert.deepEqual([sheetProbe.codec_name, sheetProbe.width, sheetProbe.height], ['mjpeg', 4 * 64, 4 * 64]);
  check(`downloadContent variant=spritesheet: ${sheet.length} bytes JPEG, 4x4 tiles of 64x64`);

  // Range requests (curl, as a browser's <video> or a download manager would).
  const head = execFileSync('curl', ['-s', '-D', '-', '-o', path.join(work, 'part.bin'), '-H', 'Range: bytes=10-109',
    `${base}/videos/${created.id}/content`]).toString();
  assert.match(head, /^HTTP\/1\.1 206/);
  assert.match(head, new RegExp(`Content-Range: bytes 10-109/${mp4.length}`, 'i'));
  assert.deepEqual(fs.readFileSync(path.join(work, 'part.bin')), mp4.subarray(10, 110));
  const suffix = await fetch(`${base}/videos/${created.id}/content`, { headers: { Range: 'bytes=-16' } });
  assert.equal(suffix.status, 206);
  assert.deepEqual(Buffer.from(await suffix.arrayBuffer()), mp4.subarray(mp4.length - 16));
  const past = await fetch(`${base}/videos/${created.id}/content`, { headers: { Range: `bytes=${mp4.length}-` } });
  assert.equal(past.status, 416);
  assert.equal(past.headers.get('content-range'), `bytes */${mp4.length}`);
  assert.equal((await past.json()).error.code, 'range_not_satisfiable');
  check('content Range: 206 with Content-Range and the right bytes, suffix range, 416 past the end');

  // remix: same settings, new prompt; list with cursor pages; delete.
  const remix = await client.videos.remix(created.id, { prompt: 'the same fox at night' });
  assert.equal(remix.remixed_from_video_id, created.id);
  assert.equal(remix.prompt, 'the same fox at night');
  assert.equal(remix.size, '64x64');
  assert.equal(remix.seconds, '6');
  assert.equal((await pollUntilDone(client, remix.id)).v.status, 'completed');
  check('remix: same settings, new prompt, completed');

  const third = await client.videos.create({ prompt: 'a hare', seconds: '3', size: '32x32', fps: 8, steps: 4 });
  const ids = [];
  for await (const v of client.videos.list({ limit: 1 })) ids.push(v.id);  // the SDK follows after=last_id
  assert.deepEqual(ids, [third.id, remix.id, created.id]);
  const asc = await client.videos.list({ order: 'asc', limit: 2 });
  assert.deepEqual(asc.data.map((v) => v.id), [created.id, remix.id]);
  assert.equal(asc.has_more, true);
  check('list: cursor pages of 1 in newest-first order, order=asc');

  const deleted = await client.videos.delete(third.id);
  assert.deepEqual(deleted, { id: third.id, object: 'video.deleted', deleted: true });
  await expectError(client.videos.retrieve(third.id), OpenAI.NotFoundError, 'video_id');
  check('delete: video.deleted, then retrieve is NotFoundError');

  // extensions (MAGI-1's video continuation, v2v): a completed video by id (its size and fps
  // carry over), and an uploaded MP4; the new video is the continuation.
  const ext = await client.videos.extend({ video: { id: created.id }, prompt: 'the fox runs on', seconds: '3' });
  assert.equal(ext.extended_from_video_id, created.id);
  assert.equal(ext.size, '64x64');
  assert.equal(ext.seconds, '3');
  assert.equal(ext.prompt, 'the fox runs on');
  const { v: extDone } = await pollUntilDone(client, ext.id);
  assert.equal(extDone.status, 'completed', JSON.stringify(extDone));
  const extFile = path.join(work, 'extension.mp4');
  fs.writeFileSync(extFile, Buffer.from(await (await client.videos.downloadContent(ext.id)).arrayBuffer()));
  const extProbe = JSON.parse(execFileSync('ffprobe', ['-v', 'error', '-count_frames', '-select_streams', 'v:0',
    '-show_entries', 'stream=codec_name,width,height,nb_read_frames', '-of', 'json', extFile])).streams[0];
  assert.deepEqual([extProbe.codec_name, extProbe.width, extProbe.height, Number(extProbe.nb_read_frames)],
    ['h264', 64, 64, 24]);  // 3 s at the source's 8 fps
  const uploaded = await client.videos.extend({
    video: await OpenAI.toFile(mp4, 'source.mp4', { type: 'video/mp4' }), prompt: 'an uploaded clip, continued',
    seconds: '3', size: '32x32', fps: 8, steps: 4,
  });
  assert.equal(uploaded.extended_from_video_id, undefined);
  assert.equal((await pollUntilDone(client, uploaded.id)).v.status, 'completed');
  await expectError(client.videos.extend({ video: { id: 'no-such-video' }, prompt: 'x', seconds: '3' }),
    OpenAI.NotFoundError, 'video', 'no-such-video');
  await expectError(client.videos.extend({ prompt: 'x', seconds: '3' }), OpenAI.BadRequestError, 'video', 'required');
  await expectError(client.videos.extend({ video: { id: created.id }, prompt: 'x', seconds: '400' }),
    OpenAI.BadRequestError, 'seconds');
  await expectError(client.videos.extend({ video: { id: created.id }, prompt: 'x', input_reference: 'data:,' }),
    OpenAI.BadRequestError, 'input_reference', 'unknown parameter');
  const pending = await client.videos.create({ prompt: 'long', seconds: '6', size: '64x64', fps: 8, steps: 64 });
  await expectError(client.videos.extend({ video: { id: pending.id }, prompt: 'x', seconds: '3' }),
    OpenAI.BadRequestError, 'video', 'only a completed video can be extended');
  await client.videos.delete(pending.id);
  check('extend: by id (64x64, 24 frames = 3 s at 8 fps) and by upload, completed; unknown id, missing video, bad seconds, input_reference, unfinished source refused');

  // Refusals, as the SDK's typed errors, naming the API field.
  await expectError(client.videos.create({ prompt: 'x', size: '100x64' }), OpenAI.BadRequestError, 'size', 'width: 100');
  await expectError(client.videos.create({ prompt: 'x', seconds: '200', fps: 8 }), OpenAI.BadRequestError, 'seconds', 'is 1600 frames; num_frames: 1600');
  await expectError(client.videos.create({ prompt: 'x', seconds: '400' }), OpenAI.BadRequestError, 'seconds');
  await expectError(client.videos.create({ prompt: 'x', steps: 100 }), OpenAI.BadRequestError, 'steps', 'num_steps: 100');
  await expectError(client.videos.create({ prompt: 'x', model: 'sora-2' }), OpenAI.BadRequestError, 'model', 'sora-2');
  await expectError(client.videos.create({ prompt: 'x', quality: 'hd' }), OpenAI.BadRequestError, 'quality', 'unknown parameter');
  await expectError(client.videos.create({ prompt: 'x', seed: 'abc' }), OpenAI.BadRequestError, 'seed');
  await expectError(client.videos.create({ seconds: '4' }), OpenAI.BadRequestError, 'prompt', 'required');
  await expectError(client.videos.retrieve('no-such-video'), OpenAI.NotFoundError, 'video_id');
  await expectError(client.videos.list({ limit: 1000 }), OpenAI.BadRequestError, 'limit');
  await expectError(client.videos.list({ order: 'sideways' }), OpenAI.BadRequestError, 'order');
  await expectError(client.videos.downloadContent(created.id, { variant: 'mosaic' }), OpenAI.BadRequestError, 'variant');
  check('bad input: BadRequestError naming size, seconds, steps, model, quality, seed, prompt, limit, order, variant; NotFoundError');

  // Raw HTTP: the error JSON itself, content types, broken multipart.
  const raw = async (init, pathname = '/videos') => {
    const r = await fetch(`${base}${pathname}`, init);
    return { status: r.status, body: await r.json() };
  };
  let r = await raw({ method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: 'prompt=x' });
  assert.equal(r.status, 400);
  assert.deepEqual(Object.keys(r.body.error).sort(), ['code', 'message', 'param', 'type']);
  assert.equal(r.body.error.type, 'invalid_request_error');
  assert.equal(r.body.error.param, 'Content-Type');
  r = await raw({ method: 'POST', headers: { 'Content-Type': 'multipart/form-data; boundary=XX' },
    body: '--XX\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nfox' });
  assert.equal(r.status, 400);
  assert.match(r.body.error.message, /multipart body: a part is not closed/);
  r = await raw({ method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"prompt": ' });
  assert.equal(r.status, 400);
  assert.equal(r.body.error.param, 'body');
  r = await raw({ method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ prompt: 'x', input_reference: { image_url: 'https://example.com/a.png' } }) });
  assert.equal(r.body.error.param, 'input_reference');
  r = await raw({ method: 'PUT' });
  assert.equal(r.status, 405);
  r = await raw({}, '/elsewhere');
  assert.equal(r.status, 404);
  assert.equal(r.body.error.code, 'unknown_url');
  const listed = await client.videos.list({ limit: 100 });
  // Exactly the videos made above (created, remix, the two extensions): nothing refused was queued.
  assert.deepEqual(listed.data.map((v) => v.id).sort(), [created.id, remix.id, ext.id, uploaded.id].sort(),
    'a refused request was queued');
  check('raw HTTP: error JSON {message,type,param,code}, Content-Type, broken multipart and JSON, 405, 404; nothing refused was queued');

  // A second server: no workers, a queue of 1, a 4 KiB body limit -> 429 and 413.
  const small = await startServer('small', ['--local-workers=0', '--max-queue=1', '--api-max-body-bytes=4096']);
  const smallClient = new OpenAI({ baseURL: `http://${small.api}/v1`, apiKey: 'x', maxRetries: 0 });
  await smallClient.videos.create({ prompt: 'first', seconds: '3', fps: 8, size: '32x32', steps: 4 });
  await expectError(smallClient.videos.create({ prompt: 'second', seconds: '3', fps: 8, size: '32x32', steps: 4 }),
    OpenAI.RateLimitError);
  const big = await fetch(`http://${small.api}/v1/videos`, { method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ prompt: 'x'.repeat(10000) }) });
  assert.equal(big.status, 413);
  assert.equal((await big.json()).error.code, 'request_too_large');
  check('queue full -> RateLimitError (429); oversized body -> 413');

  // HTTPS: --tls-cert/--tls-key serve the API over TLS; the SDK trusts the test CA through
  // NODE_EXTRA_CA_CERTS (run_openai_sdk_test.sh makes both).
  const tls = process.env.MAGI_TEST_TLS_DIR;
  assert.ok(tls, 'MAGI_TEST_TLS_DIR is not set (run through run_openai_sdk_test.sh)');
  const secure = await startServer('tls', ['--local-workers=0', `--tls-cert=${tls}/server.pem`, `--tls-key=${tls}/server.key`]);
  const tlsClient = new OpenAI({ baseURL: `https://${secure.api}/v1`, apiKey: 'x', maxRetries: 0 });
  const queued = await tlsClient.videos.create({ prompt: 'over TLS', seconds: '3', fps: 8, size: '32x32', steps: 4 });
  assert.equal((await tlsClient.videos.retrieve(queued.id)).status, 'queued');
  assert.deepEqual((await tlsClient.videos.list()).data.map((v) => v.id), [queued.id]);
  await assert.rejects(fetch(`http://${secure.api}/v1/videos`), 'plain HTTP to the TLS port got an answer');
  check('HTTPS (--tls-cert): the SDK creates, retrieves and lists over TLS; plain HTTP to that port gets no answer');
}

let failed = false;
try {
  await main();
  console.log('PASS');
} catch (e) {
  failed = true;
  console.error(`FAIL: ${e.stack || e}`);
} finally {
  for (const p of servers) p.kill('SIGTERM');
  await Promise.all(servers.map((p) => (p.exitCode !== null ? null : new Promise((r) => p.once('exit', r)))));
}
process.exit(failed ? 1 : 0);
