#include "server/viewer_page.h"

namespace magi {
namespace {

constexpr char kHtml[] = R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>magi-serve viewer</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 56em; padding: 0 1em; color: #222; }
  h1 { font-size: 1.3em; }
  form { display: grid; grid-template-columns: max-content 1fr; gap: .4em .8em; align-items: center; }
  textarea { width: 100%; height: 4em; }
  input[type=number] { width: 6em; }
  video { width: 100%; max-height: 60vh; background: #111; margin-top: 1em; }
  progress { width: 100%; }
  #status { font-family: ui-monospace, monospace; white-space: pre-wrap; }
  .error { color: #b00020; }
</style>
</head>
<body>
<h1>magi-serve: realtime MAGI-1 viewer</h1>
<form id="form">
  <label for="prompt">Prompt</label><textarea id="prompt" name="prompt" required></textarea>
  <label for="seconds">Seconds</label><input id="seconds" name="seconds" type="number" min="1" step="1" placeholder="model default">
  <label for="size">Size (WxH)</label><input id="size" name="size" placeholder="model default">
  <label for="fps">FPS</label><input id="fps" name="fps" type="number" min="1" placeholder="model default">
  <label for="seed">Seed</label><input id="seed" name="seed" type="number" placeholder="random">
  <label for="steps">Steps</label><input id="steps" name="steps" type="number" min="1" placeholder="model default">
  <span></span><button id="start" type="submit">Generate</button>
</form>
<form id="steer">
  <label for="steer_prompt">Steer</label><input id="steer_prompt" name="steer_prompt" placeholder="a new prompt for the chunks not started yet">
  <span></span><button id="steer_send" type="submit" disabled>Update prompt</button>
</form>
<div id="steered"></div>
<video id="video" muted playsinline controls></video>
<progress id="progress" max="100" value="0"></progress>
<div>Chunks played: <span id="chunks">0</span> / <span id="total">?</span></div>
<div id="status"></div>
<script>
'use strict';
const $ = (id) => document.getElementById(id);
const state = window.magiViewer = { videoId: null, chunks: 0, chunksTotal: 0, bufferedEnds: [], done: false, error: null,
                                    promptUpdates: [] };
let socket = null;  // the running session's WebSocket
const params = new URLSearchParams(location.search);
for (const k of ['prompt', 'seconds', 'size', 'fps', 'seed', 'steps']) if (params.has(k)) $(k).value = params.get(k);

function status(text, isError) {
  $('status').textContent = text;
  $('status').className = isError ? 'error' : '';
}

// The codec string MSE needs, from the avcC box of the init segment: avc1.PPCCLL.
function codecOf(init) {
  const b = new Uint8Array(init);
  for (let i = 4; i + 8 < b.length; i++) {
    if (b[i] === 0x61 && b[i + 1] === 0x76 && b[i + 2] === 0x63 && b[i + 3] === 0x43) {  // 'avcC'
      const hex = (x) => x.toString(16).padStart(2, '0');
      return 'avc1.' + hex(b[i + 5]) + hex(b[i + 6]) + hex(b[i + 7]);
    }
  }
  return 'avc1.42E01E';
}

function start(ev) {
  if (ev) ev.preventDefault();
  $('start').disabled = true;
  const video = $('video');
  const media = new MediaSource();
  video.src = URL.createObjectURL(media);
  let sourceBuffer = null;
  const pending = [];  // [ArrayBuffer, isChunk]
  let expect = null;   // what the next binary message is: 'init' or 'chunk'
  let finished = false;
  let appendingChunk = false;  // what the SourceBuffer is appending now (endOfStream's range
                               // removal also fires updateend: it must not count as a chunk)

  function pump() {
    if (!sourceBuffer || sourceBuffer.updating) return;
    if (pending.length === 0) {
      if (finished && media.readyState === 'open') media.endOfStream();
      return;
    }
    const [data, isChunk] = pending[0];
    appendingChunk = isChunk;
    sourceBuffer.appendBuffer(data);
    pending.shift();
  }

  function onBinary(data) {
    if (expect === 'init') {
      const add = () => {
        sourceBuffer = media.addSourceBuffer('video/mp4; codecs="' + codecOf(data) + '"');
        sourceBuffer.mode = 'segments';
        sourceBuffer.addEventListener('updateend', () => {
          const wasChunk = appendingChunk;
          appendingChunk = false;
          if (wasChunk) {
            state.chunks += 1;
            const b = video.buffered;
            state.bufferedEnds.push(b.length ? b.end(b.length - 1) : 0);
            $('chunks').textContent = state.chunks;
            if (state.chunks === 1) video.play().catch(() => {});
          }
          pump();
        });
        pending.unshift([data, false]);
        pump();
      };
      if (media.readyState === 'open') add(); else media.addEventListener('sourceopen', add, { once: true });
    } else {
      pending.push([data, true]);
      pump();
    }
    expect = null;
  }

  const body = { type: 'session.start', prompt: $('prompt').value };
  for (const k of ['seconds', 'size']) if ($(k).value) body[k] = $(k).value;
  for (const k of ['fps', 'seed', 'steps']) if ($(k).value) body[k] = Number($(k).value);

  const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/v1/realtime/video');
  ws.binaryType = 'arraybuffer';
  socket = ws;
  ws.onopen = () => { status('starting...'); ws.send(JSON.stringify(body)); };
  ws.onmessage = (m) => {
    if (typeof m.data !== 'string') return onBinary(m.data);
    const msg = JSON.parse(m.data);
    if (msg.type === 'session.started') {
      state.videoId = msg.video.id;
      $('steer_send').disabled = false;
      status('video ' + msg.video.id + ': ' + msg.video.status);
    } else if (msg.type === 'progress') {
      state.chunksTotal = msg.chunks_total;
      $('total').textContent = msg.chunks_total;
      const steps = Math.max(1, msg.total_steps);
      $('progress').value = msg.chunks_total ? 100 * (msg.chunks_done + Math.min(1, msg.step / steps)) / msg.chunks_total : 0;
      status('video ' + state.videoId + ': ' + msg.status + ', chunk ' + msg.chunk + ' step ' + msg.step + '/' + msg.total_steps);
    } else if (msg.type === 'prompt.updated') {
      state.promptUpdates.push({ fromChunk: msg.from_chunk, prompt: msg.prompt });
      $('steered').textContent = 'from chunk ' + msg.from_chunk + ': ' + msg.prompt;
    } else if (msg.type === 'init_segment') {
      expect = 'init';
    } else if (msg.type === 'chunk') {
      expect = 'chunk';
      state.chunksTotal = msg.chunks_total;
      $('total').textContent = msg.chunks_total;
      $('progress').value = 100 * (msg.index + 1) / msg.chunks_total;
    } else if (msg.type === 'done') {
      finished = true;
      state.done = true;
      $('progress').value = 100;
      status('video ' + state.videoId + ': completed');
      pump();
    } else if (msg.type === 'error') {
      state.error = msg.error.message;
      status(msg.error.message, true);
      if (msg.fatal) finished = true;
    }
  };
  ws.onclose = () => { $('start').disabled = false; $('steer_send').disabled = true; socket = null; };
  ws.onerror = () => { state.error = state.error || 'WebSocket error'; status(state.error, true); };
}

$('form').addEventListener('submit', start);
// Live prompt: the running video uses it from its next chunk that has not started denoising.
$('steer').addEventListener('submit', (e) => {
  e.preventDefault();
  const text = $('steer_prompt').value.trim();
  if (!socket || !text) return;
  socket.send(JSON.stringify({ type: 'prompt.update', prompt: text }));
  $('steered').textContent = 'sent: ' + text;
});
if (params.has('prompt')) start();
</script>
</body>
</html>
)HTML";

}  // namespace

std::string_view ViewerPageHtml() { return std::string_view(kHtml, sizeof(kHtml) - 1); }

}  // namespace magi
