#!/usr/bin/python3
"""Offline checks of deploy/docker/Dockerfile (CUDA) and Dockerfile.cpu.

There is no Docker engine (and no hadolint) on the build machines, so this checks what can be
checked without one:
  * lint: tagged base images, apt-get install with -y/--no-install-recommends and list cleanup
    in the same RUN, pipefail before pipes, JSON-form ENTRYPOINT/CMD, non-root final USER,
    COPY --from naming an earlier stage;
  * every COPY source from the build context exists in the repository and is not excluded by
    the Dockerfile's .dockerignore;
  * every binary copied out of the build stage is an executable CMake target, lies at that
    path in a real build tree, and is exactly the list the build stage builds;
  * every apt package exists in Debian 12 (apt-cache); the CPU image installs scripts/setup.sh
    itself, the CUDA image lists the same packages minus Debian's LibTorch and the test-only
    ones; the CUDA runtime list is the CPU one minus Debian's LibTorch;
  * the runtime packages provide (through their dependencies) every shared library that the
    built binaries link directly (readelf NEEDED -> ldconfig -> dpkg -S).
Paths inside the NVIDIA base image and the LibTorch download cannot be checked here.

Usage: check_dockerfiles.py REPO_ROOT BUILD_DIR
Exit: 0 all checks pass, 1 a check failed, 77 skipped (binaries not built yet: the reason is printed).
"""
import fnmatch
import json
import os
import re
import shlex
import subprocess
import sys

SKIP = 77

# Packages of scripts/setup.sh that the CUDA image leaves out, and why.
CUDA_OMITS = {
    "libtorch-dev": "replaced by the official CUDA LibTorch",
    "libgloo-dev": "Gloo comes inside the official LibTorch",
    "libgtest-dev": "tests are not built in the image",
    "libgmock-dev": "tests are not built in the image",
    "python3-grpcio": "test client only",
    "python3-grpc-tools": "test client only",
    "python3-protobuf": "test client only",
    "prometheus": "test-only Prometheus server",
    "yamllint": "deploy tests only",
    "nodejs": "the OpenAI SDK e2e test only",
    "chromium": "the headless-browser viewer e2e test only",
    "openssl": "the TLS e2e test's certificates only",
    "clang": "libFuzzer builds of fuzz/ only (the image builds with g++)",
    "libclang-rt-dev": "libFuzzer builds of fuzz/ only",
}
CUDA_EXTRAS = {"curl", "unzip", "ca-certificates"}
# Runtime packages of the CPU image that the CUDA image does not install.
CUDA_RUNTIME_OMITS = {"libtorch1.13", "libgloo0"}
# Always present in debian:12-slim.
BASE_PACKAGES = {"libc6", "libgcc-s1", "libstdc++6", "zlib1g"}


class Report:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.skipped = []

    def check(self, cond, what, why=""):
        if cond:
            self.passed += 1
            print(f"ok   {what}")
        else:
            self.failed += 1
            print(f"FAIL {what}" + (f": {why}" if why else ""))
        return cond

    def skip(self, what, why):
        self.skipped.append(what)
        print(f"SKIP {what}: {why}")


def parse_dockerfile(path):
    """Returns [(stage_index, stage_name, instruction, args, line_no)] plus ARG defaults."""
    logical, start, buf = [], 0, ""
    with open(path) as f:
        for no, raw in enumerate(f, 1):
            line = raw.rstrip("\n")
            if not buf and (line.strip().startswith("#") or not line.strip()):
                continue
            if buf and line.strip().startswith("#"):
                continue  # comment lines inside a continued instruction
            if not buf:
                start = no
            if line.endswith("\\"):
                buf += line[:-1] + " "
                continue
            buf += line
            logical.append((start, buf.strip()))
            buf = ""
    out, args, stage, name = [], {}, -1, None
    for no, text in logical:
        instr, _, rest = text.partition(" ")
        instr = instr.upper()
        rest = rest.strip()
        if instr == "ARG":
            key, _, default = rest.partition("=")
            if default or key not in args:
                args.setdefault(key, default.strip('"'))
        if instr == "FROM":
            stage += 1
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?", rest, re.I)
            name = m.group(2)
        out.append((stage, name, instr, rest, no))
    return out, args


def expand(text, args):
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m.group(1) or m.group(2), m.group(0)), text)


def apt_installs(run_text):
    """Package names of every `apt-get install` in one RUN command."""
    pkgs = []
    for part in re.split(r"&&|;|\|\|", run_text):
        words = shlex.split(part)
        if len(words) >= 2 and words[0] == "apt-get" and "install" in words:
            pkgs += [w for w in words[words.index("install") + 1:] if not w.startswith("-")]
    return pkgs


def setup_packages(repo):
    text = open(os.path.join(repo, "scripts", "setup.sh")).read()
    m = re.search(r"PACKAGES=\((.*?)\n\)", text, re.S)
    pkgs = []
    for line in m.group(1).splitlines():
        pkgs += line.split("#", 1)[0].split()
    return pkgs


def dockerignore(path):
    pats = []
    if os.path.exists(path):
        for line in open(path):
            line = line.strip()
            if line and not line.startswith("#"):
                pats.append(line)
    return pats


def _matches(rel, p):
    p = p.rstrip("/")
    if fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(rel, p + "/*") or rel.split("/")[0] == p:
        return True
    return p.startswith("**/") and (fnmatch.fnmatch(rel, p[3:]) or fnmatch.fnmatch(os.path.basename(rel), p[3:]))


def ignored(rel, patterns):
    """Docker's rule: the last pattern that matches decides; '!PATTERN' takes a path back in."""
    out = False
    for p in patterns:
        if p.startswith("!"):
            if _matches(rel, p[1:]):
                out = False
        elif _matches(rel, p):
            out = True
    return out


def context_files(repo, rel):
    """`rel` itself, or every file under it when it is a folder (relative to `repo`)."""
    top = os.path.join(repo, rel)
    if not os.path.isdir(top):
        return [rel]
    return sorted(os.path.relpath(os.path.join(d, f), repo) for d, _, fs in os.walk(top) for f in fs)


def cmake_targets(build):
    out = subprocess.run(["cmake", "--build", build, "--target", "help"], capture_output=True, text=True)
    names = set()
    for line in out.stdout.splitlines():
        m = re.match(r"\.\.\.\s+(\S+)", line) or re.match(r"(\S+): phony", line)
        if m:
            names.add(m.group(1))
    return names


def apt_known_set(pkgs):
    """The subset of `pkgs` that apt-cache knows (one apt-cache call: each costs ~0.5 s)."""
    out = subprocess.run(["apt-cache", "show", "--no-all-versions", *pkgs], capture_output=True, text=True)
    return set(re.findall(r"^Package: (\S+)$", out.stdout, re.M))


def apt_known(pkg):
    return pkg in apt_known_set([pkg])


def apt_closure(pkgs):
    out = subprocess.run(["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
                          "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances",
                          "--no-pre-depends", *pkgs], capture_output=True, text=True)
    closure = set()
    for line in out.stdout.splitlines():
        line = line.strip().lstrip("|")
        if not line:
            continue
        if ":" in line:
            _, _, dep = line.partition(":")
            dep = dep.strip().strip("<>")
        else:
            dep = line
        closure.add(dep.split(":")[0])
    return closure


def needed_packages(binary):
    """Debian packages owning the libraries that `binary` links directly (NEEDED)."""
    out = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True).stdout
    libs = re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", out)
    cache = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    owners = {}
    for lib in libs:
        m = re.search(rf"^\s+{re.escape(lib)} \(libc6,x86-64[^)]*\) => (\S+)", cache, re.M)
        path = m.group(1) if m else None
        if path is None:
            owners[lib] = None
            continue
        if path in _OWNER_CACHE:
            owners[lib] = _OWNER_CACHE[path]
            continue
        pkg = None
        for candidate in (path, os.path.realpath(path)):
            res = subprocess.run(["dpkg-query", "-S", candidate], capture_output=True, text=True)
            if res.returncode == 0:
                pkg = res.stdout.split(":")[0].strip()
                break
        owners[lib] = _OWNER_CACHE[path] = pkg
    return owners


_OWNER_CACHE = {}


def check_file(repo, build, dockerfile, report, state):
    rel_df = os.path.relpath(dockerfile, repo)
    instrs, args = parse_dockerfile(dockerfile)
    ignore = dockerignore(dockerfile + ".dockerignore")
    stages = {}
    final_stage = max(s for s, *_ in instrs)
    pipefail = {}
    built_targets, copied_binaries = None, []
    runtime_pkgs = []
    build_pkgs = []
    runs_setup = False
    last_user = {}
    for stage, name, instr, rest, no in instrs:
        where = f"{rel_df}:{no}"
        if instr == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?", rest, re.I)
            image = expand(m.group(1), args)
            report.check(":" in image and not image.endswith(":latest"), f"{where} FROM {image} has a pinned tag")
            if name:
                stages[name] = stage
        elif instr == "SHELL":
            pipefail[stage] = "pipefail" in rest
        elif instr == "USER":
            last_user[stage] = rest
        elif instr in ("ENTRYPOINT", "CMD"):
            try:
                ok = isinstance(json.loads(rest), list)
            except ValueError:
                ok = False
            report.check(ok, f"{where} {instr} is in JSON (exec) form")
        elif instr == "RUN":
            text = re.sub(r"^(--\S+\s+)+", "", rest)
            pkgs = apt_installs(text)
            if "setup.sh" in text:
                runs_setup = True
                report.check("rm -rf /var/lib/apt/lists" in text, f"{where} cleans apt lists after setup.sh")
            if pkgs:
                report.check("--no-install-recommends" in text and re.search(r"install\s+-y|-y\s", text) is not None,
                             f"{where} apt-get install -y --no-install-recommends")
                report.check("apt-get update" in text, f"{where} apt-get update in the same RUN as install")
                report.check("rm -rf /var/lib/apt/lists" in text, f"{where} apt lists removed in the same RUN")
                if stage == final_stage:
                    runtime_pkgs += pkgs
                else:
                    build_pkgs += pkgs
            if re.search(r"[^|]\|[^|]", text):
                report.check(pipefail.get(stage, False), f"{where} RUN with a pipe runs under SHELL pipefail")
            m = re.search(r"cmake --build \S+ .*?--target ((?:[\w.-]+\s*)+)", text)
            if m:
                built_targets = m.group(1).split()
        elif instr in ("COPY", "ADD"):
            words = shlex.split(expand(rest, args))
            opts = [w for w in words if w.startswith("--")]
            paths = [w for w in words if not w.startswith("--")]
            srcs = paths[:-1]
            src_stage = next((o.split("=", 1)[1] for o in opts if o.startswith("--from=")), None)
            if src_stage is None:
                for s in srcs:
                    exists = os.path.exists(os.path.join(repo, s))
                    report.check(exists, f"{where} COPY source '{s}' exists in the repository")
                    if s != ".":
                        dropped = [f for f in context_files(repo, os.path.normpath(s)) if ignored(f, ignore)]
                        report.check(not dropped,
                                     f"{where} COPY source '{s}' is not excluded by {os.path.basename(dockerfile)}.dockerignore",
                                     f"excluded: {dropped[:3]}")
            elif src_stage in stages or src_stage.isdigit():
                report.check(True, f"{where} COPY --from={src_stage} names an earlier stage")
                if src_stage == "build":
                    for s in srcs:
                        if s.startswith("/build/"):
                            copied_binaries.append((where, s[len("/build/"):]))
                elif src_stage == "cuda":
                    report.skip(f"{where} COPY --from=cuda {' '.join(srcs)}", "paths inside the NVIDIA image are not checkable offline")
            else:
                report.check(False, f"{where} COPY --from={src_stage}", "no such earlier stage")
    report.check(last_user.get(final_stage, "root").split(":")[0] not in ("root", "0"),
                 f"{rel_df} final stage runs as a non-root USER ({last_user.get(final_stage)})")
    report.check(built_targets is not None and sorted(built_targets) == sorted(os.path.basename(b) for _, b in copied_binaries),
                 f"{rel_df} build stage builds exactly the binaries the runtime copies",
                 f"built {built_targets}, copied {[b for _, b in copied_binaries]}")

    # CMake targets and real binaries.
    targets = state.setdefault("targets", cmake_targets(build) if build else set())
    missing = []
    for where, relbin in copied_binaries:
        target = os.path.basename(relbin)
        path = os.path.join(build, relbin)
        if target not in targets:
            missing.append(target)
            continue
        report.check(os.path.isfile(path) and os.access(path, os.X_OK),
                     f"{where} /build/{relbin} is where the build puts target {target}",
                     f"{path} missing: build the target first, or fix the path")
        state.setdefault("binaries", {})[target] = path
    if missing:
        state.setdefault("missing_targets", set()).update(missing)

    # Packages.
    state.setdefault("runtime", {})[os.path.basename(dockerfile)] = runtime_pkgs
    state.setdefault("build", {})[os.path.basename(dockerfile)] = (build_pkgs, runs_setup)


def check_packages(repo, report, state):
    setup = setup_packages(repo)
    cpu_build, cpu_runs_setup = state["build"]["Dockerfile.cpu"]
    report.check(cpu_runs_setup and not cpu_build, "Dockerfile.cpu builds from exactly scripts/setup.sh's packages")
    cuda_build, _ = state["build"]["Dockerfile"]
    lacking = sorted(set(setup) - set(cuda_build) - set(CUDA_OMITS))
    extra = sorted(set(cuda_build) - set(setup) - CUDA_EXTRAS)
    report.check(not lacking and not extra, "Dockerfile (CUDA) build packages == scripts/setup.sh minus "
                 + ", ".join(sorted(CUDA_OMITS)) + " plus " + ", ".join(sorted(CUDA_EXTRAS)),
                 f"missing from the Dockerfile: {lacking}; not in setup.sh: {extra}")
    cpu_rt = state["runtime"]["Dockerfile.cpu"]
    cuda_rt = state["runtime"]["Dockerfile"]
    report.check(sorted(set(cpu_rt) - CUDA_RUNTIME_OMITS) == sorted(cuda_rt),
                 "CUDA runtime packages == CPU runtime packages minus Debian's LibTorch",
                 f"cpu-only: {sorted(set(cpu_rt) - set(cuda_rt))}, cuda-only: {sorted(set(cuda_rt) - set(cpu_rt))}")
    if not apt_known("bash"):
        report.skip("apt package existence", "apt-cache knows no packages here (run apt-get update)")
        return
    every = sorted(set(cpu_rt) | set(cuda_rt) | set(cuda_build))
    known = apt_known_set(every)
    for pkg in every:
        report.check(pkg in known, f"apt package {pkg} exists in this Debian release")
    closure = apt_closure(cpu_rt) | BASE_PACKAGES
    with open(os.path.join(repo, "deploy", "docker", "Dockerfile")) as f:
        cuda_copies = [l for l in f.read().splitlines() if l.strip().startswith("COPY --from=cuda")]
    for target, path in sorted(state.get("binaries", {}).items()):
        for lib, pkg in needed_packages(path).items():
            toolkit = re.match(r"^(libcudart|libnccl|libcublas|libcublasLt|libcudnn)\.so", lib)
            if toolkit:
                # A CUDA-toolkit library (this build has MAGI_WITH_CUDA: the toolkit is here).
                # The CPU image builds without the toolkit, so its binaries do not link it; the
                # CUDA image must copy it from the NVIDIA stage (its version is that image's).
                name = toolkit.group(1) + ".so"
                report.check(any(name in l for l in cuda_copies),
                             f"{target}: {lib} comes from the CUDA toolkit, which the CUDA image copies",
                             f"deploy/docker/Dockerfile has no 'COPY --from=cuda ...{name}*' line")
                continue
            report.check(pkg is not None and pkg in closure,
                         f"{target}: {lib} is provided by the runtime packages ({pkg})",
                         f"owned by {pkg}, which no runtime package pulls in: add it to both Dockerfiles")


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    repo, build = map(os.path.abspath, sys.argv[1:])
    report, state = Report(), {}
    for name in ("Dockerfile", "Dockerfile.cpu"):
        check_file(repo, build, os.path.join(repo, "deploy", "docker", name), report, state)
    check_packages(repo, report, state)
    print(f"{report.passed} passed, {report.failed} failed, {len(report.skipped)} skipped")
    if report.failed:
        return 1
    if state.get("missing_targets"):
        print("SKIP: the images copy binaries of CMake targets this build does not define yet: "
              + ", ".join(sorted(state["missing_targets"])) + " (every other check passed)")
        return SKIP
    return 0


if __name__ == "__main__":
    sys.exit(main())
