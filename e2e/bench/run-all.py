#!/usr/bin/env python3
"""The whole comparison suite in one command: skiff side by side with its peers, and the ratios.

    python3 e2e/bench/run-all.py [--quick] [--only NAME,...] [--out DIR] [--no-build]

Run as root, on a machine as quiet as you can make it. Builds the release binaries (unless
--no-build, or SKIFF_BIN / SKIFF_BENCH_PROXY point at builds), then runs, one at a time, each
benchmark script of this folder with `--json`, keeping its Markdown report, its log and its raw
numbers in DIR (default: a new folder under /tmp), with the load average before and after. At
the end it prints one table: every measurement, skiff's number, the peer's number from the same
run, the ratio, issue 15's target, and whether it is met. The table is also DIR/ratios.md.

    name           script                  peer                         full / --quick
    manifest       manifest-to-http.py     podman kube play             20 runs / 5
    create         create-to-running.py    runc run                     20 runs / 5
    cold20         cold-start.py --pods 20 podman kube play             5 runs / 1
    cold500        cold-start.py --pods 500 podman kube play            1 run / skipped
    memory         memory.py --pods 10     podman (conmon)              one sample
    api            api-kubectl.py          (targets: KB per object)     10 runs / 3
    proxy          proxy-bench.py          nginx, HAProxy, Caddy        5 rounds × 10 s / 1 × 3 s
    network        network.py              pod IP direct (ClusterIP)    one run
    binary         (strip of the skiff binary)                          —

A benchmark that fails is reported in the table (and its log kept); the others still run.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))

BENCHES = [
    # name, script, full args, quick args (None: skipped with --quick)
    ("manifest", "manifest-to-http.py", ["--runs", "20"], ["--runs", "5"]),
    ("create", "create-to-running.py", ["--runs", "20"], ["--runs", "5"]),
    ("cold20", "cold-start.py", ["--pods", "20", "--runs", "5"], ["--pods", "20", "--runs", "1"]),
    ("cold500", "cold-start.py", ["--pods", "500", "--runs", "1", "--timeout", "600"], None),
    ("memory", "memory.py", ["--pods", "10"], ["--pods", "10"]),
    ("api", "api-kubectl.py", ["--runs", "10"], ["--runs", "3", "--watch-runs", "10"]),
    ("proxy", "proxy-bench.py", ["--rounds", "5", "--duration", "10"], ["--rounds", "1", "--duration", "3"]),
    ("network", "network.py", [], []),
]


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[:3]


def build():
    cmds = [["cargo", "build", "--release", "-p", "skiff", "--bins"],
            ["cargo", "build", "--release", "-p", "skiff-proxy", "--example", "bench-proxy"]]
    for c in cmds:
        print("+ " + " ".join(c), file=sys.stderr, flush=True)
        subprocess.run(c, cwd=ROOT, check=True)


def skiff_bin():
    return os.environ.get("SKIFF_BIN") or os.path.join(TARGET, "release", "skiff")


def run_bench(out, name, script, args):
    js = os.path.join(out, f"{name}.json")
    md = os.path.join(out, f"{name}.md")
    lg = os.path.join(out, f"{name}.log")
    cmd = [sys.executable, os.path.join(HERE, script)] + args + ["--json", js]
    la0, t0 = loadavg(), time.time()
    print(f"== {name}: {' '.join(cmd[1:])}  (load {' '.join(la0)})", file=sys.stderr, flush=True)
    with open(md, "w") as o, open(lg, "w") as e:
        rc = subprocess.run(cmd, stdout=o, stderr=e, env={**os.environ, "SKIFF_BIN": skiff_bin()}).returncode
    meta = {"rc": rc, "seconds": round(time.time() - t0), "load_before": la0, "load_after": loadavg()}
    print(f"   {name}: rc={rc} in {meta['seconds']} s (load after {' '.join(meta['load_after'])})",
          file=sys.stderr, flush=True)
    try:
        with open(js) as f:
            meta["data"] = json.load(f)
    except (OSError, ValueError):
        meta["data"] = None
    return meta


# ------------------------------------------------------------------------------------------
# Ratios: one row per claim, from the raw numbers of the same run.
# A row: (measurement, skiff, peer, ratio text, target text, met: True/False/None)


def g(d, *path):
    for p in path:
        if d is None:
            return None
        d = d.get(p) if isinstance(d, dict) else None
    return d


def row_ratio(label, skiff, peer, peer_name, unit, want, better="lower"):
    """`want`: the minimum of peer/skiff (better=lower) that meets the target."""
    if skiff is None or peer is None or skiff == 0:
        return (label, fmt(skiff, unit), fmt(peer, unit, peer_name), "—", f"≥ {want}× ({peer_name}/skiff)", None)
    r = peer / skiff if better == "lower" else skiff / peer
    return (label, fmt(skiff, unit), fmt(peer, unit, peer_name), f"{r:.2f}×", f"≥ {want}×", r >= want)


def row_abs(label, skiff, unit, limit, note=""):
    if skiff is None:
        return (label, "—", note or "—", "—", f"≤ {limit} {unit}", None)
    return (label, fmt(skiff, unit), note or "—", "—", f"≤ {limit} {unit}", skiff <= limit)


def fmt(v, unit, who=None):
    if v is None:
        return "—"
    s = f"{v:,.1f} {unit}" if v < 100 else f"{v:,.0f} {unit}"
    return f"{who}: {s}" if who else s


def rows_manifest(d):
    return [row_ratio("manifest → first HTTP 200, p50", g(d, "stats", "skiff", "p50"),
                      g(d, "stats", "podman", "p50"), "podman", "ms", 5)]


def rows_create(d):
    return [row_ratio("container create → first output, p50 (shim vs runc run)",
                      g(d, "stats", "skiff.shim_ms", "p50"), g(d, "stats", "runc.full_ms", "p50"),
                      "runc", "ms", 1)]


def rows_cold(d, n, limit_ms):
    s, p = g(d, "stats", "skiff", "p50"), g(d, "stats", "podman", "p50")
    rows = [row_abs(f"{n} pods cold → all answering, median", s, "ms", limit_ms,
                    fmt(p, "ms", "podman") if p else "")]
    if p:
        rows.append(row_ratio(f"{n} pods cold, podman/skiff", s, p, "podman", "ms", 1))
    return rows


def rows_memory(d):
    s = g(d, "skiff")
    shims = sorted(x["pss_kb"] for x in (g(s, "shim_each") or []))
    shim = shims[len(shims) // 2] / 1024 if shims else None
    return [row_ratio("memory per running container (PSS, marginal)",
                      none_div(g(s, "per_container_marginal", "pss_kb"), 1024),
                      none_div(g(d, "podman", "per_pod", "pss_kb"), 1024), "podman", "MB", 1),
            row_abs("one shim, PSS (median)", shim, "MB", 1.0)]


def none_div(v, by):
    return None if v is None else v / by


def rows_api(d):
    idle, after, pods = (g(d, k, "rss_kb") for k in ("mem_idle", "mem_after_apply", "mem_pods"))
    # 100 objects per namespace, one namespace per run plus the warm-up's (--quick: 400).
    objs = (len(g(d, "apply_create_ns") or []) + 1) * 100
    per_obj = (after - idle) / objs if idle is not None and after is not None else None
    rows = [row_abs(f"daemon memory per stored small object (RSS growth / {objs:,})", per_obj, "KB", 6)]
    # From after the warm-up namespace: the objects' own cost, without the one-time OpenAPI
    # documents and discovery kubectl's first apply makes the daemon build.
    warm = g(d, "mem_warm", "rss_kb")
    if warm is not None and after is not None and objs > 100:
        rows.append(row_abs(f"… the same after the warm-up (RSS growth / {objs - 100:,})",
                            (after - warm) / (objs - 100), "KB", 6))
    return rows + [row_abs(f"daemon RSS, {objs:,} objects + 500 pods stored", none_div(pods, 1024), "MB", 60)]


def rows_proxy(d):
    m = g(d, "medians") or {}
    rows = []
    for sc, label in (("http", "HTTP/1.1 keep-alive"), ("https", "HTTPS keep-alive"), ("h2", "HTTP/2")):
        sk = g(m, sc, "skiff", "cpu_us_per_req")
        for peer in ("nginx", "haproxy"):
            rows.append(row_ratio(f"proxy CPU per request, {label}", sk, g(m, sc, peer, "cpu_us_per_req"),
                                  peer, "µs", 1))
        p99 = [g(m, sc, p, "p99") for p in ("nginx", "haproxy") if g(m, sc, p, "p99") is not None]
        if p99:
            rows.append(row_ratio(f"proxy p99 latency, {label} (best peer)", g(m, sc, "skiff", "p99"),
                                  min(p99), "best peer", "ms", 1))
    # Full TLS handshakes with RSA: within 1.2× of OpenSSL (nginx), i.e. nginx/skiff ≥ 1/1.2.
    rows.append(row_ratio("proxy CPU per full TLS handshake, RSA", g(m, "full", "skiff", "cpu_us_per_req"),
                          g(m, "full", "nginx", "cpu_us_per_req"), "nginx", "µs", round(1 / 1.2, 2)))
    return rows


def rows_network(d):
    rows = [row_abs("pod network setup, p50", g(d, "setup_ms", "p50"), "ms", 15)]
    # network.py: {"http": {"<app>_<client>": {"direct_rps": [...], "clusterip_rps": [...], "ratio"}}}
    # — "ka" is the keep-alive backend (issue 15's target), "web" busybox httpd (a new
    # connection per request: the NAT path's cost per connection, for information).
    for app, what, target in (("ka", "keep-alive backend", True), ("web", "busybox httpd, new connection per request", False)):
        for client in ("host", "pod"):
            r = g(d, "http", f"{app}_{client}")
            label = f"ClusterIP / pod IP throughput, {what}, from the {client}"
            if r is None:
                rows.append((label, "—", "—", "—", "≥ 0.9" if target else "—", None))
                continue
            via, direct = statistics.median(r["clusterip_rps"]), statistics.median(r["direct_rps"])
            rows.append((label, f"{via:,.0f} req/s", f"direct: {direct:,.0f} req/s", f"{r['ratio']:.2f}",
                         "≥ 0.9" if target else "—", r["ratio"] >= 0.9 if target else None))
    return rows


def rows_binary(binary):
    if not os.path.exists(binary):
        return [("stripped skiff binary", "—", "—", "—", "≤ 25 MB", None)]
    with tempfile.TemporaryDirectory() as t:
        out = os.path.join(t, "skiff")
        subprocess.run(["strip", "-o", out, binary], check=True)
        size = os.path.getsize(out) / 1e6
    return [row_abs("stripped skiff binary", size, "MB", 25)]


EXTRACT = {"manifest": rows_manifest, "create": rows_create,
           "cold20": lambda d: rows_cold(d, 20, 1000), "cold500": lambda d: rows_cold(d, 500, 60000),
           "memory": rows_memory, "api": rows_api, "proxy": rows_proxy, "network": rows_network}


def table(rows):
    lines = ["| measurement | skiff | peer (same run) | ratio | target | met |", "|---|---|---|---|---|---|"]
    for r in rows:
        met = {True: "yes", False: "**no**", None: "—"}[r[5]]
        lines.append(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]} | {met} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer runs, no 500-pod start (a smoke run)")
    names = [b[0] for b in BENCHES] + ["binary"]
    ap.add_argument("--only", help="comma-separated names: " + ",".join(names))
    ap.add_argument("--out", help="folder for reports, logs and raw numbers")
    ap.add_argument("--no-build", action="store_true")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root")
    only = set(a.only.split(",")) if a.only else None
    if only and only - set(names):
        sys.exit(f"unknown benchmark(s): {', '.join(sorted(only - set(names)))}")
    if not a.no_build and not os.environ.get("SKIFF_BIN"):
        build()
    out = a.out or tempfile.mkdtemp(prefix="skiff-bench-all.")
    os.makedirs(out, exist_ok=True)
    runs, rows = {}, []
    for name, script, full, quick in BENCHES:
        if only and name not in only:
            continue
        args = quick if a.quick else full
        if args is None:
            continue
        runs[name] = run_bench(out, name, script, args)
        if runs[name]["rc"] != 0:
            rows.append((f"{name}: FAILED (rc {runs[name]['rc']}, see {out}/{name}.log)", "—", "—", "—", "—", False))
        if runs[name]["data"] is not None:
            rows += EXTRACT[name](runs[name]["data"])
    if not only or "binary" in only:
        rows += rows_binary(skiff_bin())
    head = (f"run-all {'--quick ' if a.quick else ''}at {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
            f"{os.cpu_count()} CPUs; load per benchmark (before → after): "
            + "; ".join(f"{n} {' '.join(r['load_before'][:1])} → {' '.join(r['load_after'][:1])}"
                        for n, r in runs.items()))
    text = head + "\n\n" + table(rows) + "\n"
    with open(os.path.join(out, "ratios.md"), "w") as f:
        f.write(text)
    with open(os.path.join(out, "runs.json"), "w") as f:
        json.dump({n: {k: v for k, v in r.items() if k != "data"} for n, r in runs.items()}, f, indent=1)
    print(text)
    print(f"reports, logs and raw numbers: {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
