#!/usr/bin/env python3
"""Benchmark: manifest written → first HTTP 200 from the container, skiff vs `podman kube play`.

    python3 e2e/bench/manifest-to-http.py [--runs 20] [--no-podman] [--json OUT.json]
                                          [--baseline OLD_SKIFF_BIN]

Run as root. Builds the busybox test image (e2e/images/build-busybox-image.sh), imports it
into a fresh skiff data directory and into podman (`podman load`), then, interleaved (the
order alternates every run), one run of each engine at a time:

- skiff: the same Pod manifest (hostNetwork: true, busybox `httpd -f -p 127.0.0.1:PORT`) is
  written to a staging file and renamed into the watched manifests folder. t0 = just before
  the rename; t1 = when the first HTTP 200 arrived, polling 127.0.0.1:PORT every ~1 ms. Then
  the file is removed and the run waits until the port is closed and `skiff get pods` is
  empty (not timed into the result; reported as "delete").
- podman: the same manifest file (same image, same command) given to `podman kube play FILE`.
  t0 = just before the `podman kube play` process is spawned; t1 as above. Then
  `podman kube down FILE`.

One warm-up run of each engine is discarded. The pod uses a fresh free port every run. For
skiff the steps in between are timestamped from inotify events on the data directory (see
benchlib.ContainerWatch: pod dir created, container dir created, overlayfs + config.json done,
meta.json durable, shim spawned, shim running, libcontainer start() returned, state.json
durable), then HTTP 200.

With --baseline, a second skiff server runs that build as a third engine ("baseline"),
interleaved with the others: a before/after comparison in the same run (both servers then get
their own bridge and no ingress listeners, so they do not collide).

Cleans up on exit (skiff killall, temp dirs, podman state reset, containers.conf restored).
"""

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402

RUN_TIMEOUT_S = 30


def skiff_phases(watch, t0):
    """Steps of the container start (ms after t0), from inotify events (see
    benchlib.ContainerWatch)."""
    return {k: B.ms(watch.times[k] - t0) for k in watch.ORDER if k in watch.times}


def run_skiff(sk, watch, i, failures):
    port = B.free_port()
    text = B.pod_manifest("bench", port)
    deadline = lambda s: B.now_ns() + int(s * 1e9)  # noqa: E731
    watch.reset()
    t0 = sk.apply("bench.yaml", text)
    t1 = B.wait_http_200(port, t0 + RUN_TIMEOUT_S * 10**9, idle=watch.wait)
    res = {"engine": "skiff", "run": i, "port": port}
    if t1 is None:
        res["error"] = f"no HTTP 200 within {RUN_TIMEOUT_S} s"
        res["pods"] = sk.get_pods()
        res["log_tail"] = sk.log_tail()
        failures.append(res)
    else:
        res["ms"] = B.ms(t1 - t0)
        res["phases"] = skiff_phases(watch, t0)
    td = B.now_ns()
    sk.delete("bench.yaml")
    ok = B.wait_port_closed(port, deadline(RUN_TIMEOUT_S)) and sk.wait_no_pods(deadline(RUN_TIMEOUT_S))
    res["delete_ms"] = B.ms(B.now_ns() - td) if ok else None
    if not ok:
        res["delete_error"] = "pod still present / port still open after 30 s"
        res["log_tail"] = sk.log_tail()
        failures.append(res)
    return res


def run_podman(work, i, failures):
    port = B.free_port()
    path = os.path.join(work, "podman-pod.yaml")
    with open(path, "w") as f:
        f.write(B.pod_manifest("bench", port))
    res = {"engine": "podman", "run": i, "port": port}
    t0 = B.now_ns()
    proc = subprocess.Popen(["podman", "kube", "play", path], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        t1 = B.wait_http_200(port, t0 + RUN_TIMEOUT_S * 10**9)
    except BaseException:
        proc.kill()  # our own child; interrupted: let the clean-up see a settled podman
        proc.wait()
        raise
    try:
        _, err = proc.communicate(timeout=RUN_TIMEOUT_S)
        res["play_exit_ms"] = B.ms(B.now_ns() - t0)  # upper bound: measured after the 200
        if proc.returncode != 0:
            res["play_error"] = err.decode(errors="replace")[-500:]
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        res["play_error"] = "podman kube play did not return"
    if t1 is None:
        res["error"] = f"no HTTP 200 within {RUN_TIMEOUT_S} s"
        failures.append(res)
    else:
        res["ms"] = B.ms(t1 - t0)
    td = B.now_ns()
    r = B.run(["podman", "kube", "down", path], check=False, timeout=120)
    ok = B.wait_port_closed(port, B.now_ns() + RUN_TIMEOUT_S * 10**9)
    res["delete_ms"] = B.ms(B.now_ns() - td) if ok and r.returncode == 0 else None
    if not ok or r.returncode != 0:
        res["delete_error"] = f"kube down rc={r.returncode} {r.stderr[-300:]}"
        failures.append(res)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--no-podman", action="store_true")
    ap.add_argument("--json", help="write all results to this file")
    ap.add_argument("--baseline", help="another skiff binary to compare in the same run")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root")
    B.install_signal_handlers()

    work = B.make_workdir("skiff-bench-m2h.")
    sk = None
    base = None
    pm = None
    results, failures = [], []
    info = B.machine_info()
    try:
        archive = B.build_image(work)
        side_by_side = 1 if args.baseline else None
        sk = B.Skiff(os.path.join(work, "skiff"), net_index=side_by_side)
        sk.import_image(archive)
        watch = B.ContainerWatch(sk.data)
        sk.start()
        info["skiff"] = B.run([sk.bin, "--version"], check=False, quiet=True).stdout.strip()
        if args.baseline:
            base = B.Skiff(os.path.join(work, "baseline"), bin=args.baseline, net_index=2)
            base.import_image(archive)
            base_watch = B.ContainerWatch(base.data)
            base.start()
            info["baseline"] = args.baseline
        if not args.no_podman:
            pm = B.Podman(work)
            pm.setup(archive)
            info["podman"] = pm.version()
        engines = (["skiff"] + (["baseline"] if args.baseline else [])
                   + ([] if args.no_podman else ["podman"]))

        def one(engine, i):
            if engine == "skiff":
                return run_skiff(sk, watch, i, failures)
            if engine == "baseline":
                r = run_skiff(base, base_watch, i, failures)
                r["engine"] = "baseline"
                return r
            return run_podman(work, i, failures)

        B.log("warm-up (discarded)")
        for e in engines:
            r = one(e, 0)
            B.log(f"  warm-up {e}: {r.get('ms')} ms")
        for i in range(1, args.runs + 1):
            # Rotate the order every run, so that no engine always follows another.
            order = engines[i % len(engines):] + engines[:i % len(engines)]
            for e in order:
                r = one(e, i)
                results.append(r)
                extra = ""
                if e == "skiff" and r.get("phases"):
                    extra = " phases " + " ".join(f"{k}={v:.1f}" for k, v in r["phases"].items())
                B.log(f"run {i:2d} {e:6s}: {B.fmt_ms(r.get('ms'))} ms "
                      f"(delete {B.fmt_ms(r.get('delete_ms'))} ms){extra}")
            if len(failures) >= 3:
                B.log("three failures: stopping early")
                break
        info["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    finally:
        if sk is not None:
            sk.stop()
        if base is not None:
            base.stop()
        if pm is not None:
            pm.close()
        shutil.rmtree(work, ignore_errors=True)

    report(results, failures, info, engines, args)


def report(results, failures, info, engines, args):
    stats = {}
    for e in engines:
        stats[e] = B.summary([r["ms"] for r in results if r["engine"] == e and "ms" in r])
        stats[e + "_delete"] = B.summary([r["delete_ms"] for r in results
                                          if r["engine"] == e and r.get("delete_ms") is not None])
    phase_keys = B.ContainerWatch.ORDER
    phases = {k: B.summary([r["phases"][k] for r in results
                            if r["engine"] == "skiff" and k in r.get("phases", {})])
              for k in phase_keys}
    print()
    print(f"machine: {info}")
    print()
    print("| manifest written → first HTTP 200 | runs | p50 (ms) | p90 (ms) | min | max |")
    print("|---|---|---|---|---|---|")
    for e in engines:
        s = stats[e]
        if s:
            print(f"| {e} | {s['n']} | {s['p50']:.1f} | {s['p90']:.1f} | {s['min']:.1f} | {s['max']:.1f} |")
        else:
            print(f"| {e} | 0 | — | — | — | — |")
    if stats.get("baseline") and stats.get("skiff"):
        print(f"\nratio skiff/baseline: p50 {stats['skiff']['p50'] / stats['baseline']['p50']:.2f}×, "
              f"p90 {stats['skiff']['p90'] / stats['baseline']['p90']:.2f}×")
    if stats.get("podman") and stats.get("skiff"):
        print(f"\nratio podman/skiff: p50 {stats['podman']['p50'] / stats['skiff']['p50']:.2f}×, "
              f"p90 {stats['podman']['p90'] / stats['skiff']['p90']:.2f}×")
    print("\n| delete (file removed / kube down → port closed, pod gone) | p50 (ms) | p90 (ms) |")
    print("|---|---|---|")
    for e in engines:
        s = stats[e + "_delete"]
        if s:
            print(f"| {e} | {s['p50']:.1f} | {s['p90']:.1f} |")
    print("\nskiff steps, ms after the manifest rename (median / p90; inotify events, "
          "see benchlib.ContainerWatch):")
    print("| step | p50 (ms) | p90 (ms) |")
    print("|---|---|---|")
    for k in phase_keys:
        if phases[k]:
            print(f"| {k} | {phases[k]['p50']:.1f} | {phases[k]['p90']:.1f} |")
    s = stats.get("skiff")
    if s:
        print(f"| HTTP 200 | {s['p50']:.1f} | {s['p90']:.1f} |")
    B.print_failures(failures)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"info": info, "results": results, "stats": stats, "skiff_phases": phases,
                       "failures": failures}, f, indent=1)


if __name__ == "__main__":
    main()
