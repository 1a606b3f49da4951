#!/usr/bin/python3
"""Checks that the Grafana dashboard and the PrometheusRule use only metrics magi-server exports.

The exported names come either from the server's source (prometheus-cpp Build*().Name("...")
calls under server/) or, better, from a live /metrics scrape (text exposition format), which
also gives the label names and values to check selectors such as {outcome="failed"}.

Every series selector in every PromQL expression (dashboard targets, template variable
queries, alert expressions) is extracted; anything that is not a PromQL function, keyword or
Grafana variable must be an exported metric, histogram series (_bucket/_sum/_count) included,
or one of the EXTERNAL metrics below (other exporters the dashboard and alerts rely on), whose
selectors may use only that exporter's labels.

Usage:
  check_metric_names.py (--source SERVER_DIR | --scrape METRICS.txt) FILE...
FILE: a Grafana dashboard (*.json) or a PrometheusRule / rule file (*.yaml).
Exit: 0 all references exported, 1 otherwise.
"""
import argparse
import json
import re
import sys

import yaml

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
            "unless", "offset", "inf", "nan", "atan2"}
AGGREGATIONS = {"sum", "avg", "count", "min", "max", "stddev", "stdvar", "topk", "bottomk", "quantile",
                "count_values", "group", "limitk", "limit_ratio"}
TARGET_LABELS = {"instance", "job"}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
# Metrics of other exporters: name -> (exporter, labels its series carry).
_DCGM_LABELS = {"gpu", "UUID", "device", "modelName", "Hostname", "DCGM_FI_DRIVER_VERSION", "pod", "namespace", "container"}
EXTERNAL = {
    # NVIDIA dcgm-exporter, default counters (etc/default-counters.csv); pod/namespace/container
    # come from its Kubernetes pod mapping (on in the GPU Operator).
    "DCGM_FI_DEV_GPU_UTIL": ("dcgm-exporter", _DCGM_LABELS),
    "DCGM_FI_DEV_FB_USED": ("dcgm-exporter", _DCGM_LABELS),
    "DCGM_FI_DEV_FB_FREE": ("dcgm-exporter", _DCGM_LABELS),
    "DCGM_FI_DEV_POWER_USAGE": ("dcgm-exporter", _DCGM_LABELS),
    "DCGM_FI_DEV_GPU_TEMP": ("dcgm-exporter", _DCGM_LABELS),
    "DCGM_FI_DEV_XID_ERRORS": ("dcgm-exporter", _DCGM_LABELS | {"err_code", "err_msg"}),
    # kube-state-metrics.
    "kube_pod_container_status_restarts_total": ("kube-state-metrics", {"namespace", "pod", "container", "uid"}),
    # kubelet (/metrics), per mounted PersistentVolumeClaim.
    "kubelet_volume_stats_available_bytes": ("kubelet", {"namespace", "persistentvolumeclaim"}),
    "kubelet_volume_stats_capacity_bytes": ("kubelet", {"namespace", "persistentvolumeclaim"}),
    "kubelet_volume_stats_used_bytes": ("kubelet", {"namespace", "persistentvolumeclaim"}),
}
IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*,?')


def exported_from_source(server_dir):
    """{series name: (kind, base name)} from prometheus-cpp builder calls."""
    import glob
    import os
    series = {}
    for path in glob.glob(os.path.join(server_dir, "**", "*.cc"), recursive=True):
        text = open(path).read()
        for kind, name in re.findall(r"Build(Counter|Gauge|Histogram|Summary)\(\)\s*\.Name\(\s*\"([a-zA-Z_:][\w:]*)\"", text):
            kind = kind.lower()
            series[name] = (kind, name)
            if kind in ("histogram", "summary"):
                for suffix in ("_sum", "_count") + (("_bucket",) if kind == "histogram" else ()):
                    series[name + suffix] = (kind, name)
    return series, None


def exported_from_scrape(path):
    """({series name: (kind, base)}, {series name: {label: set(values)}}) from /metrics text."""
    series, labels = {}, {}
    types = {}
    for line in open(path):
        line = line.rstrip("\n")
        m = re.match(r"# TYPE (\S+) (\S+)", line)
        if m:
            types[m.group(1)] = m.group(2)
            continue
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][\w:]*)(\{(.*)\})?\s", line)
        if not m:
            continue
        name = m.group(1)
        base = next((b for b in (name, re.sub(r"_(bucket|sum|count|total)$", "", name)) if b in types), name)
        series[name] = (types.get(base, "untyped"), base)
        lab = labels.setdefault(name, {})
        for k, _, v in MATCHER.findall(m.group(3) or ""):
            lab.setdefault(k, set()).add(v)
    return series, labels


def strip_grafana(expr):
    # $__rate_interval, $instance, ${var}, [[var]] are Grafana template variables.
    expr = re.sub(r"\$\{[^}]*\}|\$\w+|\[\[\w+\]\]", "1m", expr)
    return expr


def selectors(expr):
    """[(metric name, [(label, op, value)])] for every vector selector in a PromQL expression."""
    expr = strip_grafana(expr)
    out = []
    i, n = 0, len(expr)
    skip_next_paren = False
    while i < n:
        c = expr[i]
        if c == '"' or c == "'":
            j = i + 1
            while j < n and expr[j] != c:
                j += 2 if expr[j] == "\\" else 1
            i = j + 1
            continue
        if c == "[":
            i = expr.index("]", i) + 1
            continue
        if c == "{":  # selector without a metric name: {__name__=...}
            j = expr.index("}", i)
            out.append((None, MATCHER.findall(expr[i + 1:j])))
            i = j + 1
            continue
        if c == "(" and skip_next_paren:
            i = expr.index(")", i) + 1
            skip_next_paren = False
            continue
        m = IDENT.match(expr, i)
        if m and (i == 0 or not (expr[i - 1].isalnum() or expr[i - 1] in "_.")):
            word = m.group(0)
            j = m.end()
            while j < n and expr[j].isspace():
                j += 1
            if word.lower() in GROUPING:
                skip_next_paren = True
            elif word.lower() in KEYWORDS or word in AGGREGATIONS:
                pass  # aggregations may put "by (...)" before their parenthesis
            elif j < n and expr[j] == "(":
                pass  # function or aggregation
            elif re.fullmatch(r"\d+[smhdwy]", word) or re.fullmatch(r"[eE]\d*", word):
                pass
            else:
                matchers = []
                if j < n and expr[j] == "{":
                    k = expr.index("}", j)
                    matchers = MATCHER.findall(expr[j + 1:k])
                    j = k + 1
                out.append((word, matchers))
            i = j
            continue
        if c.isdigit():
            m = re.match(r"[0-9.eE+-]+[smhdwy]?", expr[i:])
            i += len(m.group(0))
            continue
        i += 1
    return out


def dashboard_exprs(path):
    doc = json.load(open(path))
    exprs = []

    def walk(panels):
        for p in panels or []:
            for t in p.get("targets", []):
                if t.get("expr"):
                    exprs.append((f"panel '{p.get('title')}'", t["expr"]))
            walk(p.get("panels"))

    walk(doc.get("panels"))
    for v in doc.get("templating", {}).get("list", []):
        q = v.get("query")
        if isinstance(q, dict):
            q = q.get("query")
        if v.get("type") == "query" and q:
            m = re.match(r"label_values\((.*),\s*\w+\)\s*$", q)
            exprs.append((f"variable '{v.get('name')}'", m.group(1) if m else q))
    return exprs


def rule_exprs(path):
    exprs = []
    for doc in yaml.safe_load_all(open(path)):
        if not doc:
            continue
        groups = doc.get("spec", {}).get("groups") if doc.get("kind") == "PrometheusRule" else doc.get("groups")
        for g in groups or []:
            for r in g.get("rules", []):
                exprs.append((f"rule '{r.get('alert') or r.get('record')}'", str(r["expr"])))
    return exprs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--source", help="server source folder (prometheus-cpp Build*().Name calls)")
    src.add_argument("--scrape", help="a saved /metrics response")
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    series, labels = exported_from_source(a.source) if a.source else exported_from_scrape(a.scrape)
    if not series:
        print(f"FAIL no magi-server metrics found in {a.source or a.scrape}")
        return 1
    print(f"exported: {len({b for _, b in series.values()})} metrics ({len(series)} series names) from {a.source or a.scrape}")
    passed = failed = 0
    used = set()
    for f in a.files:
        exprs = dashboard_exprs(f) if f.endswith(".json") else rule_exprs(f)
        if not exprs:
            print(f"FAIL {f}: no PromQL expressions found")
            failed += 1
        for where, expr in exprs:
            sels = selectors(expr)
            problems = []
            if not sels:
                problems.append("references no metric")
            for name, matchers in sels:
                if name is None:
                    problems.append("selector without a metric name")
                    continue
                if name not in series and name in EXTERNAL:
                    exporter, known = EXTERNAL[name]
                    used.add(f"{name} ({exporter})")
                    for label, _, _ in matchers:
                        if label not in known and label not in TARGET_LABELS:
                            problems.append(f"{name} ({exporter}) has no label {label}")
                    continue
                if name not in series:
                    problems.append(f"{name} is not exported")
                    continue
                used.add(series[name][1])
                if labels is not None:
                    for label, op, value in matchers:
                        if label in TARGET_LABELS:
                            continue  # attached by Prometheus at scrape time, not in /metrics
                        have = labels.get(name, {}).get(label)
                        if have is None:
                            problems.append(f"{name} has no label {label}")
                        elif op == "=" and value not in have:
                            problems.append(f'{name}{{{label}="{value}"}} matches no series (values: {sorted(have)})')
            if problems:
                failed += 1
                print(f"FAIL {f}: {where}: {'; '.join(problems)}\n       {expr.strip()}")
            else:
                passed += 1
                print(f"ok   {f}: {where}: {', '.join(sorted({s for s, _ in sels}))}")
    print(f"metrics used: {', '.join(sorted(used))}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
