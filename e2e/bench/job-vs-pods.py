#!/usr/bin/env python3
"""Benchmark: a Job of 20 completions, 4 at a time, vs the same 20 pods as bare Pods.

    python3 e2e/bench/job-vs-pods.py [--runs 3] [--completions 20] [--parallelism 4] [--json OUT]

Run as root. One skiff server; each run, interleaved (the order alternates):

- job:  one Job manifest (completions 20, parallelism 4, restartPolicy Never, the busybox
        test image running `sh -c 'echo done'`) renamed into the manifests folder (t0);
        t1 = the first poll (every 50 ms, `skiff get jobs -o json`, read-only store) that
        shows the Job's Complete condition.
- pods: 20 Pod manifests of the same container (restartPolicy Never) in one file renamed
        into the folder (t0); t1 = the first poll that shows all 20 Succeeded.

Between runs the manifest is removed and the script waits for every pod (and container) to
be gone. Reported: each side's median and spread, and the ratio job/pods of the medians.
The Job is expected to be slower: at most `parallelism` pods run at once, and each
replacement waits for a controller pass after a pod finished.
"""

import argparse
import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402

TIMEOUT_S = 300


def container(indent):
    pad = " " * indent
    return "\n".join([
        f"{pad}restartPolicy: Never",
        f"{pad}terminationGracePeriodSeconds: 1",
        f"{pad}containers:",
        f"{pad}- name: work",
        f"{pad}  image: {B.IMAGE_REF}",
        f"{pad}  imagePullPolicy: Never",
        f"{pad}  command: [sh, -c, 'echo done']",
    ])


def job_yaml(completions, parallelism):
    return (f"apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: bench\nspec:\n"
            f"  completions: {completions}\n  parallelism: {parallelism}\n"
            f"  template:\n    spec:\n{container(6)}\n")


def pods_yaml(n):
    docs = [f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: bench-{i}\nspec:\n{container(2)}\n"
            for i in range(n)]
    return "---\n".join(docs)


def get_json(sk, kind):
    r = B.run([sk.bin, "get", kind, "-A", "--data-dir", sk.data, "-o", "json"],
              check=False, quiet=True)
    if r.returncode != 0:
        return []
    v = json.loads(r.stdout or "null")
    if isinstance(v, dict) and "items" in v:
        return v["items"]
    return v if isinstance(v, list) else ([v] if v else [])


def job_complete(sk):
    for j in get_json(sk, "jobs"):
        for c in j.get("status", {}).get("conditions", []):
            if c.get("type") == "Complete" and c.get("status") == "True":
                return True
    return False


def pods_done(sk, n):
    pods = sk.get_pods() or []
    done = [p for p in pods if p.get("status", {}).get("phase") == "Succeeded"]
    return len(done) == n


def one(sk, kind, args, failures):
    name = f"bench-{kind}.yaml"
    text = (job_yaml(args.completions, args.parallelism) if kind == "job"
            else pods_yaml(args.completions))
    t0 = B.now_ns()
    sk.apply(name, text)
    deadline = t0 + TIMEOUT_S * 10**9
    ok = False
    while B.now_ns() < deadline:
        if (job_complete(sk) if kind == "job" else pods_done(sk, args.completions)):
            ok = True
            break
        time.sleep(0.05)
    t1 = B.now_ns()
    sk.delete(name)
    if not sk.wait_no_pods(B.now_ns() + 120 * 10**9):
        failures.append(f"{kind}: pods left after deletion")
    if not ok:
        failures.append(f"{kind}: not done within {TIMEOUT_S} s")
        return None
    return B.ms(t1 - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--completions", type=int, default=20)
    ap.add_argument("--parallelism", type=int, default=4)
    ap.add_argument("--json", help="write all results to this file")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root")
    B.install_signal_handlers()
    work = B.make_workdir("skiff-bench-job.")
    sk = None
    results = {"job": [], "pods": []}
    failures = []
    info = B.machine_info()
    try:
        archive = B.build_image(work)
        # Its own bridge and ranges: other servers on the machine may use the default ones.
        sk = B.Skiff(os.path.join(work, "skiff"), net_index=6)
        sk.import_image(archive)
        sk.start()
        info["skiff"] = sk.bin
        B.log("warm-up (discarded)")
        for kind in ("pods", "job"):
            B.log(f"  warm-up {kind}: {B.fmt_ms(one(sk, kind, args, failures))} ms")
        for i in range(1, args.runs + 1):
            order = ("job", "pods") if i % 2 else ("pods", "job")
            for kind in order:
                ms = one(sk, kind, args, failures)
                if ms is not None:
                    results[kind].append(ms)
                B.log(f"run {i} {kind:4s}: {B.fmt_ms(ms)} ms")
        info["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    finally:
        if sk is not None:
            sk.stop()
        shutil.rmtree(work, ignore_errors=True)
    stats = {k: B.summary(v) for k, v in results.items() if v}
    print()
    print(f"{args.completions} completions, parallelism {args.parallelism}, {args.runs} runs each")
    for k, s in stats.items():
        print(f"  {k:4s}: median {B.fmt_ms(s['p50'])} ms  (min {B.fmt_ms(s['min'])}, "
              f"max {B.fmt_ms(s['max'])})")
    if "job" in stats and "pods" in stats:
        print(f"  ratio job/pods (medians): {stats['job']['p50'] / stats['pods']['p50']:.2f}")
    if failures:
        print("failures:", *failures, sep="\n  ")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"info": info, "args": vars(args), "results": results, "stats": stats,
                       "failures": failures}, f, indent=2)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
