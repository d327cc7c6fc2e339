#!/usr/bin/env python3
"""Benchmark: container create → first line of output, skiff vs `runc run`, same rootfs.

    python3 e2e/bench/create-to-running.py [--runs 20] [--json OUT.json]

Run as root. The container runs `sh -c 'echo ready; exec sleep 600'` from the busybox test
image (e2e/images/build-busybox-image.sh) in both cases. "First output" is the moment the
process holding the read end of the container's stdout got the line `ready`:

- runc: bundle = overlayfs over the very layer directory skiff unpacked the image into
  (<data>/store/layers/…), mounted before timing (skiff also mounts its overlayfs before it
  spawns the shim); config.json from `runc spec` (terminal false, new pid/net/ipc/uts/mount
  namespaces, cgroupsPath /skiff-bench-runc/<id>). t0 = just before `runc run --bundle B ID`
  (foreground, stdio passed through) is spawned; t1 = when this script read `ready` from the
  pipe that is runc's — hence the container's — stdout.
- skiff: a Pod manifest (no hostNetwork: the daemon creates the pod's net/uts/ipc namespaces,
  the container gets its own pid and mount namespaces) is renamed into the manifests folder
  (t0). The shim reads the container's stdout through a pipe and writes CRI log lines with a
  nanosecond timestamp taken when it read the data: t1 = the timestamp of the first line of
  <data>/pods/default_bench_<uid>/web/0.log. Steps in between are timestamped from inotify
  events on the data directory (benchlib.ContainerWatch; file mtimes here come from a 4 ms
  coarse clock and cannot separate them):
    manifest renamed (t0)
    → pod dir created    = the agent starts the pod (after the 150 ms folder debounce, apply,
                           controllers)
    → shim.log created   = the daemon is about to spawn `skiff shim` (sandbox namespaces,
                           overlayfs, config.json, meta.json done)             [daemon part]
    → shim.pid created   = the shim process runs (fork+exec of the skiff binary)
    → .state.json.tmp    = libcontainer build()+start() returned
    → first log line     = the shim read `ready` (it polls the pipe only after state.json is
                           durable: fsync of the file and of the directory).
  "skiff: shim spawned → `ready`" is the number comparable with runc's.
  The libcontainer `started_at` in state.json has one-second precision, so it is not used.

Interleaved (order alternates), one discarded warm-up each, 20 runs each by default.
Cleans up on exit (runc containers, mounts, cgroups; skiff killall; temp dirs).
"""

import argparse
import calendar
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
COMMAND = ["sh", "-c", "echo ready; exec sleep 600"]
RUNC_CGROUP_PARENT = "skiff-bench-runc"


def parse_rfc3339_ns(ts):
    """'2025-01-02T03:04:05.123456789Z' → ns since the epoch (UTC only, as skiff writes)."""
    assert ts.endswith("Z"), ts
    main, _, frac = ts[:-1].partition(".")
    secs = calendar.timegm(time.strptime(main, "%Y-%m-%dT%H:%M:%S"))
    frac = (frac + "000000000")[:9]
    return secs * 10**9 + int(frac)


# ------------------------------------------------------------------------------------------
# skiff

def run_skiff(sk, watch, i, failures):
    text = B.pod_manifest("bench", 0, command=COMMAND, host_network=False)
    res = {"engine": "skiff", "run": i}
    watch.reset()
    t0 = sk.apply("bench.yaml", text)
    deadline = t0 + RUN_TIMEOUT_S * 10**9
    first = None
    while B.now_ns() < deadline:
        watch.wait(0.001)
        if "state_json" not in watch.times:
            continue  # the shim reads the container's stdout only after state.json
        logs = glob.glob(os.path.join(sk.data, "pods", "default_bench_*", "web", "0.log"))
        if logs:
            with open(logs[0]) as f:
                line = f.readline()
            if line.endswith("\n"):
                first = line
                break
    if first is None:
        res["error"] = f"no log line within {RUN_TIMEOUT_S} s"
        res["pods"] = sk.get_pods()
        res["log_tail"] = sk.log_tail()
        failures.append(res)
    else:
        ts, _stream, _flag, text = first.rstrip("\n").split(" ", 3)
        if text != "ready":
            res["unexpected_first_line"] = first
        t1 = parse_rfc3339_ns(ts)
        res["full_ms"] = B.ms(t1 - t0)
        w = watch.times
        res["steps"] = {k: B.ms(w[k] - t0) for k in watch.ORDER if k in w}
        if "shim_spawn" in w:
            res["daemon_ms"] = B.ms(w["shim_spawn"] - t0)          # rename → shim spawn
            res["shim_ms"] = B.ms(t1 - w["shim_spawn"])            # shim spawn → first output
        if "shim_spawn" in w and "shim_running" in w:
            res["shim_exec_ms"] = B.ms(w["shim_running"] - w["shim_spawn"])
        if "shim_running" in w and "state_tmp" in w:
            res["libcontainer_ms"] = B.ms(w["state_tmp"] - w["shim_running"])
        if "state_tmp" in w:
            res["after_start_ms"] = B.ms(t1 - w["state_tmp"])     # start() → `ready` read
        if "pod_dir" in w:
            res["to_pod_dir_ms"] = B.ms(w["pod_dir"] - t0)
    sk.delete("bench.yaml")
    if not sk.wait_no_pods(B.now_ns() + RUN_TIMEOUT_S * 10**9):
        res["delete_error"] = "pod still present after 30 s"
        res["log_tail"] = sk.log_tail()
        failures.append(res)
    return res


# ------------------------------------------------------------------------------------------
# runc

class Runc:
    def __init__(self, work, layer_dirs):
        self.work = work
        self.layers = layer_dirs  # bottom → top
        self.root = os.path.join(work, "runc-root")  # runc's state, private to this run
        self.spec_dir = os.path.join(work, "runc-spec")
        os.makedirs(self.spec_dir)
        B.run(["runc", "spec"], cwd=self.spec_dir)
        with open(os.path.join(self.spec_dir, "config.json")) as f:
            spec = json.load(f)
        spec["process"]["terminal"] = False
        spec["process"]["args"] = COMMAND
        spec["process"]["env"] = ["PATH=/bin", "GREETING=image"]
        spec["process"]["cwd"] = "/www"
        spec["root"] = {"path": "rootfs", "readonly": False}
        spec["hostname"] = "bench"
        self.spec = spec
        self.live = set()  # (id, bundle) not yet cleaned

    def version(self):
        return B.run(["runc", "--version"], check=False, quiet=True).stdout.splitlines()[0]

    def run_once(self, i, failures):
        cid = f"skiff-bench-runc-{i}"
        bundle = os.path.join(self.work, f"runc-{i}")
        rootfs = os.path.join(bundle, "rootfs")
        for d in (rootfs, os.path.join(bundle, "upper"), os.path.join(bundle, "work")):
            os.makedirs(d)
        lower = ":".join(reversed(self.layers))  # overlayfs: leftmost is the top
        B.run(["mount", "-t", "overlay", "overlay", "-o",
               f"lowerdir={lower},upperdir={bundle}/upper,workdir={bundle}/work", rootfs])
        spec = dict(self.spec)
        spec["linux"] = dict(spec["linux"], cgroupsPath=f"/{RUNC_CGROUP_PARENT}/{cid}")
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(spec, f)
        self.live.add((cid, bundle))
        res = {"engine": "runc", "run": i}
        t0 = B.now_ns()
        proc = subprocess.Popen(["runc", "--root", self.root, "run", "--bundle", bundle, cid],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        line = proc.stdout.readline()  # blocks until `ready` (or EOF if runc failed)
        t1 = B.now_ns()
        if line.strip() == b"ready":
            res["full_ms"] = B.ms(t1 - t0)
        else:
            res["error"] = f"runc printed {line!r}: {proc.stderr.read(2000)!r}"
            failures.append(res)
        B.run(["runc", "--root", self.root, "kill", cid, "KILL"], check=False, quiet=True)
        try:
            proc.wait(timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self.cleanup_one(cid, bundle)
        return res

    def cleanup_one(self, cid, bundle):
        B.run(["runc", "--root", self.root, "delete", "-f", cid], check=False, quiet=True)
        subprocess.run(["umount", os.path.join(bundle, "rootfs")], stderr=subprocess.DEVNULL)
        shutil.rmtree(bundle, ignore_errors=True)
        self.live.discard((cid, bundle))

    def close(self):
        for cid, bundle in list(self.live):
            self.cleanup_one(cid, bundle)
        for d in glob.glob(f"/sys/fs/cgroup/*/{RUNC_CGROUP_PARENT}"):
            try:
                os.rmdir(d)
            except OSError as e:
                B.log(f"cgroup {d} not removed: {e}")


def image_layers(sk):
    """The unpacked layer directories of the test image in skiff's store, bottom → top."""
    imgs = glob.glob(os.path.join(sk.data, "store", "images", "*.json"))
    layers_root = os.path.join(sk.data, "store", "layers")
    for p in imgs:
        with open(p) as f:
            img = json.load(f)
        diff_ids = (img.get("rootfs") or {}).get("diff_ids") or \
            ((img.get("config") or {}).get("rootfs") or {}).get("diff_ids") or img.get("diff_ids")
        if diff_ids:
            dirs = []
            for d in diff_ids:
                cands = [os.path.join(layers_root, d), os.path.join(layers_root, d.replace(":", "/")),
                         os.path.join(layers_root, d.split(":", 1)[-1])]
                dirs.append(next((c for c in cands if os.path.isdir(c)), None))
            if all(dirs):
                return dirs
    entries = [os.path.join(layers_root, e) for e in os.listdir(layers_root)]
    if len(entries) == 1:  # the test image has exactly one layer
        return entries
    raise RuntimeError(f"cannot find the image's layer directories under {layers_root}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--json", help="write all results to this file")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root")
    if shutil.which("runc") is None:
        sys.exit("runc not found: apt-get install -y runc")
    B.install_signal_handlers()

    work = B.make_workdir("skiff-bench-c2r.")
    sk = None
    rc = None
    results, failures = [], []
    info = B.machine_info()
    try:
        archive = B.build_image(work)
        sk = B.Skiff(os.path.join(work, "skiff"))
        sk.import_image(archive)
        watch = B.ContainerWatch(sk.data)
        sk.start()
        layers = image_layers(sk)
        info["layers"] = layers
        rc = Runc(work, layers)
        info["runc"] = rc.version()

        def one(engine, i):
            return run_skiff(sk, watch, i, failures) if engine == "skiff" else rc.run_once(i, failures)

        engines = ["skiff", "runc"]
        for e in engines:
            r = one(e, 0)
            B.log(f"warm-up {e} (discarded): {B.fmt_ms(r.get('full_ms'))} ms")
        for i in range(1, args.runs + 1):
            for e in (engines if i % 2 else list(reversed(engines))):
                r = one(e, i)
                results.append(r)
                B.log(f"run {i:2d} {e:5s}: " + " ".join(
                    f"{k}={v:.1f}" for k, v in r.items() if k.endswith("_ms")))
                if r.get("steps"):
                    B.log("              steps " + " ".join(f"{k}={v:.1f}" for k, v in r["steps"].items()))
            if len(failures) >= 3:
                B.log("three failures: stopping early")
                break
        info["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    finally:
        if rc is not None:
            rc.close()
        if sk is not None:
            sk.stop()
        shutil.rmtree(work, ignore_errors=True)

    keys = [("runc", "full_ms", "runc: `runc run` spawned → `ready` read from its stdout"),
            ("skiff", "shim_ms", "skiff: shim spawned → `ready` read by the shim"),
            ("skiff", "shim_exec_ms", "  of which: shim spawned → shim running (shim.pid)"),
            ("skiff", "libcontainer_ms", "  of which: shim running → libcontainer build()+start() returned"),
            ("skiff", "after_start_ms", "  of which: start() returned → `ready` read (state.json fsync, poll)"),
            ("skiff", "daemon_ms", "skiff: manifest renamed → shim spawned (daemon part)"),
            ("skiff", "to_pod_dir_ms", "  of which: manifest renamed → pod dir created (debounce, apply, agent)"),
            ("skiff", "full_ms", "skiff: manifest renamed → `ready` read (whole path)")]
    stats = {}
    print()
    print(f"machine: {info}")
    print()
    print("| create → first output line | runs | p50 (ms) | p90 (ms) | min | max |")
    print("|---|---|---|---|---|---|")
    for eng, k, label in keys:
        s = B.summary([r[k] for r in results if r["engine"] == eng and k in r])
        stats[f"{eng}.{k}"] = s
        if s:
            print(f"| {label} | {s['n']} | {s['p50']:.1f} | {s['p90']:.1f} | {s['min']:.1f} | {s['max']:.1f} |")
    a, b = stats.get("skiff.shim_ms"), stats.get("runc.full_ms")
    if a and b:
        print(f"\nratio skiff shim / runc: p50 {a['p50'] / b['p50']:.2f}×, p90 {a['p90'] / b['p90']:.2f}×")
    a = stats.get("skiff.full_ms")
    if a and b:
        print(f"ratio skiff whole path / runc: p50 {a['p50'] / b['p50']:.2f}×")
    B.print_failures(failures)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"info": info, "results": results, "stats": stats, "failures": failures},
                      f, indent=1)


if __name__ == "__main__":
    main()
