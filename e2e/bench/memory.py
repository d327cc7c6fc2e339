#!/usr/bin/env python3
"""Benchmark: memory of skiff (daemon idle, per running container) and of podman per pod.

    python3 e2e/bench/memory.py [--pods 10] [--no-podman] [--json OUT.json]

Run as root. Builds the busybox test image, starts a fresh `skiff server`, and reads
/proc/PID/status (VmRSS) and /proc/PID/smaps_rollup (Pss) of:

- the daemon, idle (no pods; after a 3 s settle);
- N pods (N files in the manifests folder, each one Pod, hostNetwork, busybox
  `httpd -f -p 127.0.0.1:PORT`, distinct ports), once all N answer HTTP 200 and after a 6 s
  settle (past one controller resync): the daemon, every `skiff shim` process of the data
  directory, and every process below the shims (the containers' processes).

Per running container: total(daemon + shims + containers) / N as well as the marginal
(total − idle daemon) / N. RSS counts shared pages (the skiff binary's text in every shim,
busybox's text in every httpd) once per process; PSS splits them between the processes, so
sums of PSS are the better "what does it cost" number.

Then the same for podman (no daemon): N `podman kube play` of the same manifests; the
processes counted are every `conmon` that appeared and everything below them (per pod: the
infra container's conmon + catatonit, the app's conmon + httpd).

Cleans up on exit (skiff killall, podman kube down / reset, temp dirs, containers.conf).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402

SETTLE_IDLE_S = 3
SETTLE_PODS_S = 6


def mem(pids):
    return {"pids": len(pids), "rss_kb": sum(B.rss_kb(p) for p in pids),
            "pss_kb": sum(B.pss_kb(p) for p in pids)}


def per_process(pids):
    return [{"pid": p, "comm": B.comm_of(p), "rss_kb": B.rss_kb(p), "pss_kb": B.pss_kb(p)}
            for p in pids]


def wait_all_200(ports, timeout_s=60):
    deadline = B.now_ns() + timeout_s * 10**9
    pending = set(ports)
    while pending and B.now_ns() < deadline:
        for p in list(pending):
            if B.http_status(p) == 200:
                pending.discard(p)
        time.sleep(0.05)
    return pending


def measure_skiff(work, archive, n):
    sk = B.Skiff(os.path.join(work, "skiff"))
    out = {}
    try:
        sk.import_image(archive)
        sk.start()
        time.sleep(SETTLE_IDLE_S)
        # The daemon and its zygote (which forks the shims): the daemon's own processes.
        daemon = [sk.proc.pid] + sk.zygote_pids()
        out["daemon_idle"] = mem(daemon)
        ports = [B.free_port() for _ in range(n)]
        for i, port in enumerate(ports):
            sk.apply(f"bench-{i}.yaml", B.pod_manifest(f"bench-{i}", port))
        missing = wait_all_200(ports)
        if missing:
            out["error"] = f"ports {sorted(missing)} never answered"
            out["log_tail"] = sk.log_tail()
            return out
        time.sleep(SETTLE_PODS_S)
        shims = sk.shim_pids()
        containers = B.descendants(shims)
        out["n"] = n
        out["daemon_with_pods"] = mem(daemon)
        out["zygote"] = mem(daemon[1:])
        out["shims"] = mem(shims)
        out["containers"] = mem(containers)
        out["shim_each"] = per_process(shims)
        out["container_each"] = per_process(containers)
        total = {k: out["daemon_with_pods"][k] + out["shims"][k] + out["containers"][k]
                 for k in ("rss_kb", "pss_kb")}
        out["total"] = total
        out["per_container_total_div_n"] = {k: total[k] / n for k in total}
        out["per_container_marginal"] = {k: (total[k] - out["daemon_idle"][k]) / n for k in total}
        for i in range(n):
            sk.delete(f"bench-{i}.yaml")
        if not sk.wait_no_pods(B.now_ns() + 60 * 10**9):
            out["delete_error"] = "pods still present 60 s after their files were removed"
            out["log_tail"] = sk.log_tail()
        return out
    finally:
        sk.stop()


def measure_podman(work, archive, n):
    pm = B.Podman(work)
    out = {}
    files = []
    try:
        pm.setup(archive)
        out["version"] = pm.version()
        before = set(pm.conmon_pids())
        ports = [B.free_port() for _ in range(n)]
        for i, port in enumerate(ports):
            path = os.path.join(work, f"podman-{i}.yaml")
            with open(path, "w") as f:
                f.write(B.pod_manifest(f"bench-{i}", port))
            files.append(path)
            B.run(["podman", "kube", "play", path], timeout=120)
        missing = wait_all_200(ports)
        if missing:
            out["error"] = f"ports {sorted(missing)} never answered"
            return out
        time.sleep(SETTLE_PODS_S)
        conmons = [p for p in pm.conmon_pids() if p not in before]
        below = [p for p in B.descendants(conmons) if p not in conmons]
        out["n"] = n
        out["conmon"] = mem(conmons)
        out["containers"] = mem(below)
        out["conmon_each"] = per_process(conmons)
        out["container_each"] = per_process(below)
        total = {k: out["conmon"][k] + out["containers"][k] for k in ("rss_kb", "pss_kb")}
        out["total"] = total
        out["per_pod"] = {k: total[k] / n for k in total}
        for path in files:
            B.run(["podman", "kube", "down", path], check=False, timeout=120)
        return out
    finally:
        pm.close()


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2


def mb(kb):
    return f"{kb / 1024:.2f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pods", type=int, default=10)
    ap.add_argument("--no-podman", action="store_true")
    ap.add_argument("--json", help="write all results to this file")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root")
    B.install_signal_handlers()
    work = B.make_workdir("skiff-bench-mem.")
    info = B.machine_info()
    res = {"info": info}
    try:
        archive = B.build_image(work)
        res["skiff"] = measure_skiff(work, archive, args.pods)
        if not args.no_podman:
            res["podman"] = measure_podman(work, archive, args.pods)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    n = args.pods
    s = res["skiff"]
    print()
    print(f"machine: {info}")
    if "error" in s:
        print("skiff failed:", s["error"], "\n", s.get("log_tail", ""))
    else:
        print()
        print(f"skiff, {n} running pods (MB; RSS / PSS)")
        print("| what | processes | RSS (MB) | PSS (MB) |")
        print("|---|---|---|---|")
        for label, k in (("daemon + its zygote, idle (no pods)", "daemon_idle"),
                         (f"daemon + its zygote, {n} pods", "daemon_with_pods"),
                         (f"… of which the zygote", "zygote"),
                         (f"all {n} shims", "shims"),
                         (f"all container processes", "containers"),
                         ("total (daemon + shims + containers)", "total")):
            v = s[k]
            print(f"| {label} | {v.get('pids', '')} | {mb(v['rss_kb'])} | {mb(v['pss_kb'])} |")
        print(f"| one shim (median) | 1 | {mb(median([x['rss_kb'] for x in s['shim_each']]))} "
              f"| {mb(median([x['pss_kb'] for x in s['shim_each']]))} |")
        print(f"| one container's processes (median) | 1 | "
              f"{mb(median([x['rss_kb'] for x in s['container_each']]))} | "
              f"{mb(median([x['pss_kb'] for x in s['container_each']]))} |")
        print(f"| per container: total / {n} | | {mb(s['per_container_total_div_n']['rss_kb'])} "
              f"| {mb(s['per_container_total_div_n']['pss_kb'])} |")
        print(f"| per container: (total − idle daemon) / {n} | | "
              f"{mb(s['per_container_marginal']['rss_kb'])} | {mb(s['per_container_marginal']['pss_kb'])} |")
        if s.get("delete_error"):
            print("skiff delete problem:", s["delete_error"], "\n", s.get("log_tail", ""))
    p = res.get("podman")
    if p:
        if "error" in p:
            print("podman failed:", p["error"])
        else:
            print()
            print(f"podman ({p['version']}), {n} running pods")
            print("| what | processes | RSS (MB) | PSS (MB) |")
            print("|---|---|---|---|")
            print(f"| all conmon | {p['conmon']['pids']} | {mb(p['conmon']['rss_kb'])} | {mb(p['conmon']['pss_kb'])} |")
            print(f"| all container processes (catatonit + httpd) | {p['containers']['pids']} | "
                  f"{mb(p['containers']['rss_kb'])} | {mb(p['containers']['pss_kb'])} |")
            print(f"| total | | {mb(p['total']['rss_kb'])} | {mb(p['total']['pss_kb'])} |")
            print(f"| per pod: total / {n} | | {mb(p['per_pod']['rss_kb'])} | {mb(p['per_pod']['pss_kb'])} |")
            if "error" not in s:
                print(f"\nratio per container, podman / skiff (marginal): RSS "
                      f"{p['per_pod']['rss_kb'] / s['per_container_marginal']['rss_kb']:.2f}×, PSS "
                      f"{p['per_pod']['pss_kb'] / s['per_container_marginal']['pss_kb']:.2f}×")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
