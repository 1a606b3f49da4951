#!/usr/bin/python3
"""Metrics, proven end to end: a real magi-server scraped by a real Prometheus.

1. Starts magi-server on loopback (ports picked by the server, read from its "listening" line)
   with one local worker group (the synthetic runner: deterministic frames through the real
   encoder, no model weights).
2. Runs one job with a Python grpcio client (stubs generated from proto/ with grpc_tools).
3. Saves a /metrics scrape and checks the Grafana dashboard and the PrometheusRule against it
   (every referenced metric exported, every label value selected exists).
4. Starts Debian's Prometheus with a 1 s scrape of that server and the alert rules loaded,
   then asserts through the HTTP API: jobs completed, chunks emitted (= chunks the client
   received), histogram counts, gauges, every dashboard expression evaluates, every alert rule
   is healthy.

Usage: prometheus_scrape_test.py --server BIN --worker BIN --repo ROOT --work DIR
Exit: 0 pass, 1 fail, 77 skip (prometheus or grpc_tools not installed).
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

SKIP = 77
failures = []


def check(cond, what, detail=""):
    print(("ok   " if cond else "FAIL ") + what + ("" if cond else f": {detail}"), flush=True)
    if not cond:
        failures.append(what)
    return cond


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, fn, timeout):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = fn()
            if last:
                return last
        except Exception as e:  # server not up yet
            last = e
        time.sleep(0.25)
    raise TimeoutError(f"{what} not reached within {timeout} s (last: {last})")


def start_server(args, state_dir):
    cmd = [args.server, "--listen=127.0.0.1:0", "--http_listen=127.0.0.1:0", "--api_listen=", f"--state_dir={state_dir}",
           "--local_workers=1", f"--worker_binary={args.worker}", "--drain_timeout_seconds=10"]
    print("$ " + " ".join(cmd), flush=True)
    log = open(os.path.join(args.work, "magi-server.log"), "w")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True)
    line = proc.stdout.readline()
    m = re.search(r"grpc=([\d.]+):(\d+) http=([\d.]+):(\d+)", line)
    if not m:
        proc.kill()
        raise RuntimeError(f"magi-server did not print its listening line (got {line!r}); see {log.name}")
    return proc, f"127.0.0.1:{m.group(2)}", f"127.0.0.1:{m.group(4)}"


def gauge(metrics_text, name):
    m = re.search(rf"^{name}(?:\{{\}})? (\S+)$", metrics_text, re.M)
    return float(m.group(1)) if m else None


def generate_stubs(repo, out):
    proto_root = os.path.join(repo, "proto")
    os.makedirs(out, exist_ok=True)
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{proto_root}", f"--python_out={out}",
                    f"--grpc_python_out={out}", os.path.join(proto_root, "magi", "v1", "video_generation.proto")],
                   check=True)
    sys.path.insert(0, out)


def run_one_job(grpc_addr, frames):
    import grpc
    from magi.v1 import video_generation_pb2 as pb
    from magi.v1 import video_generation_pb2_grpc as rpc
    with grpc.insecure_channel(grpc_addr) as channel:
        stub = rpc.VideoGenerationStub(channel)
        request = pb.GenerateRequest(prompts=[pb.ChunkPrompt(from_chunk=0, text="a red ball rolls on a wooden floor")],
                                     num_frames=frames, seed=7)
        chunks, completed, failed = 0, None, None
        for event in stub.Generate(request, timeout=120):
            kind = event.WhichOneof("event")
            if kind == "chunk":
                chunks += 1
            elif kind == "completed":
                completed = event.completed
            elif kind == "failed":
                failed = event.failed
        return chunks, completed, failed


def prom_query(prom, expr):
    url = f"http://{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    _, body = http_get(url)
    return json.loads(body)


def prom_value(prom, expr):
    res = prom_query(prom, expr)
    if res.get("status") != "success" or not res["data"]["result"]:
        return None
    return float(res["data"]["result"][0]["value"][1])


def extract_rules(repo, out):
    import yaml
    doc = yaml.safe_load(open(os.path.join(repo, "deploy", "k8s", "base", "prometheusrule.yaml")))
    with open(out, "w") as f:
        yaml.safe_dump({"groups": doc["spec"]["groups"]}, f)


def dashboard_exprs(repo):
    doc = json.load(open(os.path.join(repo, "deploy", "grafana", "magi-serve.json")))
    out = []

    def walk(panels):
        for p in panels or []:
            for t in p.get("targets", []):
                if t.get("expr"):
                    out.append((p["title"], t["expr"]))
            walk(p.get("panels"))

    walk(doc["panels"])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--worker", required=True)
    ap.add_argument("--repo", required=True)
    ap.add_argument("--work", default=None)
    ap.add_argument("--frames", type=int, default=72)
    args = ap.parse_args()
    prometheus = shutil.which("prometheus")
    if not prometheus:
        print("SKIP: Debian's 'prometheus' is not installed (scripts/setup.sh installs it)")
        return SKIP
    try:
        import grpc  # noqa: F401
        import grpc_tools  # noqa: F401
    except ImportError as e:
        print(f"SKIP: python3-grpcio / python3-grpc-tools missing ({e}); scripts/setup.sh installs them")
        return SKIP
    args.work = args.work or tempfile.mkdtemp(prefix="magi_prom_")
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    server = prom = None
    try:
        generate_stubs(args.repo, os.path.join(args.work, "stubs"))
        server, grpc_addr, http_addr = start_server(args, os.path.join(args.work, "state"))
        check(True, f"magi-server serving grpc={grpc_addr} http={http_addr}")
        wait_for("/readyz 200", lambda: http_get(f"http://{http_addr}/readyz")[0] == 200, 30)
        wait_for("one worker group registered",
                 lambda: gauge(http_get(f"http://{http_addr}/metrics")[1], "magi_worker_groups_up") == 1, 60)
        check(True, "/readyz is 200 and magi_worker_groups_up == 1")

        chunks, completed, failed = run_one_job(grpc_addr, args.frames)
        check(failed is None and completed is not None, "the job completed", f"failed: {failed}")
        expected_chunks = args.frames // 24
        check(chunks == expected_chunks, f"client received {expected_chunks} chunks", f"got {chunks}")
        if completed is not None:
            check(completed.stats.chunks == chunks, "JobStats.chunks == chunks streamed", f"{completed.stats.chunks}")

        # The live exposition: every dashboard/alert reference must be an exported series.
        scrape = os.path.join(args.work, "metrics.txt")
        metrics_text = http_get(f"http://{http_addr}/metrics")[1]
        open(scrape, "w").write(metrics_text)
        res = subprocess.run([sys.executable, os.path.join(args.repo, "deploy", "check_metric_names.py"), "--scrape", scrape,
                              os.path.join(args.repo, "deploy", "grafana", "magi-serve.json"),
                              os.path.join(args.repo, "deploy", "k8s", "base", "prometheusrule.yaml")],
                             capture_output=True, text=True)
        print(res.stdout.rstrip())
        check(res.returncode == 0, "dashboard and alert rules reference only series of the live /metrics scrape")

        # Prometheus scraping the server every second, with our alert rules loaded.
        rules = os.path.join(args.work, "magi-server.rules.yaml")
        extract_rules(args.repo, rules)
        prom_port = free_port()
        prom = f"127.0.0.1:{prom_port}"
        config = os.path.join(args.work, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    f"rule_files:\n  - {rules}\n"
                    "scrape_configs:\n  - job_name: magi-server\n    static_configs:\n"
                    f"      - targets: ['{http_addr}']\n")
        plog = open(os.path.join(args.work, "prometheus.log"), "w")
        prom_proc = subprocess.Popen([prometheus, f"--config.file={config}", f"--storage.tsdb.path={args.work}/tsdb",
                                      f"--web.listen-address={prom}"], stdout=plog, stderr=subprocess.STDOUT)
        prom = (prom_proc, prom)
        prom_addr = prom[1]
        wait_for("prometheus ready", lambda: http_get(f"http://{prom_addr}/-/ready")[0] == 200, 30)
        # The scrape manager applies targets ~5 s after start (shared/notes/toolchain.md §5).
        wait_for("first scrape of magi-server",
                 lambda: prom_value(prom_addr, 'up{job="magi-server"}') == 1, 30)
        check(True, "Prometheus scrapes magi-server (up == 1)")

        expected = {
            'magi_jobs_total{outcome="succeeded"}': 1,
            'magi_jobs_total{outcome="failed"}': 0,
            "magi_jobs_submitted_total": 1,
            "magi_chunks_emitted_total": chunks,
            "magi_queue_wait_seconds_count": 1,
            "magi_time_to_first_chunk_seconds_count": 1,
            "magi_job_latency_seconds_count": 1,
            "magi_worker_groups_up": 1,
            "magi_queue_depth": 0,
            "magi_jobs_running": 0,
        }
        for expr, want in expected.items():
            got = prom_value(prom_addr, expr)
            check(got == want, f"Prometheus: {expr} == {want}", f"got {got}")
        steps = prom_value(prom_addr, "magi_step_seconds_count")
        check(steps is not None and steps > 0, "Prometheus: magi_step_seconds_count > 0 (workers report steps)", f"got {steps}")
        ttfc = prom_value(prom_addr, "magi_time_to_first_chunk_seconds_sum")
        latency = prom_value(prom_addr, "magi_job_latency_seconds_sum")
        check(ttfc is not None and latency is not None and 0 < ttfc <= latency,
              "Prometheus: 0 < time to first chunk <= job latency", f"ttfc {ttfc}, latency {latency}")

        # Every dashboard expression must evaluate on real data.
        for title, expr in dashboard_exprs(args.repo):
            q = expr.replace("$__rate_interval", "1m").replace('=~"$instance"', '=~".*"')
            res = prom_query(prom_addr, q)
            check(res.get("status") == "success", f"dashboard '{title}': {q[:70]} evaluates", json.dumps(res)[:200])
        # Alert rules loaded and evaluated without error; none fires on a healthy server.
        wait_for("rules evaluated", lambda: all(not r.get("lastEvaluation", "0001").startswith("0001")
                                                for g in json.loads(http_get(f"http://{prom_addr}/api/v1/rules")[1])["data"]["groups"]
                                                for r in g["rules"]), 15)
        # MagiServerMetricsAbsent goes pending on evaluations before the first scrape; it must
        # drop back to inactive once the series exists (evaluation every 1 s).
        try:
            wait_for("all alerts inactive", lambda: all(r.get("state") == "inactive"
                                                        for g in json.loads(http_get(f"http://{prom_addr}/api/v1/rules")[1])["data"]["groups"]
                                                        for r in g["rules"]), 15)
        except TimeoutError:
            pass  # reported per rule below
        groups = json.loads(http_get(f"http://{prom_addr}/api/v1/rules")[1])["data"]["groups"]
        rules_seen = [r for g in groups for r in g["rules"]]
        check(len(rules_seen) >= 6, f"Prometheus loaded {len(rules_seen)} alert rules")
        for r in rules_seen:
            check(r.get("health") == "ok", f"alert {r['name']} evaluates (health ok)", r.get("lastError", ""))
            check(r.get("state") == "inactive", f"alert {r['name']} is inactive on a healthy server", r.get("state"))

        # Drain on SIGTERM: the server exits 0 with nothing running.
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=30)
        check(code == 0, "magi-server exits 0 after SIGTERM", f"exit {code}")
        server = None
    except Exception as e:  # report, then clean up
        check(False, "harness", f"{type(e).__name__}: {e}")
    finally:
        if server is not None:
            server.kill()
            server.wait()
        if prom is not None:
            prom[0].terminate()
            try:
                prom[0].wait(timeout=10)
            except subprocess.TimeoutExpired:
                prom[0].kill()
    if failures:
        print(f"logs: {args.work}/magi-server.log, {args.work}/prometheus.log")
    print(f"prometheus scrape: {'FAILED' if failures else 'passed'} ({len(failures)} failures)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
