#!/usr/bin/python3
"""End-to-end tests of magi-server: the real server, real magi-worker processes (synthetic
frame runner: deterministic test patterns, NOT the model), the magi CLI and a Python grpcio
client.

Environment (set by CTest, see CMakeLists.txt):
  MAGI_SERVER_BIN, MAGI_WORKER_BIN   the executables under test
  MAGI_CLI_BIN                       the magi CLI (optional: CLI tests skip without it)
  MAGI_PY_STUBS                      folder with the generated magi/v1 Python stubs
Run one test:  e2e_test.py E2e.test_cancel_mid_job
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.environ.get("MAGI_PY_STUBS", ""))
import grpc  # noqa: E402
from magi.v1 import video_generation_pb2 as pb  # noqa: E402
from magi.v1 import video_generation_pb2_grpc as pbg  # noqa: E402
from magi.internal.v1 import worker_pool_pb2 as wpb  # noqa: E402
from magi.internal.v1 import worker_pool_pb2_grpc as wpbg  # noqa: E402

SERVER_BIN = os.environ.get("MAGI_SERVER_BIN", "magi-server")
WORKER_BIN = os.environ.get("MAGI_WORKER_BIN", "magi-worker")
CLI_BIN = os.environ.get("MAGI_CLI_BIN", "")
FRAMES_PER_CHUNK = 24  # the "tiny" and "synthetic" models


def request(chunks=3, steps=4, **kw):
    r = pb.GenerateRequest(prompts=[pb.ChunkPrompt(from_chunk=0, text="a red fox in the snow")],
                           num_frames=chunks * FRAMES_PER_CHUNK, width=64, height=64, fps=8,
                           num_steps=steps, seed=7)
    for k, v in kw.items():
        setattr(r, k, v)
    return r


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(addr, path):
    try:
        with urllib.request.urlopen("http://%s%s" % (addr, path), timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, ConnectionError):
        return None, ""


def wait_http(addr, path, code, timeout=20):
    end = time.time() + timeout
    got = None
    while time.time() < end:
        got = http_get(addr, path)
        if got[0] == code:
            return got
        time.sleep(0.05)
    raise AssertionError("%s%s: wanted %s, last %r" % (addr, path, code, got))


class Worker:
    """One magi-worker process dialing `srv`'s worker port, with its probes on a free port."""

    def __init__(self, srv, *args):
        self.http = "127.0.0.1:%d" % free_port()
        self.log = open(os.path.join(srv.state_dir, "worker-%s.log" % self.http.split(":")[1]), "ab")
        self.proc = subprocess.Popen(
            [WORKER_BIN, "--server=" + srv.workers_addr,
             "--worker_token_file=" + os.path.join(srv.state_dir, "worker_token"),
             "--group_id=external", "--http_listen=" + self.http] + list(args),
            stdout=self.log, stderr=self.log)

    def get(self, path):
        return http_get(self.http, path)

    def wait(self, timeout=30):
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.log.close()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Server:
    """One magi-server process with its local workers, on free ports and a temp state dir."""

    def __init__(self, state_dir, workers=1, step_ms=10, extra=(), runner="synthetic", worker_timeout=15):
        """runner="synthetic": the fast test-pattern runner; "model": the default (MAGI-1 on
        the embedded tiny model, generated in <state_dir>/models/tiny on first start)."""
        self.state_dir = state_dir
        args = [SERVER_BIN, "--listen=127.0.0.1:0", "--http-listen=127.0.0.1:0", "--api-listen=127.0.0.1:0",
                "--state-dir=" + state_dir, "--local-workers=%d" % workers,
                "--worker-binary=" + WORKER_BIN, "--drain-timeout-seconds=20"]
        if runner == "synthetic":  # its model is "synthetic", the default of requests naming none
            args += ["--worker-args=--runner=synthetic --synthetic-step-ms=%d" % step_ms, "--default-model=synthetic"]
        args += list(extra)
        self.log = open(os.path.join(state_dir, "server.log"), "ab")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log)
        line = self.proc.stdout.readline().decode()
        m = re.search(r"grpc=(\S+) http=(\S+) workers=(\S+) api=(\S+)", line)
        if not m:
            raise RuntimeError("server did not start: %r (log %s)" % (line, self.log.name))
        self.addr, self.http, self.workers_addr, self.api = m.group(1), m.group(2), m.group(3), m.group(4)
        self.channel = grpc.insecure_channel(self.addr, options=[
            ("grpc.max_receive_message_length", 256 << 20),
            ("grpc.max_send_message_length", 256 << 20)])
        self.stub = pbg.VideoGenerationStub(self.channel)
        self.wait_for_workers(workers, timeout=worker_timeout)

    def metric(self, name):
        """Sum of the samples of `name` (`metric` or `metric{label="value",...}`) whose labels
        include the given ones (series with more labels, e.g. `model`, count); None if none."""
        text = self.get("/metrics")[1]
        base, _, want = name.partition("{")
        want = set(re.findall(r'(\w+)="([^"]*)"', want))
        total = None
        for m in re.finditer(r"^%s(?:\{([^}]*)\})? (\S+)$" % re.escape(base), text, re.M):
            if want <= set(re.findall(r'(\w+)="([^"]*)"', m.group(1) or "")):
                total = (total or 0.0) + float(m.group(2))
        return total

    def get(self, path):
        try:
            with urllib.request.urlopen("http://%s%s" % (self.http, path), timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def wait_for_workers(self, n, timeout=15):
        end = time.time() + timeout
        while time.time() < end:
            if (self.metric("magi_worker_groups_up") or 0) >= n:
                return
            time.sleep(0.05)
        raise RuntimeError("%d worker group(s) did not register" % n)

    def worker_pids(self):
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def wait_job(self, job_id, states, timeout=30):
        end = time.time() + timeout
        while time.time() < end:
            job = self.stub.GetJob(pb.GetJobRequest(job_id=job_id))
            if job.state in states:
                return job
            time.sleep(0.05)
        raise AssertionError("job %s not in %s after %ss" % (job_id, states, timeout))

    def video(self, job_id):
        return b"".join(d.data for d in self.stub.GetVideo(pb.GetVideoRequest(job_id=job_id)))

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.channel.close()
        self.proc.stdout.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.channel.close()
        self.proc.stdout.close()
        self.log.close()


def ffprobe_frames(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
                          "-show_entries", "stream=nb_read_frames,codec_name", "-of", "json", path],
                         capture_output=True, text=True)
    if out.returncode != 0:
        return -1
    return int(json.loads(out.stdout)["streams"][0]["nb_read_frames"])


def collect(stream, on_event=None):
    """Reads a Generate/Watch stream: (events, chunk list, final status code)."""
    events, chunks = [], []
    code = grpc.StatusCode.OK
    try:
        for ev in stream:
            events.append((time.time(), ev))
            if ev.WhichOneof("event") == "chunk":
                chunks.append(ev.chunk)
            if on_event and on_event(ev) is False:
                break
    except grpc.RpcError as e:
        code = e.code()
    return events, chunks, code


class E2e(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="magi-e2e-")
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def server(self, sub="state", **kw):
        d = os.path.join(self.dir, sub)
        os.makedirs(d, exist_ok=True)
        s = Server(d, **kw)
        self.servers.append(s)
        return s

    @staticmethod
    def kill_workers_after_chunk(srv, index, killed):
        """An event callback for collect(): SIGKILLs the server's workers once chunk `index`
        arrives (their pids appended to `killed`)."""
        def on_event(ev):
            if ev.WhichOneof("event") == "chunk" and ev.chunk.index == index and not killed:
                for pid in srv.worker_pids():
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
        return on_event

    def assert_resumed_at(self, srv, job_id, first_chunk):
        """Resumed, not restarted: attempt 1 started at chunk 0, every later one at `first_chunk`
        or after, and no worker re-sent a stored chunk (the server drops duplicates, which would
        hide a restart from chunk 0 from the byte checks). What the workers were told (their own
        log lines; local workers write to the server's stderr), not what the server meant."""
        srv.log.flush()
        starts = []
        for name in sorted(os.listdir(srv.state_dir)):
            if name.endswith(".log"):
                with open(os.path.join(srv.state_dir, name), encoding="utf-8", errors="replace") as f:
                    text = f.read()
                starts += re.findall(r"job %s attempt (\d+) starts at chunk (\d+)" % re.escape(job_id), text)
                self.assertNotIn("sent chunk", text)
        starts.sort(key=lambda s: int(s[0]))
        self.assertEqual(starts[0], ("1", "0"), starts)
        later = [int(k) for _, k in starts[1:]]
        self.assertTrue(later and all(k >= first_chunk for k in later), starts)

    def reference_video(self, srv, req):
        """The same request run again, uninterrupted, on the same server."""
        job = srv.stub.Submit(req).job
        srv.wait_job(job.job_id, [pb.JOB_STATE_SUCCEEDED], timeout=60)
        return srv.video(job.job_id)

    # -- streaming -------------------------------------------------------------------
    def test_chunks_arrive_before_job_ends(self):
        srv = self.server(step_ms=40)
        events, chunks, code = collect(srv.stub.Generate(request(chunks=4, steps=4)))
        self.assertEqual(code, grpc.StatusCode.OK)
        kinds = [e.WhichOneof("event") for _, e in events]
        self.assertEqual(kinds[0], "accepted")
        self.assertEqual(kinds[-1], "completed")
        self.assertIn("progress", kinds)
        self.assertEqual([c.index for c in chunks], [0, 1, 2, 3])
        t_first = next(t for t, e in events if e.WhichOneof("event") == "chunk")
        t_done = events[-1][0]
        # 4 chunks x 4 steps x 40 ms: chunk 0 must be in hand long before the end.
        self.assertGreater(t_done - t_first, 0.3)
        self.assertTrue(chunks[0].init_segment)
        self.assertFalse(any(c.init_segment for c in chunks[1:]))
        # init + fragments 0..k is playable for every k
        path = os.path.join(self.dir, "partial.mp4")
        data = b""
        for k, c in enumerate(chunks):
            data += c.init_segment + c.fragment
            with open(path, "wb") as f:
                f.write(data)
            self.assertEqual(ffprobe_frames(path), (k + 1) * FRAMES_PER_CHUNK)
        job_id = events[0][1].accepted.job_id
        self.assertEqual(srv.video(job_id), data)
        job = srv.stub.GetJob(pb.GetJobRequest(job_id=job_id))
        self.assertEqual(job.state, pb.JOB_STATE_SUCCEEDED)
        self.assertEqual(job.chunks_done, 4)
        self.assertGreaterEqual(srv.metric("magi_chunks_emitted_total"), 4)

    def test_model_runner_t2v(self):
        """The default runner: MAGI-1 (T5 -> AR engine -> VAE) on the embedded tiny model."""
        srv = self.server(runner="model", worker_timeout=60)
        self.assertTrue(os.path.exists(os.path.join(srv.state_dir, "models", "tiny", "tiny_model.json")))
        req = pb.GenerateRequest(prompts=[pb.ChunkPrompt(from_chunk=0, text="a red fox running through the snow")],
                                 num_frames=4 * FRAMES_PER_CHUNK, width=64, height=48, num_steps=8, seed=11)
        events, chunks, code = collect(srv.stub.Generate(req, timeout=110))
        self.assertEqual(code, grpc.StatusCode.OK, [e for _, e in events][-1:])
        kinds = [e.WhichOneof("event") for _, e in events]
        self.assertEqual(kinds[0], "accepted")
        self.assertEqual(kinds[-1], "completed")
        self.assertIn("progress", kinds)
        self.assertEqual([c.index for c in chunks], [0, 1, 2, 3])
        # Every chunk's fragment arrives as it is made: chunk 0 comes before later progress.
        first_chunk = kinds.index("chunk")
        self.assertIn("progress", kinds[first_chunk + 1:])
        data = b"".join(c.init_segment + c.fragment for c in chunks)
        path = os.path.join(self.dir, "model.mp4")
        with open(path, "wb") as f:
            f.write(data)
        out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
                              "-show_entries", "stream=nb_read_frames,codec_name,width,height", "-of", "json", path],
                             capture_output=True, text=True)
        self.assertEqual(out.returncode, 0, out.stderr)
        stream = json.loads(out.stdout)["streams"][0]
        self.assertEqual(stream["codec_name"], "h264")
        self.assertEqual(int(stream["nb_read_frames"]), 4 * FRAMES_PER_CHUNK)
        self.assertEqual((stream["width"], stream["height"]), (64, 48))
        job_id = events[0][1].accepted.job_id
        self.assertEqual(srv.video(job_id), data)
        # The worker registered as the model runner serving "tiny".
        self.assertEqual(srv.stub.GetJob(pb.GetJobRequest(job_id=job_id)).state, pb.JOB_STATE_SUCCEEDED)

    def test_live_prompt_update_tp2(self):
        """UpdatePrompt on a running job of a TP=2 group of the tiny model: both ranks use the new
        prompt from the chunk the group answers with, the job records it, and the video equals a
        run that named that prompt from that chunk up front (what a resumed job replays)."""
        srv = self.server(runner="model", worker_timeout=90, extra=["--worker-args=--tp=2"])
        fox, wolf = "a red fox running through the snow", "a grey wolf howling at the moon"
        req = pb.GenerateRequest(prompts=[pb.ChunkPrompt(from_chunk=0, text=fox)],
                                 num_frames=6 * FRAMES_PER_CHUNK, width=64, height=48, num_steps=32, seed=11)
        job_id = srv.stub.Submit(req).job.job_id
        end = time.time() + 90
        while srv.stub.GetJob(pb.GetJobRequest(job_id=job_id)).state != pb.JOB_STATE_RUNNING:
            self.assertLess(time.time(), end, "not running in 90 s")
            time.sleep(0.01)
        resp = srv.stub.UpdatePrompt(pb.UpdatePromptRequest(job_id=job_id, text=wolf), timeout=90)
        k = resp.from_chunk
        self.assertTrue(0 <= k < 6, k)
        want = ([(0, fox)] if k > 0 else []) + [(k, wolf)]
        self.assertEqual([(p.from_chunk, p.text) for p in resp.job.request.prompts], want)
        job = srv.wait_job(job_id, [pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED], timeout=150)
        self.assertEqual(job.state, pb.JOB_STATE_SUCCEEDED, job)
        self.assertEqual([(p.from_chunk, p.text) for p in job.request.prompts], want)
        live = srv.video(job_id)
        up_front = pb.GenerateRequest()
        up_front.CopyFrom(req)
        del up_front.prompts[:]
        up_front.prompts.extend([pb.ChunkPrompt(from_chunk=f, text=t) for f, t in want])
        self.assertEqual(live, self.reference_video(srv, up_front))
        self.assertNotEqual(live, self.reference_video(srv, req))
        print("live prompt (tp=2): used from chunk %d; video identical to the up-front request" % k)
        # An ended job, an empty text, an unknown id: refused at once.
        for text, jid, code in ((wolf, job_id, grpc.StatusCode.FAILED_PRECONDITION),
                                ("", job_id, grpc.StatusCode.FAILED_PRECONDITION),
                                (wolf, "nope", grpc.StatusCode.NOT_FOUND)):
            with self.assertRaises(grpc.RpcError) as cm:
                srv.stub.UpdatePrompt(pb.UpdatePromptRequest(job_id=jid, text=text), timeout=10)
            self.assertEqual(cm.exception.code(), code, cm.exception.details())

    def test_cancel_mid_job(self):
        # 40 chunks x 16 steps x 30 ms: ~19 s of work, cancelled after its second chunk.
        srv = self.server(step_ms=30)
        job = srv.stub.Submit(request(chunks=40, steps=16)).job
        seen = []

        def until_chunk1(ev):
            if ev.WhichOneof("event") == "chunk" and ev.chunk.index == 1:
                seen.append(1)
                srv.stub.Cancel(pb.CancelRequest(job_id=job.job_id))
        events, chunks, code = collect(srv.stub.Watch(pb.WatchRequest(job_id=job.job_id)), until_chunk1)
        self.assertEqual(seen, [1])
        self.assertEqual(code, grpc.StatusCode.CANCELLED)
        self.assertEqual(events[-1][1].WhichOneof("event"), "failed")
        self.assertLess(len(chunks), 40)
        got = srv.stub.GetJob(pb.GetJobRequest(job_id=job.job_id))
        self.assertEqual(got.state, pb.JOB_STATE_CANCELLED)
        # The worker stopped: the group's slot stays busy until the worker reports the job done,
        # so a worker that kept computing would hold this job back for ~18 s more.
        t0 = time.monotonic()
        _, _, code2 = collect(srv.stub.Generate(request(chunks=1)))
        self.assertEqual(code2, grpc.StatusCode.OK)
        self.assertLess(time.monotonic() - t0, 8.0, "the worker kept computing the cancelled job")
        with self.assertRaises(grpc.RpcError) as cm:
            srv.stub.GetVideo(pb.GetVideoRequest(job_id=job.job_id)).next()
        self.assertEqual(cm.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)

    def test_disconnect_then_watch_from_chunk(self):
        srv = self.server(step_ms=20)
        stream = srv.stub.Generate(request(chunks=5))
        first = []
        job_id = None
        for ev in stream:
            k = ev.WhichOneof("event")
            if k == "accepted":
                job_id = ev.accepted.job_id
            if k == "chunk":
                first.append(ev.chunk)
                if ev.chunk.index == 1:
                    stream.cancel()  # the client goes away; the job must go on
                    break
        srv.wait_job(job_id, [pb.JOB_STATE_SUCCEEDED])
        events, chunks, code = collect(srv.stub.Watch(pb.WatchRequest(job_id=job_id, from_chunk=2)))
        self.assertEqual(code, grpc.StatusCode.OK)
        self.assertEqual([c.index for c in chunks], [2, 3, 4])
        self.assertTrue(chunks[0].init_segment)  # a fresh watcher can play from here
        self.assertFalse(any(c.init_segment for c in chunks[1:]))
        self.assertEqual(events[-1][1].WhichOneof("event"), "completed")
        whole = b"".join(c.init_segment + c.fragment for c in first) + b"".join(c.fragment for c in chunks)
        self.assertEqual(whole, srv.video(job_id))
        with self.assertRaises(grpc.RpcError) as cm:
            list(srv.stub.Watch(pb.WatchRequest(job_id="j-nope")))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)

    # -- admission, deadlines ----------------------------------------------------------
    def test_queue_full(self):
        srv = self.server(workers=0, extra=["--max-queue=2"])
        a = srv.stub.Submit(request()).job
        b = srv.stub.Submit(request()).job
        self.assertEqual((a.queue_position, b.queue_position), (0, 1))
        with self.assertRaises(grpc.RpcError) as cm:
            srv.stub.Submit(request())
        self.assertEqual(cm.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
        self.assertIn("queue is full", cm.exception.details())
        # priority: a high-priority job goes to the front (after cancelling one to make room)
        srv.stub.Cancel(pb.CancelRequest(job_id=b.job_id))
        c = srv.stub.Submit(request(priority=9)).job
        self.assertEqual(c.queue_position, 0)
        self.assertEqual(srv.stub.GetJob(pb.GetJobRequest(job_id=a.job_id)).queue_position, 1)
        # idempotency: the same key is the same job
        srv.stub.Cancel(pb.CancelRequest(job_id=a.job_id))
        k1 = srv.stub.Submit(request(idempotency_key="k-1")).job
        k2 = srv.stub.Submit(request(idempotency_key="k-1")).job
        self.assertEqual(k1.job_id, k2.job_id)
        # ... and the same key with a different request is refused, naming the key
        with self.assertRaises(grpc.RpcError) as cm:
            srv.stub.Submit(request(idempotency_key="k-1", seed=8))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.ALREADY_EXISTS)
        self.assertTrue(cm.exception.details().startswith("idempotency_key: 'k-1'"), cm.exception.details())
        self.assertEqual(srv.metric("magi_queue_depth"), 2)

    def test_deadline(self):
        srv = self.server(step_ms=50)
        deadline = int(time.time() * 1000) + 600
        events, chunks, code = collect(srv.stub.Generate(request(chunks=10, deadline_unix_ms=deadline)))
        self.assertEqual(code, grpc.StatusCode.DEADLINE_EXCEEDED)
        self.assertEqual(events[-1][1].failed.code, grpc.StatusCode.DEADLINE_EXCEEDED.value[0])
        self.assertLess(len(chunks), 10)
        job = srv.stub.GetJob(pb.GetJobRequest(job_id=events[0][1].accepted.job_id))
        self.assertEqual(job.state, pb.JOB_STATE_FAILED)
        with self.assertRaises(grpc.RpcError) as cm:
            srv.stub.Submit(request(deadline_unix_ms=int(time.time() * 1000) - 1000))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
        self.assertEqual(srv.metric('magi_jobs_total{outcome="deadline_exceeded"}'), 1)

    # -- worker authentication ---------------------------------------------------------
    def test_worker_auth(self):
        """A plain client posing as a worker group (no token, a wrong token, or on the public
        port) is refused and gets no job; a magi-worker with the server's token gets it."""
        srv = self.server(workers=0, extra=["--worker-listen=127.0.0.1:0"])
        self.assertNotEqual(srv.workers_addr, srv.addr)
        token_file = os.path.join(srv.state_dir, "worker_token")
        self.assertEqual(os.stat(token_file).st_mode & 0o777, 0o600)
        with open(token_file) as f:
            token = f.read().strip()
        self.assertEqual(len(token), 64)
        job = srv.stub.Submit(request(chunks=1)).job

        def pose_as_group(addr, metadata):
            reg = wpb.WorkerMessage(register=wpb.Register(
                group_id="impostor", slots=1, world_size=1,
                models=[wpb.ModelInfo(name="tiny", frames_per_chunk=24, max_frames=240,
                                      max_width=1024, max_height=1024)]))
            with grpc.insecure_channel(addr) as ch:
                received = []
                try:
                    for m in wpbg.WorkerPoolStub(ch).Connect(iter([reg]), metadata=metadata, timeout=10):
                        received.append(m)
                except grpc.RpcError as e:
                    return received, e.code(), e.details()
                return received, grpc.StatusCode.OK, ""

        for md, want in ((None, grpc.StatusCode.UNAUTHENTICATED),
                         ((("authorization", "Bearer " + "0" * 64),), grpc.StatusCode.UNAUTHENTICATED),
                         ((("authorization", token),), grpc.StatusCode.UNAUTHENTICATED)):
            received, code, details = pose_as_group(srv.workers_addr, md)
            self.assertEqual(code, want, details)
            self.assertEqual(received, [])
            self.assertNotIn(token, details)
        # The public port does not serve the worker protocol at all, token or not.
        received, code, _ = pose_as_group(srv.addr, (("authorization", "Bearer " + token),))
        self.assertEqual(code, grpc.StatusCode.UNIMPLEMENTED)
        self.assertEqual(received, [])
        self.assertEqual(srv.metric('magi_worker_auth_failures_total{reason="missing"}'), 1)
        self.assertEqual(srv.metric('magi_worker_auth_failures_total{reason="invalid"}'), 1)
        self.assertEqual(srv.metric('magi_worker_auth_failures_total{reason="malformed"}'), 1)
        self.assertEqual(srv.metric("magi_worker_groups_up"), 0)
        self.assertEqual(srv.stub.GetJob(pb.GetJobRequest(job_id=job.job_id)).state, pb.JOB_STATE_QUEUED)
        with open(srv.log.name, "rb") as f:
            log = f.read().decode(errors="replace")
        self.assertIn("refused WorkerPool call", log)
        self.assertNotIn(token, log)

        # magi-worker refuses to start without a usable token file, naming the flag.
        worker = [WORKER_BIN, "--server=" + srv.workers_addr, "--runner=synthetic", "--synthetic-step-ms=1"]
        empty = os.path.join(self.dir, "empty_token")
        open(empty, "w").close()
        for extra, message in (([], "--worker_token_file: not set"),
                               (["--worker-token-file=" + empty], "holds no token"),
                               (["--worker-token-file=" + os.path.join(self.dir, "nope")], "cannot open")):
            out = subprocess.run(worker + extra, capture_output=True, text=True, timeout=30)
            self.assertEqual(out.returncode, 2, out.stderr)
            self.assertIn(message, out.stderr)
        # ... and so does magi-server.
        out = subprocess.run([SERVER_BIN, "--listen=127.0.0.1:0", "--http-listen=",
                              "--state-dir=" + os.path.join(self.dir, "other"),
                              "--worker-token-file=" + empty], capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 2, out.stderr)
        self.assertIn("--worker_token_file", out.stderr)

        # The real group, with the server's token, gets the job.
        proc = subprocess.Popen(worker + ["--worker-token-file=" + token_file, "--group-id=real"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            srv.wait_for_workers(1)
            done = srv.wait_job(job.job_id, [pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED], timeout=60)
            self.assertEqual(done.state, pb.JOB_STATE_SUCCEEDED)
        finally:
            proc.terminate()
            proc.wait(timeout=30)

    # -- failures: workers and server --------------------------------------------------
    def test_kill_worker_mid_job(self):
        srv = self.server(step_ms=25)
        req = request(chunks=5, seed=11)
        stream = srv.stub.Generate(req)
        killed = []
        kill_after_chunk1 = self.kill_workers_after_chunk(srv, 1, killed)
        events, chunks, code = collect(stream, kill_after_chunk1)
        self.assertTrue(killed)
        self.assertEqual(code, grpc.StatusCode.OK)
        self.assertEqual(events[-1][1].WhichOneof("event"), "completed")
        self.assertGreaterEqual(events[-1][1].completed.stats.attempts, 2)
        self.assertEqual(sorted(c.index for c in chunks), [0, 1, 2, 3, 4])
        job_id = events[0][1].accepted.job_id
        streamed = b"".join(c.init_segment + c.fragment for c in chunks)
        self.assertEqual(streamed, srv.video(job_id))
        self.assertEqual(srv.video(job_id), self.reference_video(srv, req))
        self.assertGreaterEqual(srv.metric("magi_jobs_requeued_total"), 1)
        # Resumed, not restarted: the second attempt starts after the chunks the client already
        # had (0 and 1), so no chunk was computed twice (the server drops duplicates silently,
        # which would hide a restart from chunk 0 from every check above).
        self.assert_resumed_at(srv, job_id, 2)

    def test_kill_model_worker_mid_job(self):
        """Resumption with the model runner across processes: the new worker process starts at the
        next chunk (it replays the earlier ones without sending them) and the video matches an
        undisturbed run of the same request."""
        srv = self.server(runner="model", worker_timeout=60)
        req = pb.GenerateRequest(prompts=[pb.ChunkPrompt(from_chunk=0, text="a red fox running through the snow")],
                                 num_frames=6 * FRAMES_PER_CHUNK, width=64, height=48, num_steps=32, seed=5)
        killed = []
        kill_after_chunk1 = self.kill_workers_after_chunk(srv, 1, killed)
        events, chunks, code = collect(srv.stub.Generate(req, timeout=170), kill_after_chunk1)
        self.assertTrue(killed)
        self.assertEqual(code, grpc.StatusCode.OK, [e for _, e in events][-1:])
        self.assertGreaterEqual(events[-1][1].completed.stats.attempts, 2)
        self.assertEqual(sorted(c.index for c in chunks), list(range(6)))
        job_id = events[0][1].accepted.job_id
        self.assert_resumed_at(srv, job_id, 2)
        resumed = b"".join(c.init_segment + c.fragment for c in chunks)
        reference = self.reference_video(srv, req)
        paths = []
        for name, data in (("resumed", resumed), ("reference", reference)):
            path = os.path.join(self.dir, name + ".mp4")
            with open(path, "wb") as f:
                f.write(data)
            paths.append(path)
        frames = [subprocess.run(["ffmpeg", "-v", "error", "-i", p, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                                 capture_output=True, check=True).stdout for p in paths]
        self.assertEqual(len(frames[0]), 6 * FRAMES_PER_CHUNK * 64 * 48 * 3)
        self.assertEqual(len(frames[0]), len(frames[1]))
        # Byte-identical when both runs round alike; the decoded frames must agree either way (a
        # restart with other noise or a lost chunk differs by tens of levels on average).
        diff = sum(abs(a - b) for a, b in zip(frames[0], frames[1])) / len(frames[0])
        print("model runner resume: bytes %s, mean |frame diff| %.4f" % (resumed == reference, diff))
        self.assertLess(diff, 0.25)

    # -- fault matrix for rank groups (TP=2 and CP=2 of the tiny model) ----------------
    def group_ranks(self, srv):
        """{rank: pid} of the rank processes of the server's one local group (launcher's
        children; RANK from each process's environment)."""
        ranks = {}
        for launcher in srv.worker_pids():
            out = subprocess.run(["pgrep", "-P", str(launcher)], capture_output=True, text=True)
            for pid in (int(p) for p in out.stdout.split()):
                try:
                    with open("/proc/%d/environ" % pid, "rb") as f:
                        env = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
                except OSError:
                    continue
                if b"RANK" in env:
                    ranks[int(env[b"RANK"])] = pid
        return ranks

    def state_processes(self, state_dir):
        out = subprocess.run(["pgrep", "-f", "--", state_dir], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def fault_case(self, layout, fault):
        """One cell of the matrix: a job on a 2-rank `layout` group (tp or cp) of the tiny model
        meets `fault` once a chunk is stored (kill -9 of rank 0 or 1, SIGSTOP of rank 1, or a kill -9
        and restart of the server). The job must finish, resumed at a stored chunk with none re-sent,
        with video bytes identical to an undisturbed run of the same request on a fresh group,
        and no process of the state dir may outlive the server."""
        extra = ["--worker-args=--%s=2 --dist_timeout_seconds=6" % layout]
        srv = self.server(runner="model", worker_timeout=90, extra=extra)
        req = pb.GenerateRequest(prompts=[pb.ChunkPrompt(from_chunk=0, text="a red fox running through the snow")],
                                 num_frames=5 * FRAMES_PER_CHUNK, width=64, height=48, num_steps=32, seed=11)
        ranks = self.group_ranks(srv)
        self.assertEqual(sorted(ranks), [0, 1], ranks)
        job_id = srv.stub.Submit(req).job.job_id
        end = time.time() + 90
        while srv.stub.GetJob(pb.GetJobRequest(job_id=job_id)).chunks_done < 1:
            self.assertLess(time.time(), end, "no chunk in 90 s")
            time.sleep(0.02)
        stored = srv.stub.GetJob(pb.GetJobRequest(job_id=job_id)).chunks_done
        stopped = None
        if fault in ("kill_rank0", "kill_rank1"):
            os.kill(ranks[int(fault[-1])], signal.SIGKILL)
        elif fault == "stop_rank1":
            stopped = ranks[1]
            os.kill(stopped, signal.SIGSTOP)
        elif fault == "restart_server":
            srv.kill9()
            self.servers.remove(srv)
            srv.log.close()
            srv = Server(srv.state_dir, runner="model", worker_timeout=90, extra=extra)
            self.servers.append(srv)
        try:
            job = srv.wait_job(job_id, [pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED], timeout=150)
        finally:
            if stopped is not None:
                try:
                    os.kill(stopped, signal.SIGCONT)
                except ProcessLookupError:
                    pass
        self.assertEqual(job.state, pb.JOB_STATE_SUCCEEDED, job)
        self.assertGreaterEqual(job.attempts, 2 if fault != "restart_server" else 1)
        if fault != "restart_server":
            self.assert_resumed_at(srv, job_id, stored)
        if stopped is not None:
            self.assertFalse(os.path.exists("/proc/%d" % stopped) and
                             open("/proc/%d/stat" % stopped).read().split()[2] != "Z",
                             "the stopped rank %d still runs" % stopped)
        resumed = srv.video(job_id)
        reference = self.reference_video(srv, req)
        print("fault %s/%s: attempts %d, %d bytes, identical to an undisturbed run: %s"
              % (layout, fault, job.attempts, len(resumed), resumed == reference))
        self.assertEqual(resumed, reference)
        state_dir = srv.state_dir
        srv.stop()
        self.servers.remove(srv)
        end = time.time() + 10
        while self.state_processes(state_dir) and time.time() < end:
            time.sleep(0.1)
        self.assertEqual(self.state_processes(state_dir), [], "processes outlived the server")

    def test_fault_tp2_kill_leader(self):
        self.fault_case("tp", "kill_rank0")

    def test_fault_tp2_kill_follower(self):
        self.fault_case("tp", "kill_rank1")

    def test_fault_cp2_kill_leader(self):
        self.fault_case("cp", "kill_rank0")

    def test_fault_cp2_kill_follower(self):
        self.fault_case("cp", "kill_rank1")

    def test_fault_tp2_stopped_follower(self):
        self.fault_case("tp", "stop_rank1")

    def test_fault_cp2_server_restart(self):
        self.fault_case("cp", "restart_server")

    def test_second_server_is_refused(self):
        """A second magi-server on a port in use, or on a state dir in use, exits at start with a
        clear error (gRPC's default SO_REUSEPORT would let it share the port silently; two
        servers on one job store would hand out the same jobs twice)."""
        srv = self.server(step_ms=5)
        other_dir = os.path.join(self.dir, "other")
        os.makedirs(other_dir)
        for listen, state_dir, want in ((srv.addr, other_dir, "cannot listen"),
                                        ("127.0.0.1:0", srv.state_dir, "in use by another magi-server")):
            p = subprocess.run([SERVER_BIN, "--listen=" + listen, "--http-listen=127.0.0.1:0", "--api-listen=",
                                "--state-dir=" + state_dir, "--local-workers=0"],
                               capture_output=True, text=True, timeout=30)
            self.assertNotEqual(p.returncode, 0, p.stderr)
            self.assertIn(want, p.stderr)
        # The first server is untouched.
        _, chunks, code = collect(srv.stub.Generate(request(chunks=1)))
        self.assertEqual((code, len(chunks)), (grpc.StatusCode.OK, 1))

    def test_server_restart_recovers_jobs(self):
        srv = self.server(step_ms=25)
        reqs = [request(chunks=4, seed=s) for s in (1, 2, 3)]
        ids = [srv.stub.Submit(r).job.job_id for r in reqs]
        # wait until the first job has stored a chunk, then crash the server
        end = time.time() + 20
        while srv.stub.GetJob(pb.GetJobRequest(job_id=ids[0])).chunks_done < 1:
            self.assertLess(time.time(), end)
            time.sleep(0.02)
        srv.kill9()
        self.servers.remove(srv)
        srv.log.close()
        srv2 = Server(srv.state_dir, step_ms=5)
        self.servers.append(srv2)
        for job_id in ids:
            job = srv2.wait_job(job_id, [pb.JOB_STATE_SUCCEEDED], timeout=60)
            self.assertEqual(job.chunks_done, 4)
        for job_id, r in zip(ids, reqs):
            path = os.path.join(self.dir, job_id + ".mp4")
            with open(path, "wb") as f:
                f.write(srv2.video(job_id))
            self.assertEqual(ffprobe_frames(path), 4 * FRAMES_PER_CHUNK)
        self.assertEqual(srv2.video(ids[0]), self.reference_video(srv2, reqs[0]))

    # -- validation --------------------------------------------------------------------
    def test_bad_requests(self):
        srv = self.server()
        ok = request()
        cases = [
            ("num_frames", dict(num_frames=-1)),
            ("num_frames", dict(num_frames=100000)),
            ("width", dict(width=17)),
            ("width", dict(width=8192)),
            ("height", dict(height=-16)),
            ("fps", dict(fps=1000)),
            ("num_steps", dict(num_steps=1000)),
            ("priority", dict(priority=10)),
            ("seed", dict(seed=-5)),
            ("mode", dict(mode=7)),
            ("image", dict(mode=pb.MODE_I2V)),
            ("image", dict(mode=pb.MODE_I2V, image=b"\x89PNG\r\n\x1a\n corrupt bytes")),
            ("image", dict(image=b"\xff\xd8\xff")),
            ("prefix_video", dict(mode=pb.MODE_V2V, prefix_video=b"not a video at all")),
            ("model", dict(model="no-such-model")),
            ("idempotency_key", dict(idempotency_key="k" * 1000)),
            ("deadline_unix_ms", dict(deadline_unix_ms=int(time.time() * 1000) + 10 ** 12)),
        ]
        for field, kw in cases:
            with self.subTest(field=field, kw=str(kw)[:60]):
                with self.assertRaises(grpc.RpcError) as cm:
                    srv.stub.Submit(request(**kw))
                self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
                self.assertTrue(cm.exception.details().startswith(field), cm.exception.details())
        special = [
            ("guidance.text_scale", lambda r: setattr(r.guidance, "text_scale", 50.0)),
            ("guidance.cfg_number", lambda r: setattr(r.guidance, "cfg_number", 2)),
            ("prompts", lambda r: r.ClearField("prompts")),
            ("prompts[0].text", lambda r: setattr(r.prompts[0], "text", "x" * (10 << 20))),
            ("prompts[1].from_chunk", lambda r: r.prompts.add(from_chunk=99, text="later")),
            ("prompts[0].from_chunk", lambda r: setattr(r.prompts[0], "from_chunk", 1)),
        ]
        for field, mutate in special:
            with self.subTest(field=field):
                r = request()
                mutate(r)
                with self.assertRaises(grpc.RpcError) as cm:
                    srv.stub.Submit(r)
                self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
                self.assertTrue(cm.exception.details().startswith(field), cm.exception.details())
        # Generate reports the same error on the stream, then the server keeps serving.
        _, _, code = collect(srv.stub.Generate(request(width=17)))
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT)
        for bad in (pb.ListJobsRequest(page_size=5000), pb.ListJobsRequest(page_token="garbage")):
            with self.assertRaises(grpc.RpcError) as cm:
                srv.stub.ListJobs(bad)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        with self.assertRaises(grpc.RpcError) as cm:
            srv.stub.GetJob(pb.GetJobRequest(job_id="j-unknown"))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)
        _, chunks, code = collect(srv.stub.Generate(ok))
        self.assertEqual(code, grpc.StatusCode.OK)
        self.assertEqual(len(chunks), 3)
        self.assertGreaterEqual(srv.metric('magi_jobs_rejected_total{reason="invalid_argument"}'), len(cases))

    def test_invalid_utf8(self):
        """A string field that is not UTF-8 is INVALID_ARGUMENT naming the field, on unary and
        streaming calls (it used to be UNIMPLEMENTED with no message), and logs no
        libprotobuf error. Python's protobuf cannot build such a message, so the requests are
        hand-encoded bytes sent through a raw grpcio call."""
        srv = self.server()
        bad = b"\xff\xfebad"

        def ld(tag, payload):  # a length-delimited field
            return bytes([tag]) + bytes([len(payload)]) + payload

        good_prompt = ld(0x1a, ld(0x12, b"fine"))
        base = request().SerializeToString()
        cases = [
            ("Submit", "prompts[1].text", base + ld(0x1a, ld(0x12, bad))),
            ("Submit", "prompts[0].text", ld(0x1a, ld(0x12, bad))),
            ("Submit", "model", ld(0x0a, bad) + good_prompt),
            ("Submit", "idempotency_key", base + ld(0x7a, bad)),
            ("GetJob", "job_id", ld(0x0a, bad)),
            ("Cancel", "job_id", ld(0x0a, bad)),
            ("ListJobs", "page_token", ld(0x12, bad)),
            ("Watch", "job_id", ld(0x0a, bad)),
            ("Generate", "prompts[0].text", ld(0x1a, ld(0x12, bad))),
            ("GetVideo", "job_id", ld(0x0a, bad)),
        ]
        streaming = {"Watch", "Generate", "GetVideo"}
        for method, field, wire in cases:
            with self.subTest(method=method, field=field):
                path = "/magi.v1.VideoGeneration/" + method
                if method in streaming:
                    call = srv.channel.unary_stream(path, request_serializer=None, response_deserializer=None)
                    with self.assertRaises(grpc.RpcError) as cm:
                        list(call(wire, timeout=10))
                else:
                    call = srv.channel.unary_unary(path, request_serializer=None, response_deserializer=None)
                    with self.assertRaises(grpc.RpcError) as cm:
                        call(wire, timeout=10)
                self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT, cm.exception.details())
                self.assertTrue(cm.exception.details().startswith(field + ": is not valid UTF-8"),
                                cm.exception.details())
        # Valid multi-byte UTF-8 passes, and the server goes on serving.
        r = request(chunks=1)
        r.prompts[0].text = "renard roux dans la neige, \u96ea\u306e\u4e2d\U0001F98A"
        _, chunks, code = collect(srv.stub.Generate(r))
        self.assertEqual(code, grpc.StatusCode.OK)
        self.assertEqual(len(chunks), 1)
        srv.log.flush()
        with open(srv.log.name, "rb") as f:
            self.assertNotIn(b"invalid UTF-8", f.read())

    # -- operations ----------------------------------------------------------------------
    def test_worker_probes(self):
        """magi-worker --http_listen: /healthz answers at once, /readyz only while the group is
        registered with the server; other paths 404."""
        srv = self.server(workers=0, extra=["--worker-listen=127.0.0.1:0"])
        w = Worker(srv, "--runner=synthetic", "--synthetic_step_ms=5")
        try:
            wait_http(w.http, "/readyz", 200)
            self.assertEqual(w.get("/healthz"), (200, "ok\n"))
            self.assertEqual(w.get("/readyz"), (200, "ready\n"))
            self.assertEqual(w.get("/metricz")[0], 404)
            code, metrics = w.get("/metrics")
            self.assertEqual(code, 200)
            self.assertRegex(metrics, r"(?m)^magi_worker_startup_seconds [0-9.e+-]+$")
            self.assertGreater(float(re.search(r"(?m)^magi_worker_startup_seconds (\S+)$", metrics).group(1)), 0)
            self.assertIn("\nmagi_worker_ready 1\n", metrics)
            self.assertIn("\nmagi_worker_stalled 0\n", metrics)
            srv.wait_for_workers(1)
            job = srv.stub.Submit(request(chunks=2, steps=4)).job
            srv.wait_job(job.job_id, [pb.JOB_STATE_SUCCEEDED], timeout=30)
            steps = re.search(r"(?m)^magi_worker_step_seconds_count (\S+)$", w.get("/metrics")[1])
            self.assertEqual(float(steps.group(1)), 8)  # 2 chunks x 4 steps, each reported
            srv.kill9()  # the server is gone: not ready, still alive
            code, body = wait_http(w.http, "/readyz", 503)
            self.assertEqual(body, "not registered with the server\n")
            self.assertEqual(w.get("/healthz")[0], 200)
        finally:
            w.kill()

    def test_worker_stall_watchdog(self):
        """A job that stops making progress (the synthetic runner's hang hook, as a wedged
        collective) marks the worker stalled, ends its stream so the server re-queues the job,
        and exits 3; a healthy worker then finishes the job from where it stopped."""
        srv = self.server(workers=0, extra=["--worker-listen=127.0.0.1:0"])
        w = Worker(srv, "--runner=synthetic", "--synthetic_step_ms=20", "--synthetic_hang_after_steps=6",
                   "--step_timeout_seconds=1")
        wait_http(w.http, "/readyz", 200)
        job = srv.stub.Submit(request(chunks=3, steps=4)).job
        t0 = time.time()
        self.assertEqual(w.wait(timeout=30), 3)
        self.assertLess(time.time() - t0, 20)
        got = srv.wait_job(job.job_id, [pb.JOB_STATE_QUEUED], timeout=10)
        self.assertEqual(got.chunks_done, 1)  # chunk 0 (4 steps) finished before the hang
        good = Worker(srv, "--runner=synthetic", "--synthetic_step_ms=5")
        try:
            srv.wait_job(job.job_id, [pb.JOB_STATE_SUCCEEDED], timeout=30)
        finally:
            good.kill()

    def test_worker_sigterm_hands_back(self):
        """SIGTERM (eviction): the worker turns unready, finishes the chunk in progress, leaves
        the server and exits 0; the job is re-queued at once from that chunk and finishes on
        another worker. The hand-back does not count as a failed attempt: with --max-attempts=1
        the job still finishes (a drain counted as a failure would exhaust it)."""
        srv = self.server(workers=0, extra=["--worker-listen=127.0.0.1:0", "--max-attempts=1"])
        w = Worker(srv, "--runner=synthetic", "--synthetic_step_ms=100")
        wait_http(w.http, "/readyz", 200)
        job = srv.stub.Submit(request(chunks=5, steps=4)).job
        srv.wait_job(job.job_id, [pb.JOB_STATE_RUNNING], timeout=10)
        end = time.time() + 20
        while srv.stub.GetJob(pb.GetJobRequest(job_id=job.job_id)).chunks_done < 1 and time.time() < end:
            time.sleep(0.02)
        w.proc.send_signal(signal.SIGTERM)
        self.assertEqual(w.wait(timeout=15), 0)
        got = srv.wait_job(job.job_id, [pb.JOB_STATE_QUEUED], timeout=10)
        self.assertGreaterEqual(got.chunks_done, 2)  # the chunk in progress at SIGTERM was finished
        self.assertLess(got.chunks_done, 5)
        good = Worker(srv, "--runner=synthetic", "--synthetic_step_ms=5")
        try:
            done = srv.wait_job(job.job_id, [pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED], timeout=30)
            self.assertEqual(done.state, pb.JOB_STATE_SUCCEEDED, done.error_message)
            self.assertEqual(done.chunks_done, 5)
            self.assertEqual(done.attempts, 2)
        finally:
            good.kill()

    def test_health_metrics_and_drain(self):
        srv = self.server(step_ms=40)
        self.assertEqual(srv.get("/healthz")[0], 200)
        self.assertEqual(srv.get("/readyz")[0], 200)
        metrics = srv.get("/metrics")[1]
        for name in ("magi_queue_depth", "magi_jobs_running", "magi_jobs_total", "magi_queue_wait_seconds",
                     "magi_time_to_first_chunk_seconds", "magi_job_latency_seconds",
                     "magi_chunks_emitted_total", "magi_step_seconds", "magi_worker_groups_up"):
            self.assertIn("# TYPE " + name, metrics)
        health = srv.channel.unary_unary("/grpc.health.v1.Health/Check")
        self.assertEqual(health(b""), b"\x08\x01")  # SERVING
        # reflection: list_services (field 7 = "") names our services
        reflect = srv.channel.stream_stream("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
        reply = b"".join(reflect(iter([b"\x3a\x00"])))
        self.assertIn(b"magi.v1.VideoGeneration", reply)
        self.assertIn(b"magi.internal.v1.WorkerPool", reply)
        job = srv.stub.Submit(request(chunks=4)).job
        srv.wait_job(job.job_id, [pb.JOB_STATE_RUNNING])
        srv.proc.send_signal(signal.SIGTERM)
        end = time.time() + 5
        while srv.get("/readyz")[0] != 503:
            self.assertLess(time.time(), end)
            time.sleep(0.02)
        self.assertEqual(health(b""), b"\x08\x02")  # NOT_SERVING while draining
        with self.assertRaises(grpc.RpcError) as cm:
            srv.stub.Submit(request())
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
        self.assertEqual(srv.proc.wait(timeout=30), 0)
        # the in-flight job was drained to the end
        srv2 = Server(srv.state_dir, workers=0)
        self.servers.append(srv2)
        self.assertEqual(srv2.stub.GetJob(pb.GetJobRequest(job_id=job.job_id)).state, pb.JOB_STATE_SUCCEEDED)

    def test_http_port_survives_unknown_paths(self):
        # Browsers, scanners and mistyped scrape paths: every unknown path is a 404 naming what
        # the port serves, other methods on known paths a 405, HEAD works, garbage a 400, and the
        # server is still up and serving afterwards (it used to die with SIGSEGV on any of them).
        srv = self.server(step_ms=1)
        host, port = srv.http.rsplit(":", 1)

        def raw(data):
            with socket.create_connection((host, int(port)), timeout=5) as s:
                s.sendall(data)
                out = b""
                while True:
                    part = s.recv(65536)
                    if not part:
                        return out.decode("latin-1")
                    out += part

        def req(method, path):
            return raw(("%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        % (method, path)).encode())

        for path in ("/", "/favicon.ico", "/nope", "/healthz/x", "/metrics.txt", "/../etc/passwd", "/index.html"):
            r = req("GET", path)
            self.assertTrue(r.startswith("HTTP/1.1 404 "), (path, r[:80]))
            self.assertIn("/healthz", r)
            self.assertTrue(req("HEAD", path).startswith("HTTP/1.1 404 "), path)
        for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
            r = req(method, "/metrics")
            self.assertTrue(r.startswith("HTTP/1.1 405 "), (method, r[:80]))
            self.assertIn("Allow: GET, HEAD", r)
            self.assertTrue(req(method, "/nope").startswith("HTTP/1.1 404 "), method)
        head = req("HEAD", "/healthz")
        self.assertTrue(head.startswith("HTTP/1.1 200 "), head[:80])
        self.assertEqual(head.split("\r\n\r\n", 1)[1], "")
        self.assertTrue(raw(b"GARBAGE\r\n\r\n").startswith("HTTP/1.0 400 "))
        self.assertIsNone(srv.proc.poll(), "magi-server died")
        self.assertEqual(srv.get("/healthz"), (200, "ok\n"))
        self.assertEqual(srv.get("/readyz")[0], 200)
        self.assertIn("# TYPE magi_queue_depth", srv.get("/metrics")[1])

    def test_list_and_get_video(self):
        srv = self.server(step_ms=1)
        ids = [srv.stub.Submit(request(chunks=1, seed=i)).job.job_id for i in range(5)]
        for i in ids:
            srv.wait_job(i, [pb.JOB_STATE_SUCCEEDED])
        page1 = srv.stub.ListJobs(pb.ListJobsRequest(page_size=3))
        page2 = srv.stub.ListJobs(pb.ListJobsRequest(page_size=3, page_token=page1.next_page_token))
        listed = [j.job_id for j in page1.jobs] + [j.job_id for j in page2.jobs]
        self.assertEqual(listed, list(reversed(ids)))
        self.assertEqual(page2.next_page_token, "")
        self.assertEqual(len(srv.stub.ListJobs(pb.ListJobsRequest(state=pb.JOB_STATE_RUNNING)).jobs), 0)
        path = os.path.join(self.dir, "v.mp4")
        with open(path, "wb") as f:
            f.write(srv.video(ids[0]))
        self.assertEqual(ffprobe_frames(path), FRAMES_PER_CHUNK)

    # -- client tokens, tenants, TLS ---------------------------------------------------
    TOKENS = {"alice": "alice-token-0123456789abcdef", "bob": "bob-token-0123456789abcdef01"}

    def tokens_server(self, workers=1, step_ms=1, extra=()):
        path = os.path.join(self.dir, "client_tokens")
        with open(path, "w") as f:
            f.write("# token tenant\n")
            for tenant, token in self.TOKENS.items():
                f.write("%s %s\n" % (token, tenant))
        return self.server(workers=workers, step_ms=step_ms,
                           extra=["--client-tokens-file=" + path] + list(extra)), path

    @staticmethod
    def auth(token):
        return (("authorization", "Bearer " + token),)

    def api_call(self, srv, method, path, token=None):
        req = urllib.request.Request("http://%s%s" % (srv.api, path), method=method)
        if token:
            req.add_header("Authorization", "Bearer " + token)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def test_client_tokens_and_tenants(self):
        srv, tokens_path = self.tokens_server(step_ms=5)
        alice, bob = self.auth(self.TOKENS["alice"]), self.auth(self.TOKENS["bob"])
        wrong = "wrong-token-0123456789abcdef"

        # Missing, malformed or wrong token: UNAUTHENTICATED on every RPC, counted.
        for md in ((), (("authorization", "Basic abc"),), self.auth(wrong)):
            for call in (lambda: srv.stub.Submit(request(chunks=1), metadata=md),
                         lambda: srv.stub.GetJob(pb.GetJobRequest(job_id="x"), metadata=md),
                         lambda: srv.stub.ListJobs(pb.ListJobsRequest(), metadata=md),
                         lambda: srv.stub.Cancel(pb.CancelRequest(job_id="x"), metadata=md),
                         lambda: list(srv.stub.Watch(pb.WatchRequest(job_id="x"), metadata=md)),
                         lambda: list(srv.stub.GetVideo(pb.GetVideoRequest(job_id="x"), metadata=md)),
                         lambda: list(srv.stub.Generate(request(chunks=1), metadata=md)),
                         lambda: srv.stub.UpdatePrompt(pb.UpdatePromptRequest(job_id="x", text="y"), metadata=md)):
                with self.assertRaises(grpc.RpcError) as ctx:
                    call()
                self.assertEqual(ctx.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
        self.assertEqual(srv.metric('magi_client_auth_failures_total{reason="missing"}'), 8)
        self.assertEqual(srv.metric('magi_client_auth_failures_total{reason="malformed"}'), 8)
        self.assertEqual(srv.metric('magi_client_auth_failures_total{reason="invalid"}'), 8)
        self.assertEqual(srv.metric("magi_jobs_submitted_total"), 0)

        # alice's finished job and alice's queued-or-running job.
        done = srv.stub.Submit(request(chunks=1), metadata=alice).job.job_id
        end = time.time() + 30
        while srv.stub.GetJob(pb.GetJobRequest(job_id=done), metadata=alice).state != pb.JOB_STATE_SUCCEEDED:
            self.assertLess(time.time(), end)
            time.sleep(0.05)
        self.assertGreater(len(b"".join(d.data for d in srv.stub.GetVideo(
            pb.GetVideoRequest(job_id=done), metadata=alice))), 0)
        live = srv.stub.Submit(request(chunks=40, steps=50), metadata=alice).job.job_id  # ~10 s

        def refusal(call):
            with self.assertRaises(grpc.RpcError) as ctx:
                call()
            return ctx.exception.code(), ctx.exception.details()

        for job_id in (done, live):
            unknown = job_id[:-4] + "zzzz"
            calls = {
                "get": lambda i: srv.stub.GetJob(pb.GetJobRequest(job_id=i), metadata=bob),
                "cancel": lambda i: srv.stub.Cancel(pb.CancelRequest(job_id=i), metadata=bob),
                "watch": lambda i: list(srv.stub.Watch(pb.WatchRequest(job_id=i), metadata=bob)),
                "video": lambda i: list(srv.stub.GetVideo(pb.GetVideoRequest(job_id=i), metadata=bob)),
                "prompt": lambda i: srv.stub.UpdatePrompt(pb.UpdatePromptRequest(job_id=i, text="y"), metadata=bob),
            }
            for name, call in calls.items():
                code, details = refusal(lambda: call(job_id))
                ucode, udetails = refusal(lambda: call(unknown))
                self.assertEqual(code, grpc.StatusCode.NOT_FOUND, (name, details))
                # Exactly what an unknown id answers: nothing tells the job exists.
                self.assertEqual((code, details.replace(job_id, "ID")), (ucode, udetails.replace(unknown, "ID")), name)
        self.assertEqual(len(srv.stub.ListJobs(pb.ListJobsRequest(), metadata=bob).jobs), 0)
        self.assertEqual(sorted(j.job_id for j in srv.stub.ListJobs(pb.ListJobsRequest(), metadata=alice).jobs),
                         sorted([done, live]))
        # bob's cancel did nothing; alice's own works.
        self.assertNotEqual(srv.stub.GetJob(pb.GetJobRequest(job_id=live), metadata=alice).state,
                            pb.JOB_STATE_CANCELLED)
        self.assertEqual(srv.stub.Cancel(pb.CancelRequest(job_id=live), metadata=alice).state, pb.JOB_STATE_CANCELLED)

        # The OpenAI-compatible API: the same tokens and scoping; 401 with OpenAI's error JSON.
        for token in (None, wrong):
            for method, path in (("GET", "/v1/videos"), ("GET", "/v1/videos/" + done),
                                 ("GET", "/v1/videos/%s/content" % done), ("DELETE", "/v1/videos/" + done),
                                 ("POST", "/v1/videos")):
                status, body = self.api_call(srv, method, path, token)
                self.assertEqual(status, 401, (method, path, body))
                err = json.loads(body)["error"]
                self.assertEqual(err["code"], "invalid_api_key")
                self.assertNotIn(wrong, body.decode())
        self.assertEqual(self.api_call(srv, "GET", "/v1/videos/" + done, self.TOKENS["bob"])[0], 404)
        self.assertEqual(self.api_call(srv, "GET", "/v1/videos/%s/content" % done, self.TOKENS["bob"])[0], 404)
        self.assertEqual(self.api_call(srv, "DELETE", "/v1/videos/" + done, self.TOKENS["bob"])[0], 404)
        self.assertEqual(json.loads(self.api_call(srv, "GET", "/v1/videos", self.TOKENS["bob"])[1])["data"], [])
        status, body = self.api_call(srv, "GET", "/v1/videos/" + done, self.TOKENS["alice"])
        self.assertEqual((status, json.loads(body)["id"]), (200, done))
        self.assertEqual(self.api_call(srv, "GET", "/v1/videos/%s/content" % done, self.TOKENS["alice"])[0], 200)

        # Tokens rotate without a restart: a new line is honoured once the file changes.
        carol = "carol-token-0123456789abcdef"
        with open(tokens_path, "a") as f:
            f.write("%s carol\n" % carol)
        self.assertEqual(len(srv.stub.ListJobs(pb.ListJobsRequest(), metadata=self.auth(carol)).jobs), 0)

        with open(srv.log.name, "rb") as f:
            log = f.read().decode(errors="replace")
        self.assertIn("refused client call", log)
        for token in [wrong, carol] + list(self.TOKENS.values()):
            self.assertNotIn(token, log)

    def test_tenant_queue_quota(self):
        srv, _ = self.tokens_server(workers=0, extra=["--tenant-max-queued=2"])
        alice, bob = self.auth(self.TOKENS["alice"]), self.auth(self.TOKENS["bob"])
        for seed in range(2):
            srv.stub.Submit(request(chunks=1, seed=seed), metadata=alice)
        with self.assertRaises(grpc.RpcError) as ctx:
            srv.stub.Submit(request(chunks=1, seed=9), metadata=alice)
        self.assertEqual(ctx.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
        self.assertIn("--tenant-max-queued 2", ctx.exception.details())
        srv.stub.Submit(request(chunks=1), metadata=bob)  # bob's quota is his own
        self.assertEqual(srv.metric('magi_jobs_rejected_total{reason="tenant_quota"}'), 1)

    def test_tls(self):
        d = os.path.join(self.dir, "tls")
        os.makedirs(d)

        def openssl(*args):
            subprocess.run(["openssl"] + list(args), cwd=d, check=True, capture_output=True)

        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
                "-days", "2", "-subj", "/CN=magi test CA")
        for name in ("server", "client"):
            openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key", "-out", name + ".csr",
                    "-subj", "/CN=" + name)
            with open(os.path.join(d, name + ".ext"), "w") as f:
                f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
            openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                    "-out", name + ".pem", "-days", "2", "-extfile", name + ".ext")

        def read(n):
            with open(os.path.join(d, n), "rb") as f:
                return f.read()

        tls = ["--tls-cert=" + os.path.join(d, "server.pem"), "--tls-key=" + os.path.join(d, "server.key"),
               "--worker-listen=127.0.0.1:0"]
        srv = self.server(step_ms=1, extra=tls)
        secure = grpc.secure_channel(srv.addr, grpc.ssl_channel_credentials(root_certificates=read("ca.pem")))
        events, chunks, code = collect(pbg.VideoGenerationStub(secure).Generate(request(chunks=1), timeout=60))
        self.assertEqual((code, [c.index for c in chunks]), (grpc.StatusCode.OK, [0]))
        secure.close()
        # A plaintext client gets nothing from the TLS port.
        with self.assertRaises(grpc.RpcError) as ctx:
            srv.stub.ListJobs(pb.ListJobsRequest(), timeout=3)
        self.assertIn(ctx.exception.code(), (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED))

        # The OpenAI API listener serves HTTPS with the same certificate: curl trusting the CA
        # lists the video made over gRPC; plain HTTP gets no HTTP answer.
        def curl(url, *args):
            return subprocess.run(["curl", "-sS", "--max-time", "10"] + list(args) + [url],
                                  capture_output=True, text=True, timeout=30)
        r = curl("https://%s/v1/videos" % srv.api, "--cacert", os.path.join(d, "ca.pem"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([v["status"] for v in json.loads(r.stdout)["data"]], ["completed"])
        r = curl("http://%s/v1/videos" % srv.api, "-o", "/dev/null", "-w", "%{http_code}")
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertEqual(r.stdout, "000")
        # ... and the server goes on serving HTTPS after the plaintext attempt.
        self.assertEqual(curl("https://%s/v1/videos" % srv.api, "--cacert", os.path.join(d, "ca.pem")).returncode, 0)

        # mTLS: a client without a certificate signed by the client CA is refused.
        srv2 = self.server(sub="mtls", step_ms=1, extra=tls + ["--tls-client-ca=" + os.path.join(d, "ca.pem")])
        no_cert = grpc.secure_channel(srv2.addr, grpc.ssl_channel_credentials(root_certificates=read("ca.pem")))
        with self.assertRaises(grpc.RpcError) as ctx:
            pbg.VideoGenerationStub(no_cert).ListJobs(pb.ListJobsRequest(), timeout=3)
        self.assertIn(ctx.exception.code(), (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED))
        no_cert.close()
        with_cert = grpc.secure_channel(srv2.addr, grpc.ssl_channel_credentials(
            root_certificates=read("ca.pem"), private_key=read("client.key"), certificate_chain=read("client.pem")))
        self.assertEqual(len(pbg.VideoGenerationStub(with_cert).ListJobs(pb.ListJobsRequest(), timeout=10).jobs), 0)
        with_cert.close()
        # mTLS on the API too: no client certificate, no answer; a signed one, 200.
        r = curl("https://%s/v1/videos" % srv2.api, "--cacert", os.path.join(d, "ca.pem"))
        self.assertNotEqual(r.returncode, 0, r.stdout)
        r = curl("https://%s/v1/videos" % srv2.api, "--cacert", os.path.join(d, "ca.pem"),
                 "--cert", os.path.join(d, "client.pem"), "--key", os.path.join(d, "client.key"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["data"], [])

    # -- the magi CLI --------------------------------------------------------------------
    def cli(self, srv, *args):
        return subprocess.run([CLI_BIN, args[0], "--server", srv.addr] + list(args[1:]),
                              capture_output=True, text=True, timeout=60)

    def test_cli(self):
        if not CLI_BIN:
            self.skipTest("MAGI_CLI_BIN not set (magi CLI without remote commands)")
        srv = self.server(step_ms=5)
        out = os.path.join(self.dir, "gen.mp4")
        r = self.cli(srv, "generate", "--prompt", "a boat", "--frames", "60", "--width", "64",
                     "--height", "64", "--fps", "8", "--steps", "3", "--output", out, "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = [json.loads(line) for line in r.stdout.splitlines()]
        self.assertIn("accepted", lines[0])
        self.assertIn("completed", lines[-1])
        self.assertEqual(ffprobe_frames(out), 60)
        r = self.cli(srv, "submit", "--prompt", "a boat", "--frames", "24", "--width", "64",
                     "--height", "64", "--steps", "2")
        self.assertEqual(r.returncode, 0, r.stderr)
        job_id = r.stdout.strip()
        self.assertTrue(job_id.startswith("j-"))
        watched = os.path.join(self.dir, "watch.mp4")
        r = self.cli(srv, "watch", job_id, "--output", watched)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("completed", r.stderr)
        got = os.path.join(self.dir, "get.mp4")
        r = self.cli(srv, "get", job_id, "--output", got)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(watched, "rb") as a, open(got, "rb") as b:
            self.assertEqual(a.read(), b.read())
        r = self.cli(srv, "list", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(json.loads(r.stdout)["jobs"]), 2)
        r = self.cli(srv, "get", job_id, "--json")
        self.assertEqual(json.loads(r.stdout)["state"], "JOB_STATE_SUCCEEDED")
        r = self.cli(srv, "cancel", job_id)
        self.assertEqual(r.returncode, 0, r.stderr)
        # A live prompt: a queued job (no group is free while the long one holds it) uses it from
        # its next chunk to make, chunk 0; an ended job refuses.
        long_job = self.cli(srv, "submit", "--prompt", "long", "--frames", "240", "--width", "64",
                            "--height", "64", "--steps", "50").stdout.strip()
        waiting = self.cli(srv, "submit", "--prompt", "a boat", "--frames", "24", "--width", "64",
                           "--height", "64", "--steps", "2").stdout.strip()
        r = self.cli(srv, "prompt", waiting, "--text", "a ship", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout), {"job_id": waiting, "from_chunk": 0})
        self.assertEqual(json.loads(self.cli(srv, "get", waiting, "--json").stdout)["request"]["prompts"][0]["text"],
                         "a ship")
        self.cli(srv, "cancel", long_job)
        r = self.cli(srv, "prompt", job_id, "--text", "late")
        self.assertEqual(r.returncode, 1)
        self.assertIn("FAILED_PRECONDITION", r.stderr)
        r = self.cli(srv, "prompt", job_id)
        self.assertEqual(r.returncode, 2)
        r = self.cli(srv, "submit", "--prompt", "x", "--width", "17")
        self.assertEqual(r.returncode, 1)
        self.assertIn("INVALID_ARGUMENT: width", r.stderr)
        r = self.cli(srv, "submit", "--bogus", "1")
        self.assertEqual(r.returncode, 2)
        r = self.cli(srv, "get", "j-missing")
        self.assertEqual(r.returncode, 1)
        self.assertIn("NOT_FOUND", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
