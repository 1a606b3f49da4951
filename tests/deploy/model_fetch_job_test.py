#!/usr/bin/python3
"""Runs the shell steps of the model-fetch Job (deploy/k8s/components/model-fetch) as the Job
would, in order (fetch, verify, publish), against a local folder standing for the /models
volume: an http URL of a .tar.gz served from here, a source folder, a re-run (nothing to do),
a folder magi-dit-check refuses (nothing published) and bad inputs (clear messages).

Usage: model_fetch_job_test.py --dit_check MAGI_DIT_CHECK --repo REPO --work DIR
Exit: 0 pass, 1 fail.
"""
import argparse
import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading

import yaml

failures = 0


def check(cond, what, detail=""):
    global failures
    print(("ok   " if cond else "FAIL ") + what + ("" if cond or not detail else ": " + detail))
    failures += 0 if cond else 1


def job_steps(repo):
    path = os.path.join(repo, "deploy/k8s/components/model-fetch/model-fetch-job.yaml")
    spec = yaml.safe_load(open(path))["spec"]["template"]["spec"]
    return [(c["name"], c["args"][0]) for c in spec["initContainers"] + spec["containers"]]


def run_job(steps, models, source, dit_check, env):
    """Runs each step until one fails, like a Job's init containers. Returns (failed step, log)."""
    log = ""
    for name, script in steps:
        script = (script.replace("/usr/local/bin/magi-dit-check", dit_check)
                  .replace("/models", models).replace("/source", source))
        # bash --posix stands in for the images' sh (busybox ash, dash): POSIX plus pipefail.
        p = subprocess.run(["bash", "--posix", "-c", script], env={"PATH": os.environ["PATH"], **env},
                           capture_output=True, text=True, timeout=600)
        log += f"[{name}] {p.stdout}{p.stderr}"
        if p.returncode != 0:
            return name, log
    return None, log


def tiny_model(dit_check, folder):
    os.makedirs(folder)
    subprocess.run([dit_check, "--write-tiny", os.path.join(folder, "dit")], check=True, capture_output=True)
    c = json.load(open(os.path.join(folder, "dit", "config.json")))
    c["runtime_config"].update(load="dit", t5_pretrained="t5", vae_pretrained="vae")
    json.dump(c, open(os.path.join(folder, "config.json"), "w"))
    for d, files in (("t5", ("config.json", "spiece.model", "model.safetensors")),
                     ("vae", ("config.json", "diffusion_pytorch_model.safetensors"))):
        os.makedirs(os.path.join(folder, d))
        for f in files:
            open(os.path.join(folder, d, f), "w").close()
    open(os.path.join(folder, "special_tokens.npz"), "w").close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dit_check", required=True)
    ap.add_argument("--repo", required=True)
    ap.add_argument("--work", required=True)
    args = ap.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    steps = job_steps(args.repo)
    check([n for n, _ in steps] == ["fetch", "verify", "publish"], "the Job's steps are fetch, verify, publish",
          str([n for n, _ in steps]))

    good = os.path.join(args.work, "src", "good")
    tiny_model(args.dit_check, good)
    bad = os.path.join(args.work, "src", "bad")
    shutil.copytree(good, bad)
    os.remove(os.path.join(bad, "special_tokens.npz"))
    served = os.path.join(args.work, "served")
    os.makedirs(served)
    for name, folder in (("good", good), ("bad", bad)):
        with tarfile.open(os.path.join(served, f"{name}.tar.gz"), "w:gz") as t:
            for entry in os.listdir(folder):
                t.add(os.path.join(folder, entry), arcname=entry)
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a):
            pass
    handler = functools.partial(Quiet, directory=served)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"

    models = os.path.join(args.work, "models")
    source = os.path.join(args.work, "src")
    os.makedirs(models)
    dest = os.path.join(models, "magi-1-tiny")
    env = {"MODEL_NAME": "magi-1-tiny", "MODEL_URL": "", "SOURCE_DIR": ""}

    failed, log = run_job(steps, models, source, args.dit_check, {**env, "MODEL_URL": f"{base}/good.tar.gz?sig=x"})
    check(failed is None and os.path.isfile(os.path.join(dest, "config.json")),
          "URL .tar.gz: fetched, verified and published", log)
    check("forward: 1 chunks" in log, "URL: magi-dit-check ran a forward on the fetched folder", log)
    check(open(os.path.join(dest, ".magi-fetched")).read() == f"{base}/good.tar.gz?sig=x", "stamp names the source")
    check(not os.path.exists(os.path.join(models, ".fetch-magi-1-tiny")), "no staging folder left")

    failed, log = run_job(steps, models, source, args.dit_check, {**env, "MODEL_URL": f"{base}/good.tar.gz?sig=x"})
    check(failed is None and "already holds" in log and "forward" not in log, "same source again: nothing to do", log)

    failed, log = run_job(steps, models, source, args.dit_check, {**env, "MODEL_URL": f"{base}/bad.tar.gz"})
    check(failed == "verify" and "special_tokens.npz does not exist" in log,
          "incomplete folder: verify refuses it, naming the missing file", log)
    check(open(os.path.join(dest, ".magi-fetched")).read().endswith("good.tar.gz?sig=x"),
          "incomplete folder: the published folder is untouched")

    failed, log = run_job(steps, models, source, args.dit_check, {**env, "SOURCE_DIR": os.path.join(source, "good")})
    check(failed is None and "published" in log and open(os.path.join(dest, ".magi-fetched")).read().endswith("src/good"),
          "SOURCE_DIR: copied, verified and published in place of the old folder", log)

    for what, extra, message in (
            ("neither source", {}, "set MODEL_URL"),
            ("both sources", {"MODEL_URL": f"{base}/good.tar.gz", "SOURCE_DIR": good}, "not both"),
            ("not http(s)", {"MODEL_URL": "ftp://x/m.tar"}, "must be an http(s) URL"),
            ("not an archive", {"MODEL_URL": f"{base}/good.zip"}, "must name a .tar"),
            ("missing archive", {"MODEL_URL": f"{base}/none.tar.gz"}, "404"),
            ("bad name", {"MODEL_NAME": "../etc", "MODEL_URL": f"{base}/good.tar.gz"}, "MODEL_NAME='../etc'"),
            ("source without config.json", {"SOURCE_DIR": served}, "has no config.json")):
        failed, log = run_job(steps, models, source, args.dit_check, {**env, **extra})
        check(failed == "fetch" and message in log, f"{what}: the fetch step fails with '{message}'", log)
    httpd.shutdown()
    print("model-fetch job:", "FAILED" if failures else "all steps behave")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
