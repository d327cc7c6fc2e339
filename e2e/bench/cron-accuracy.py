#!/usr/bin/env python3
"""Benchmark: how late a CronJob's command runs, against busybox crond in the same run.

    python3 e2e/bench/cron-accuracy.py [--minutes 60] [--cronjobs 3] [--json OUT]

Run as root. One skiff server (its own bridge and ranges) runs `--cronjobs` CronJobs with
schedule `* * * * *`; each Job's container (the busybox test image) touches a file named
after its pod in a hostPath folder. Beside it, busybox's crond (`crond -f -c DIR`, its own
crontab folder: nothing of the host's cron is read) runs `* * * * *` a script touching a
file in another folder. Both run for `--minutes`; the machine is left as it is (loaded or
not — say which in the record; `loadavg` is sampled every minute).

Lateness of one run = the file's mtime (nanoseconds) − the minute it was scheduled for
(the mtime rounded down to the minute: every run is expected well within its minute).
For skiff this is the whole path a user waits on: the controller's pass, the Job, the pod,
the container start. Reported: p50, p99 (nearest rank), max, and the ratio skiff/crond of
the medians; runs missing from either side are failures.
"""

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402


def cronjobs_yaml(n, out):
    docs = []
    for i in range(n):
        docs.append(f"""apiVersion: batch/v1
kind: CronJob
metadata:
  name: tick-{i}
spec:
  schedule: "* * * * *"
  successfulJobsHistoryLimit: 1
  failedJobsHistoryLimit: 1
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          terminationGracePeriodSeconds: 1
          containers:
          - name: tick
            image: {B.IMAGE_REF}
            imagePullPolicy: Never
            command: [sh, -c, 'touch /out/$HOSTNAME']
            volumeMounts:
            - {{name: out, mountPath: /out}}
          volumes:
          - {{name: out, hostPath: {{path: {out}, type: Directory}}}}
""")
    return "---\n".join(docs)


def percentile(values, q):
    v = sorted(values)
    return v[max(0, math.ceil(q * len(v)) - 1)]


def lateness_ms(folder):
    """Lateness of each file in `folder`: its mtime minus the start of its minute."""
    out = []
    for name in os.listdir(folder):
        ns = os.stat(os.path.join(folder, name)).st_mtime_ns
        out.append((ns % (60 * 10**9)) / 1e6)
    return sorted(out)


def stats(values):
    if not values:
        return None
    return {"n": len(values), "p50": percentile(values, 0.5), "p99": percentile(values, 0.99),
            "max": max(values), "min": min(values)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=int, default=60)
    ap.add_argument("--cronjobs", type=int, default=3)
    ap.add_argument("--json", help="write all results to this file")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root")
    if shutil.which("busybox") is None:
        sys.exit("busybox not found: apt-get install -y busybox-static")
    B.install_signal_handlers()
    work = B.make_workdir("skiff-bench-cron.")
    sk = None
    crond = None
    info = B.machine_info()
    loads = []
    failures = []
    skiff_out = os.path.join(work, "skiff-runs")
    peer_out = os.path.join(work, "crond-runs")
    try:
        for d in (skiff_out, peer_out, os.path.join(work, "crontabs")):
            os.makedirs(d)
        archive = B.build_image(work)
        sk = B.Skiff(os.path.join(work, "skiff"), net_index=7)
        sk.import_image(archive)
        sk.start()
        info["skiff"] = sk.bin
        script = os.path.join(work, "tick.sh")
        with open(script, "w") as f:
            f.write(f"#!/bin/sh\nexec busybox touch {peer_out}/run-$$\n")
        os.chmod(script, 0o755)
        with open(os.path.join(work, "crontabs", "root"), "w") as f:
            f.write(f"* * * * * {script}\n")
        crond = subprocess.Popen(["busybox", "crond", "-f", "-l", "9", "-c",
                                  os.path.join(work, "crontabs")],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        # Start just after a minute boundary so that both sides see the same minutes.
        time.sleep(60 - time.time() % 60 + 1)
        sk.apply("ticks.yaml", cronjobs_yaml(args.cronjobs, skiff_out))
        started = time.time()
        for m in range(args.minutes):
            time.sleep(max(0, started + 60 * (m + 1) - time.time()))
            loads.append(float(open("/proc/loadavg").read().split()[0]))
            B.log(f"minute {m + 1}/{args.minutes}: skiff {len(os.listdir(skiff_out))} runs, "
                  f"crond {len(os.listdir(peer_out))} runs, load {loads[-1]}")
        time.sleep(30)  # the last minute's runs
        sk.delete("ticks.yaml")
        info["loadavg_samples"] = loads
    finally:
        if crond is not None:
            crond.terminate()  # our own child, by pid
            crond.wait()
        if sk is not None:
            sk.stop()
    skiff_ms = lateness_ms(skiff_out)
    peer_ms = lateness_ms(peer_out)
    shutil.rmtree(work, ignore_errors=True)
    expected = args.minutes * args.cronjobs
    if len(skiff_ms) < expected:
        failures.append(f"skiff ran {len(skiff_ms)} of {expected} scheduled Jobs")
    if len(peer_ms) < args.minutes:
        failures.append(f"crond ran {len(peer_ms)} of {args.minutes} minutes")
    result = {"skiff": stats(skiff_ms), "crond": stats(peer_ms)}
    print(f"\n{args.minutes} minutes, {args.cronjobs} CronJobs every minute; "
          f"load average p50 {percentile(loads, 0.5) if loads else '—'}")
    for side, s in result.items():
        if s:
            print(f"  {side:5s}: n {s['n']}, lateness p50 {s['p50']:.0f} ms, "
                  f"p99 {s['p99']:.0f} ms, max {s['max']:.0f} ms")
    if result["skiff"] and result["crond"]:
        print(f"  ratio skiff/crond (p50): {result['skiff']['p50'] / result['crond']['p50']:.1f}")
    if failures:
        print("failures:", *failures, sep="\n  ")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"info": info, "args": vars(args), "skiff_ms": skiff_ms,
                       "crond_ms": peer_ms, "stats": result, "failures": failures}, f, indent=2)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
