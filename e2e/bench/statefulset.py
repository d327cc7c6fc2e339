#!/usr/bin/env python3
"""Benchmark: StatefulSets and claims (issue 11's "Measure").

    python3 e2e/bench/statefulset.py [--rounds 10] [--json OUT.json]

Run as root. Starts a fresh `skiff server` (release build: $SKIFF_BIN, else
$CARGO_TARGET_DIR/release/skiff) with the busybox test image (e2e/images/build-busybox-image.sh)
imported, and talks to its API over one kept-alive HTTPS connection (benchlib.Api). Each round
runs every case once, the order rotating from round to round; one warm-up round is discarded.

Workloads, 3 replicas of the same pod (busybox httpd on the pod network, no probe: a pod is
Ready when its container runs; terminationGracePeriodSeconds 0), cold (the object does not
exist; the image is imported):
  sts-ordered   StatefulSet, podManagementPolicy OrderedReady (pod i+1 created once i is Ready)
  sts-parallel  StatefulSet, podManagementPolicy Parallel
  deployment    Deployment (→ ReplicaSet → 3 pods)
t0 = just before the POST of the object; t1 = the first poll (every 20 ms, GET of the pods by
label) that sees 3 pods Ready. Also the first pod's Ready. Then the object is deleted
(propagationPolicy Background) and the round waits until its pods and containers are gone.

Claims, on the built-in `local-path` provisioner:
  claim-immediate  a PVC of a StorageClass with volumeBindingMode Immediate: POST → phase Bound
                   (the directory made under <data>/volumes).
  pod-claim        a PVC of the default class (WaitForFirstConsumer) and a Pod mounting it,
                   POSTed back to back: t0 before the PVC's POST → the Pod Running and Ready.
  pod-emptydir     the same Pod with an emptyDir instead (the same run's reference): the
                   difference to pod-claim is what the claim costs a pod's start.
Each is deleted (and its directory, reclaimPolicy Delete, gone) before the next.

Prints a Markdown summary (median, p90, min, max; ratios to the Deployment); `--json` writes
every raw number. Cleans up on exit (skiff killall, temp dirs).
"""

import argparse
import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402

NS = "default"
POLL_S = 0.02
TIMEOUT_S = 60
REPLICAS = 3
IMMEDIATE_CLASS = "bench-immediate"


def pod_template(app):
    return {
        "metadata": {"labels": {"app": app}},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "web", "image": B.IMAGE_REF, "imagePullPolicy": "Never"}],
        },
    }


def workload(case):
    app = case
    spec = {"replicas": REPLICAS, "selector": {"matchLabels": {"app": app}},
            "template": pod_template(app)}
    if case == "deployment":
        return "deployments", {"apiVersion": "apps/v1", "kind": "Deployment",
                               "metadata": {"name": app}, "spec": spec}
    spec["serviceName"] = "bench"
    spec["podManagementPolicy"] = "Parallel" if case == "sts-parallel" else "OrderedReady"
    return "statefulsets", {"apiVersion": "apps/v1", "kind": "StatefulSet",
                            "metadata": {"name": app}, "spec": spec}


class Cluster:
    def __init__(self, sk):
        self.sk = sk
        self.api = B.Api(sk)

    def call(self, method, path, body=None, ok=(200, 201, 202)):
        data = json.dumps(body).encode() if body is not None else None
        status, out = self.api.request(method, path, body=data,
                                       ctype="application/json" if data else None)
        if status not in ok:
            raise RuntimeError(f"{method} {path}: {status} {out[:500]!r}")
        return json.loads(out) if out else None

    def create(self, group_path, resource, obj):
        return self.call("POST", f"{group_path}/namespaces/{NS}/{resource}", obj)

    def delete(self, group_path, resource, name):
        self.call("DELETE", f"{group_path}/namespaces/{NS}/{resource}/{name}",
                  {"kind": "DeleteOptions", "apiVersion": "v1",
                   "propagationPolicy": "Background"}, ok=(200, 202, 404))

    def get(self, group_path, resource, name):
        status, out = self.api.request("GET", f"{group_path}/namespaces/{NS}/{resource}/{name}")
        return json.loads(out) if status == 200 else None

    def pods(self, app):
        return self.call("GET", f"/api/v1/namespaces/{NS}/pods?labelSelector=app%3D{app}")["items"]

    def wait_gone(self, group_path, resource, name, app=None):
        deadline = time.time() + TIMEOUT_S
        while time.time() < deadline:
            if self.get(group_path, resource, name) is None and (app is None or not self.pods(app)):
                return True
            time.sleep(0.05)
        return False


def ready(pod):
    if pod["metadata"].get("deletionTimestamp"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in pod.get("status", {}).get("conditions", []))


def run_workload(cl, case, failures):
    resource, obj = workload(case)
    res = {"case": case}
    t0 = B.now_ns()
    cl.create("/apis/apps/v1", resource, obj)
    deadline = t0 + TIMEOUT_S * 10**9
    while B.now_ns() < deadline:
        pods = cl.pods(case)
        n = sum(1 for p in pods if ready(p))
        t = B.now_ns()
        if n >= 1 and "first_ms" not in res:
            res["first_ms"] = B.ms(t - t0)
        if n == REPLICAS:
            res["ms"] = B.ms(t - t0)
            break
        time.sleep(POLL_S)
    else:
        res["error"] = f"not {REPLICAS} Ready within {TIMEOUT_S} s"
        res["log_tail"] = cl.sk.log_tail()
        failures.append(res)
    cl.delete("/apis/apps/v1", resource, case)
    if not (cl.wait_gone("/apis/apps/v1", resource, case, app=case)
            and cl.sk.wait_no_pods(B.now_ns() + TIMEOUT_S * 10**9)):
        res["delete_error"] = "pods left after the delete"
        failures.append(res)
    return res


def claim(name, cls=None):
    spec = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "64Mi"}}}
    if cls:
        spec["storageClassName"] = cls
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
            "spec": spec}


def claim_pod(name, volume):
    t = pod_template(name)
    t["spec"]["volumes"] = [dict(volume, name="data")]
    t["spec"]["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": dict(t["metadata"], name=name),
            "spec": t["spec"]}


def volumes_dir_empty(sk):
    d = os.path.join(sk.data, "volumes")
    return not os.path.isdir(d) or not os.listdir(d)


def wait_volumes_gone(sk):
    deadline = time.time() + TIMEOUT_S
    while time.time() < deadline:
        if volumes_dir_empty(sk):
            return True
        time.sleep(0.05)
    return False


def run_claim(cl, case, failures):
    res = {"case": case}
    deadline = lambda t0: t0 + TIMEOUT_S * 10**9  # noqa: E731
    if case == "claim-immediate":
        t0 = B.now_ns()
        cl.create("/api/v1", "persistentvolumeclaims", claim("bench-imm", IMMEDIATE_CLASS))
        while B.now_ns() < deadline(t0):
            c = cl.get("/api/v1", "persistentvolumeclaims", "bench-imm")
            if c and c.get("status", {}).get("phase") == "Bound":
                res["ms"] = B.ms(B.now_ns() - t0)
                break
            time.sleep(POLL_S)
        cl.delete("/api/v1", "persistentvolumeclaims", "bench-imm")
        ok = cl.wait_gone("/api/v1", "persistentvolumeclaims", "bench-imm")
    else:
        name = case
        t0 = B.now_ns()
        if case == "pod-claim":
            cl.create("/api/v1", "persistentvolumeclaims", claim(name))
            volume = {"persistentVolumeClaim": {"claimName": name}}
        else:
            volume = {"emptyDir": {}}
        cl.create("/api/v1", "pods", claim_pod(name, volume))
        while B.now_ns() < deadline(t0):
            p = cl.get("/api/v1", "pods", name)
            t = B.now_ns()
            if case == "pod-claim" and "bound_ms" not in res:
                c = cl.get("/api/v1", "persistentvolumeclaims", name)
                if c and c.get("status", {}).get("phase") == "Bound":
                    res["bound_ms"] = B.ms(B.now_ns() - t0)
            if p and p.get("status", {}).get("phase") == "Running" and ready(p):
                res["ms"] = B.ms(t - t0)
                break
            time.sleep(POLL_S)
        cl.delete("/api/v1", "pods", name)
        ok = cl.wait_gone("/api/v1", "pods", name)
        if case == "pod-claim":
            cl.delete("/api/v1", "persistentvolumeclaims", name)
            ok = ok and cl.wait_gone("/api/v1", "persistentvolumeclaims", name)
    if "ms" not in res:
        res["error"] = f"not done within {TIMEOUT_S} s"
        res["log_tail"] = cl.sk.log_tail()
        failures.append(res)
    if not (ok and wait_volumes_gone(cl.sk) and cl.sk.wait_no_pods(B.now_ns() + TIMEOUT_S * 10**9)):
        res["delete_error"] = "claim, volume directory or pod left after the delete"
        failures.append(res)
    return res


WORKLOADS = ["sts-ordered", "sts-parallel", "deployment"]
CLAIMS = ["claim-immediate", "pod-claim", "pod-emptydir"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--json", help="write all results to this file")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root")
    B.install_signal_handlers()
    work = B.make_workdir("skiff-bench-sts.")
    sk = None
    results, failures = [], []
    info = B.machine_info()
    try:
        archive = B.build_image(work)
        # Its own bridge and ranges, no ingress listeners: other servers may run beside it.
        sk = B.Skiff(os.path.join(work, "skiff"), net_index=7)
        sk.import_image(archive)
        sk.start()
        sk.wait_api()
        info["skiff"] = B.run([sk.bin, "--version"], check=False, quiet=True).stdout.strip()
        cl = Cluster(sk)
        cl.create("/api/v1", "services", {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "bench"},
            "spec": {"clusterIP": "None", "selector": {"bench": "none"},
                     "ports": [{"port": 8080}]}})
        cl.call("POST", "/apis/storage.k8s.io/v1/storageclasses", {
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": IMMEDIATE_CLASS}, "provisioner": "rancher.io/local-path",
            "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate"})
        cases = WORKLOADS + CLAIMS

        def one(case):
            return (run_workload if case in WORKLOADS else run_claim)(cl, case, failures)

        B.log("warm-up round (discarded)")
        for c in cases:
            r = one(c)
            B.log(f"  warm-up {c}: {B.fmt_ms(r.get('ms'))} ms")
        for i in range(1, args.rounds + 1):
            order = cases[i % len(cases):] + cases[:i % len(cases)]
            for c in order:
                r = one(c)
                r["round"] = i
                results.append(r)
                extra = "".join(f" {k}={B.fmt_ms(r[k])}" for k in ("first_ms", "bound_ms") if k in r)
                B.log(f"round {i:2d} {c:15s}: {B.fmt_ms(r.get('ms'))} ms{extra}")
            if len(failures) >= 3:
                B.log("three failures: stopping early")
                break
        info["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    finally:
        if sk is not None:
            sk.stop()
        shutil.rmtree(work, ignore_errors=True)
    report(results, failures, info, args)


def report(results, failures, info, args):
    def stats(case, key="ms"):
        return B.summary([r[key] for r in results if r["case"] == case and key in r])

    print()
    print(f"machine: {info}")
    print()
    print(f"| cold → {REPLICAS} pods Ready | rounds | p50 (ms) | p90 | min | max | first pod Ready p50 | p50 / Deployment |")
    print("|---|---|---|---|---|---|---|---|")
    base = stats("deployment")
    for c in WORKLOADS:
        s, f = stats(c), stats(c, "first_ms")
        if not s:
            print(f"| {c} | 0 | — | — | — | — | — | — |")
            continue
        ratio = f"{s['p50'] / base['p50']:.2f}×" if base else "—"
        print(f"| {c} | {s['n']} | {s['p50']:.0f} | {s['p90']:.0f} | {s['min']:.0f} | "
              f"{s['max']:.0f} | {B.fmt_ms(f and f['p50'])} | {ratio} |")
    # Per-round ratios (same round, same machine state), median of them.
    per_round = {}
    for r in results:
        if "ms" in r:
            per_round.setdefault(r["round"], {})[r["case"]] = r["ms"]
    for c in ("sts-ordered", "sts-parallel"):
        rs = [v[c] / v["deployment"] for v in per_round.values() if c in v and "deployment" in v]
        if rs:
            print(f"\n{c} / deployment, median of per-round ratios: "
                  f"{B.summary(rs)['p50']:.2f}× (min {min(rs):.2f}, max {max(rs):.2f})")
    print()
    print("| claim | rounds | p50 (ms) | p90 | min | max |")
    print("|---|---|---|---|---|---|")
    for c, key, label in (("claim-immediate", "ms", "Immediate: PVC created → Bound"),
                          ("pod-claim", "bound_ms", "WaitForFirstConsumer: PVC created → Bound (pod created with it)"),
                          ("pod-claim", "ms", "WaitForFirstConsumer: PVC + Pod created → Pod Running+Ready"),
                          ("pod-emptydir", "ms", "same Pod on an emptyDir → Running+Ready")):
        s = stats(c, key)
        if s:
            print(f"| {label} | {s['n']} | {s['p50']:.0f} | {s['p90']:.0f} | {s['min']:.0f} | {s['max']:.0f} |")
    B.print_failures(failures)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"info": info, "results": results, "failures": failures}, f, indent=1)


if __name__ == "__main__":
    main()
