#!/usr/bin/env python3
"""Benchmark: N pods cold → all N answering HTTP 200, skiff vs `podman kube play` (issue 15).

    python3 e2e/bench/cold-start.py [--pods 20] [--runs 3] [--no-podman] [--json OUT.json]

Run as root. The same N Pod documents for both engines, in ONE file: busybox
`httpd -f -p 127.0.0.1:PORT` with hostNetwork and a distinct port per pod (the method of
manifest-to-http.py, N times over), the image present (imported into skiff, loaded into podman).

- skiff: t0 = just before the file is renamed into the watched manifests folder; t1 = the
  moment the last of the N ports answered 200 (every port polled in turn, ~every 5 ms per
  round). Then the file is removed and the run waits until no pod and no container is left.
- podman: t0 = just before `podman kube play FILE` is started; t1 likewise; then
  `podman kube down FILE`.
Runs alternate (skiff, podman, podman, skiff, ...); one warm-up run of each is discarded when
--runs > 1. Prints a Markdown table (median, min, max of the runs; the first pod's answer) and
the ratio podman/skiff; `--json` writes every raw number. Cleans up on exit (skiff killall,
podman kube down / reset, temp dirs, containers.conf restored).
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402


def manifest(n, ports):
    return "---\n".join(B.pod_manifest(f"cold-{i}", port) for i, port in enumerate(ports))


def wait_all(ports, t0, timeout_s):
    """Polls every pending port until all answer 200; returns (first_ns, last_ns) after t0,
    or None for the part that never answered (with the ports still pending)."""
    deadline = B.now_ns() + timeout_s * 10**9
    pending = set(ports)
    first = None
    while pending and B.now_ns() < deadline:
        for p in list(pending):
            if B.http_status(p, timeout=0.5) == 200:
                pending.discard(p)
                if first is None:
                    first = B.now_ns()
        if pending:
            time.sleep(0.005)
    last = B.now_ns() if not pending else None
    return first, last, pending


def run_skiff(sk, n, timeout_s, failures):
    ports = [B.free_port() for _ in range(n)]
    t0 = sk.apply("cold.yaml", manifest(n, ports))
    first, last, pending = wait_all(ports, t0, timeout_s)
    r = {"engine": "skiff", "first_ms": B.ms(first - t0) if first else None}
    if last is None:
        failures.append({"engine": "skiff", "pending": len(pending), "log_tail": sk.log_tail()})
    else:
        r["ms"] = B.ms(last - t0)
    t = B.now_ns()
    sk.delete("cold.yaml")
    if not sk.wait_no_pods(B.now_ns() + max(60, n // 2) * 10**9):
        failures.append({"engine": "skiff", "error": "pods left after the file was removed"})
    r["delete_ms"] = B.ms(B.now_ns() - t)
    return r


def run_podman(work, n, timeout_s, failures):
    ports = [B.free_port() for _ in range(n)]
    path = os.path.join(work, "podman-cold.yaml")
    with open(path, "w") as f:
        f.write(manifest(n, ports))
    t0 = B.now_ns()
    play = B.run(["podman", "kube", "play", path], check=False, timeout=max(120, n))
    r = {"engine": "podman", "play_ms": B.ms(B.now_ns() - t0)}
    if play.returncode != 0:
        failures.append({"engine": "podman", "error": play.stderr.strip()[-500:]})
    else:
        first, last, pending = wait_all(ports, t0, timeout_s)
        r["first_ms"] = B.ms(first - t0) if first else None
        if last is None:
            failures.append({"engine": "podman", "pending": len(pending)})
        else:
            r["ms"] = B.ms(last - t0)
    t = B.now_ns()
    B.run(["podman", "kube", "down", path], check=False, timeout=max(120, n))
    r["delete_ms"] = B.ms(B.now_ns() - t)
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pods", type=int, default=20)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--timeout", type=int, default=300, help="seconds for all pods to answer")
    ap.add_argument("--no-podman", action="store_true")
    ap.add_argument("--json", help="write all results to this file")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root")
    B.install_signal_handlers()
    work = B.make_workdir("skiff-bench-cold.")
    info = B.machine_info()
    results, failures = [], []
    sk = pm = None
    try:
        archive = B.build_image(work)
        sk = B.Skiff(os.path.join(work, "skiff"))
        # The node takes 110 pods by default (kubelet's and k3s's maxPods).
        sk.extra_args = ["--max-pods", str(max(110, args.pods))]
        sk.import_image(archive)
        sk.start()
        engines = ["skiff"]
        if not args.no_podman:
            pm = B.Podman(work)
            pm.setup(archive)
            info["podman"] = pm.version()
            engines.append("podman")

        def one(e):
            if e == "skiff":
                return run_skiff(sk, args.pods, args.timeout, failures)
            return run_podman(work, args.pods, args.timeout, failures)

        if args.runs > 1:
            for e in engines:
                r = one(e)
                B.log(f"warm-up {e} (discarded): {B.fmt_ms(r.get('ms'))} ms")
        for i in range(args.runs):
            for e in (engines if i % 2 == 0 else list(reversed(engines))):
                r = one(e)
                results.append(r)
                B.log(f"run {i + 1} {e:6s}: all {args.pods} answering {B.fmt_ms(r.get('ms'))} ms, "
                      f"first {B.fmt_ms(r.get('first_ms'))} ms, delete {B.fmt_ms(r.get('delete_ms'))} ms")
            if len(failures) >= 2:
                B.log("two failures: stopping early")
                break
        info["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    finally:
        if sk is not None:
            sk.stop()
        if pm is not None:
            pm.close()
        shutil.rmtree(work, ignore_errors=True)

    stats = {}
    print()
    print(f"machine: {info}")
    print()
    print(f"| {args.pods} pods cold → all answering | runs | median (ms) | min | max | first pod (median ms) | delete (median ms) |")
    print("|---|---|---|---|---|---|---|")
    for e in ("skiff", "podman"):
        v = [r["ms"] for r in results if r["engine"] == e and "ms" in r]
        if not v:
            continue
        med = lambda k: statistics.median([r[k] for r in results if r["engine"] == e and r.get(k) is not None])  # noqa: E731
        stats[e] = {"n": len(v), "p50": statistics.median(v), "min": min(v), "max": max(v),
                    "first_p50": med("first_ms"), "delete_p50": med("delete_ms")}
        s = stats[e]
        print(f"| {e} | {s['n']} | {s['p50']:.0f} | {s['min']:.0f} | {s['max']:.0f} | "
              f"{s['first_p50']:.0f} | {s['delete_p50']:.0f} |")
    if stats.get("skiff") and stats.get("podman"):
        print(f"\nratio podman/skiff (all answering, median): {stats['podman']['p50'] / stats['skiff']['p50']:.2f}×")
    B.print_failures(failures)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"info": info, "args": vars(args), "results": results, "stats": stats,
                       "failures": failures}, f, indent=1)
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
