// End-to-end test of the browser viewer (GET / of the API listener): headless Debian
// Chromium, driven by puppeteer-core, loads /?prompt=...&seconds=..., which starts a realtime
// session; the page appends the init segment and each chunk's fMP4 fragment to a Media Source
// Extensions SourceBuffer. Checks that the <video>'s buffered end grows with every chunk,
// that it grew before the video completed, that it plays, that a prompt typed into the
// "Steer" field mid-run reaches the job, and saves a screenshot.
//
//   node viewer_test.mjs SERVER_BIN WORKER_BIN WORK_DIR [CHROMIUM]
// Exit 0 pass, 1 fail.
import puppeteer from 'puppeteer-core';
import fs from 'node:fs';
import path from 'node:path';
import assert from 'node:assert/strict';
import { startServer, waitForWorkers, stopServers, check } from './magi_server.mjs';

const [serverBin, workerBin, work, chromium = '/usr/bin/chromium'] = process.argv.slice(2);
fs.rmSync(work, { recursive: true, force: true });
fs.mkdirSync(work, { recursive: true });
let browser = null;

async function main() {
  assert.ok(fs.existsSync(chromium), `${chromium} not found (scripts/setup.sh installs Debian's chromium)`);
  // 200 ms per step: the Steer prompt is typed after the first chunk is buffered and must reach
  // the job before its last chunk is done (at 60 ms it lost that race about 1 run in 3: a 404).
  const srv = await startServer(serverBin, workerBin, work, 'main',
    ['--local-workers=1', '--worker-args=--runner=synthetic --synthetic-step-ms=200', '--default-model=synthetic']);
  await waitForWorkers(srv.http, 1);

  const home = await fetch(`http://${srv.api}/`);
  assert.equal(home.status, 200);
  assert.match(home.headers.get('content-type'), /^text\/html/);
  assert.match(await home.text(), /MediaSource/);
  check('GET / serves the viewer page (text/html)');

  browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    args: ['--no-sandbox', '--autoplay-policy=no-user-gesture-required', '--disable-gpu', '--mute-audio'],
  });
  const page = await browser.newPage();
  await page.setViewport({ width: 900, height: 1000 });
  const logs = [];
  page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
  const codecOk = await page.evaluate(() => MediaSource.isTypeSupported('video/mp4; codecs="avc1.64000a"') ||
    MediaSource.isTypeSupported('video/mp4; codecs="avc1.42E01E"'));
  assert.ok(codecOk, 'this Chromium plays H.264 in MSE');

  const query = new URLSearchParams({ prompt: 'a red fox running through snow', seconds: '12', size: '128x128', fps: '8', steps: '6', seed: '3' });
  await page.goto(`http://${srv.api}/?${query}`);
  // While the job runs: the counter and the buffered end grow before the video completes.
  let sawGrowthBeforeDone = false;
  let shot = false;
  for (let i = 0; i < 600; i++) {
    const st = await page.evaluate(() => ({ ...window.magiViewer }));
    assert.equal(st.error, null, `viewer error: ${st.error}; console: ${logs.join(' | ')}`);
    if (!st.done && st.chunks >= 1 && st.bufferedEnds.at(-1) > 0) {
      sawGrowthBeforeDone = true;
      if (!shot) {
        // Steer mid-run: the "Steer" field sends prompt.update for the chunks not started yet.
        await page.type('#steer_prompt', 'a grey wolf in the snow');
        await page.click('#steer_send');
        await page.screenshot({ path: path.join(work, 'viewer_midrun.png') });
        shot = true;
      }
    }
    if (st.done && st.chunks === st.chunksTotal && st.chunksTotal > 0) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const st = await page.evaluate(() => ({ ...window.magiViewer }));
  assert.ok(st.done, `the page did not finish: ${JSON.stringify(st)}; console: ${logs.join(' | ')}`);
  assert.ok(st.chunksTotal >= 4, `chunks_total ${st.chunksTotal}`);
  assert.equal(st.chunks, st.chunksTotal);
  assert.equal(st.bufferedEnds.length, st.chunksTotal);
  for (let i = 1; i < st.bufferedEnds.length; i++) {
    assert.ok(st.bufferedEnds[i] > st.bufferedEnds[i - 1], `buffered end grows with chunk ${i}: ${st.bufferedEnds}`);
  }
  assert.ok(Math.abs(st.bufferedEnds.at(-1) - 12) < 0.2, `buffered ${st.bufferedEnds.at(-1)} s of a 12 s video`);
  assert.ok(sawGrowthBeforeDone, 'the video was buffered before the job completed');
  assert.equal(await page.$eval('#chunks', (e) => e.textContent), String(st.chunksTotal));
  check(`viewer: ${st.chunks} chunks appended, buffered end ${st.bufferedEnds.map((x) => x.toFixed(2)).join(' < ')} s, growing before done`);
  // The mid-run prompt reached the job: answered with the chunk it starts at, recorded in it.
  assert.equal(st.promptUpdates.length, 1, `prompt updates ${JSON.stringify(st.promptUpdates)}; console: ${logs.join(' | ')}`);
  const from = st.promptUpdates[0].fromChunk;
  assert.ok(from >= 1 && from < st.chunksTotal, `from_chunk ${from}`);
  const video = await (await fetch(`http://${srv.api}/v1/videos/${st.videoId}`)).json();
  assert.deepEqual(video.chunk_prompts.at(-1), { from_chunk: from, text: 'a grey wolf in the snow' });
  assert.match(await page.$eval('#steered', (e) => e.textContent), /from chunk \d+: a grey wolf/);
  check(`viewer: the Steer field's prompt reached the job mid-run (used from chunk ${from}, in chunk_prompts)`);

  // It plays: currentTime advances.
  let played = 0;
  for (let i = 0; i < 100 && played <= 0.3; i++) {
    played = await page.$eval('#video', (v) => v.currentTime);
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(played > 0.3, `the video did not play (currentTime ${played})`);
  // Still one count per chunk after the stream ended (endOfStream also fires updateend).
  const after = await page.evaluate(() => ({ ...window.magiViewer }));
  assert.equal(after.chunks, st.chunksTotal, 'chunk counter after the end of the stream');
  assert.equal(after.bufferedEnds.length, st.chunksTotal);
  await page.screenshot({ path: path.join(work, 'viewer.png') });
  assert.ok(fs.statSync(path.join(work, 'viewer.png')).size > 1000);
  check(`the <video> plays (currentTime ${played.toFixed(2)} s); screenshots ${work}/viewer_midrun.png, viewer.png`);
}

main().then(async () => { await browser?.close(); stopServers(); console.log('PASS'); process.exit(0); },
  async (e) => { console.error(`FAIL: ${e.stack || e}`); await browser?.close().catch(() => {}); stopServers(); process.exit(1); });
