#!/usr/bin/env python3
"""Benchmark: skiff's Kubernetes API with the real kubectl (the kubectl issue's "Measure").

    python3 e2e/bench/api-kubectl.py [--runs 10] [--pods 500] [--watch-runs 50] [--json OUT.json]

Run as root. Starts a fresh `skiff server` (release build: $SKIFF_BIN, else
$CARGO_TARGET_DIR/release/skiff) with its API on a free 127.0.0.1 port, and measures, in order:

1. daemon memory idle (VmRSS and Pss of the daemon, after a 3 s settle);
2. `kubectl apply -f DIR` of a folder of 100 objects (50 ConfigMaps + 50 Secrets, one file
   each): `--runs` creations, each into a fresh namespace (`-n bench-N`); then the same folder
   applied again unchanged (no-op, 100 GET + compare), then `apply --server-side` of it
   (100 PATCHes). One warm-up run first (discovery and OpenAPI fill kubectl's cache); every
   kubectl call has the same `--cache-dir`, warm after it. Wall time of the kubectl process.
3. `--pods` Pods stored (image `nosuch:1`, `imagePullPolicy: Never`: they stay Pending with
   ErrImageNeverPull and start no container), created with one `kubectl apply -f -` of a
   multi-document stream; then `kubectl get pods -A` (`--runs` times, table output, which is a
   server-side Table) and `-o json`, and the raw list (`GET /api/v1/pods`, JSON and Table)
   over one kept-alive HTTPS connection from Python, to split kubectl's own time from the
   server's.
4. daemon memory with those pods stored (after a 6 s settle, past a controller resync).
   The memory is also taken after the warm-up (`mem_warm`): the growth from there is the
   objects' own, without the daemon's one-time OpenAPI documents and discovery. Every memory
   point after writes waits 6 s first: past one look of the daemon's trimmer (every 5 s,
   `agent/src/runtime/trim.rs`), so it reads the memory the daemon keeps, not what a burst of
   writes left freed in the allocator a moment before.
   With `--heap`, each memory point also records glibc's live heap (`malloc_stats()` called
   in the daemon through gdb): exact, where RSS moves with what the allocator keeps.
5. watch latency: a raw watch (`GET …/configmaps?watch=true&fieldSelector=metadata.name=lat`,
   HTTP/1.1, chunked) and `kubectl get cm lat -w --output-watch-events` both open; then
   `--watch-runs` times a merge PATCH of the ConfigMap (admin token, its own kept-alive HTTPS
   connection). Latency = from just before the PATCH request is written to the moment the
   event line carrying the new value is read by the raw client / read from kubectl's stdout
   pipe. 50 ms pause between writes.

Times are time.perf_counter_ns(). Prints a Markdown summary; `--json` writes every raw number.
Cleans up on exit (skiff killall, temp dirs).
"""

import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402

KUBECTL = os.environ.get("KUBECTL", "/usr/bin/kubectl")


def now():
    return time.perf_counter_ns()


class ApiSkiff(B.Skiff):
    """benchlib's Skiff, started with its API client's token and CA at hand."""

    def start(self):
        super().start()
        self.wait_api()


Api = B.Api


class Kubectl:
    def __init__(self, sk, cache_dir):
        self.base = [KUBECTL, "--kubeconfig", sk.kubeconfig, "--cache-dir", cache_dir]

    def run(self, *args, stdin=None, check=True):
        t0 = now()
        r = subprocess.run(self.base + list(args), input=stdin, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=300)
        took = now() - t0
        if check and r.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed ({r.returncode}): "
                               f"{r.stderr.strip()[:2000]}")
        return took, r


HEAP = False  # --heap
# Seconds a memory point waits after writes: past one look of the daemon's trimmer (every 5 s)
# and a controller resync.
SETTLE_S = 6


def heap_kb(sk):
    """glibc's own count of the daemon's heap: `malloc_stats()` called in the daemon through
    gdb (it prints to the daemon's stderr, the server log). "in use" is the live heap, exactly;
    "system" what the allocator holds from the kernel. RSS adds the binary's pages, thread
    stacks and what the allocator keeps freed, which moves with timing and threads."""
    import re
    before = os.path.getsize(sk.log_path)
    subprocess.run(["gdb", "-p", str(sk.proc.pid), "-batch", "-ex", "call (void)malloc_stats()"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    time.sleep(0.3)
    with open(sk.log_path, "rb") as f:
        f.seek(before)
        text = f.read().decode(errors="replace")
    m = re.search(r"Total \(incl\. mmap\):\s*system bytes\s*=\s*(\d+)\s*in use bytes\s*=\s*(\d+)",
                  text)
    if not m:
        return {}
    return {"heap_system_kb": int(m.group(1)) // 1024, "heap_in_use_kb": int(m.group(2)) // 1024}


def mem(sk):
    m = {"rss_kb": B.rss_kb(sk.proc.pid), "pss_kb": B.pss_kb(sk.proc.pid)}
    if HEAP:
        m.update(heap_kb(sk))
    return m


def write_folder(d, n_cm=50, n_secret=50):
    os.makedirs(d, exist_ok=True)
    for i in range(n_cm):
        with open(os.path.join(d, f"cm-{i:03}.yaml"), "w") as f:
            f.write(f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i:03}\n"
                    f"  labels:\n    bench: apply\ndata:\n  key: value-{i}\n"
                    f"  other: \"{'x' * 200}\"\n")
    for i in range(n_secret):
        with open(os.path.join(d, f"secret-{i:03}.yaml"), "w") as f:
            f.write(f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: secret-{i:03}\n"
                    f"  labels:\n    bench: apply\ntype: Opaque\nstringData:\n"
                    f"  password: secret-{i}\n")


def pods_list(n):
    items = [{
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"stored-{i:04}", "labels": {"bench": "stored"}},
        "spec": {"containers": [{"name": "main", "image": "nosuch:1",
                                 "imagePullPolicy": "Never"}]},
    } for i in range(n)]
    # A multi-document stream, not a `kind: List`: kubectl validates a List against
    # /openapi/v2, which skiff does not serve (404 → "error validating data").
    return "".join("---\n" + json.dumps(i) + "\n" for i in items)


def s_ms(values_ns):
    return B.summary([v / 1e6 for v in values_ns])


def row(name, s):
    if s is None:
        return f"| {name} | — | — | — | — | — |"
    return (f"| {name} | {s['n']} | **{s['p50']:.1f}** | {s['p90']:.1f} | {s['min']:.1f} | "
            f"{s['max']:.1f} |")


class LineReader(threading.Thread):
    """Reads lines from a file object, timestamping each as it is read."""

    def __init__(self, f, match):
        super().__init__(daemon=True)
        self.f, self.match = f, match
        self.lock = threading.Condition()
        self.seen = {}  # token -> ns

    def run(self):
        while True:
            line = self.f.readline()
            if not line:
                return
            t = now()
            if isinstance(line, bytes):
                line = line.decode(errors="replace")
            tok = self.match(line)
            if tok is not None:
                with self.lock:
                    self.seen.setdefault(tok, t)
                    self.lock.notify_all()

    def wait(self, tok, timeout_s=10):
        deadline = time.time() + timeout_s
        with self.lock:
            while tok not in self.seen:
                left = deadline - time.time()
                if left <= 0:
                    return None
                self.lock.wait(left)
            return self.seen[tok]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--pods", type=int, default=500)
    ap.add_argument("--watch-runs", type=int, default=50)
    ap.add_argument("--json")
    ap.add_argument("--heap", action="store_true",
                    help="also glibc's live heap at each memory point (malloc_stats through gdb)")
    args = ap.parse_args()
    global HEAP
    HEAP = args.heap
    if os.geteuid() != 0:
        sys.exit("run as root")
    if not os.path.isfile(KUBECTL):
        sys.exit(f"kubectl not found at {KUBECTL} (set KUBECTL)")

    B.skiff_bin()  # fails early, before making anything, when the binary is missing
    tmp = tempfile.mkdtemp(prefix="skiff-bench-api-")
    sk = ApiSkiff(os.path.join(tmp, "skiff"))
    raw = {"binary": sk.bin}
    kubectl_w = None
    try:
        sk.start()
        api = Api(sk)
        k = Kubectl(sk, os.path.join(tmp, "kube-cache"))
        B.log(f"skiff {sk.bin}, API on 127.0.0.1:{sk.api_port}")

        # 1. idle
        time.sleep(3)
        raw["mem_idle"] = mem(sk)
        B.log(f"idle: {raw['mem_idle']}")

        # 2. apply a folder of 100 objects
        folder = os.path.join(tmp, "objects")
        write_folder(folder)
        ns_yaml = "".join(f"---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: bench-{i}\n"
                          for i in range(args.runs + 1))
        k.run("apply", "-f", "-", stdin=ns_yaml)
        creates = []
        for i in range(args.runs + 1):
            took, r = k.run("apply", "-f", folder, "-n", f"bench-{i}")
            assert r.stdout.count(" created") == 100, r.stdout[:500]
            if i > 0:  # run 0 is the warm-up
                creates.append(took)
            else:
                # After the warm-up: kubectl's first apply made the daemon build its OpenAPI
                # documents and discovery (one-time costs, not the objects').
                time.sleep(SETTLE_S)
                raw["mem_warm"] = mem(sk)
        noops, ssas = [], []
        for i in range(1, args.runs + 1):
            took, r = k.run("apply", "-f", folder, "-n", f"bench-{i}")
            # Secrets with stringData come back "configured" (the live object has only data;
            # a real API server does the same).
            assert r.stdout.count(" unchanged") + r.stdout.count(" configured") == 100, \
                r.stdout[:500]
            raw["apply_noop_unchanged"] = r.stdout.count(" unchanged")
            noops.append(took)
        for i in range(1, args.runs + 1):
            took, r = k.run("apply", "--server-side", "-f", folder, "-n", f"bench-{i}")
            assert r.stdout.count("serverside-applied") == 100, r.stdout[:500]
            ssas.append(took)
        raw["apply_create_ns"], raw["apply_noop_ns"], raw["apply_ssa_ns"] = creates, noops, ssas
        time.sleep(SETTLE_S)
        raw["mem_after_apply"] = mem(sk)
        B.log(f"apply: create p50 {s_ms(creates)['p50']:.0f} ms")

        # 3. pods stored, get pods -A
        took, r = k.run("apply", "-f", "-", stdin=pods_list(args.pods))
        raw["create_pods_ns"] = took
        B.log(f"{args.pods} pods applied in {took / 1e6:.0f} ms")
        deadline = time.time() + 60
        while time.time() < deadline:
            st, body = api.request("GET", "/api/v1/pods?labelSelector=bench%3Dstored")
            items = json.loads(body)["items"]
            if len(items) == args.pods and all(
                    p.get("status", {}).get("containerStatuses") for p in items):
                break
            time.sleep(0.5)
        gets, gets_json, raw_list, raw_table, floor = [], [], [], [], []
        k.run("get", "pods", "-A")  # warm-up
        for _ in range(args.runs):
            took, r = k.run("get", "ns")  # a kubectl process's own floor (2 objects)
            floor.append(took)
            took, r = k.run("get", "pods", "-A")
            assert len(r.stdout.splitlines()) >= args.pods + 1
            gets.append(took)
            took, r = k.run("get", "pods", "-A", "-o", "json")
            gets_json.append(took)
            t0 = now()
            st, body = api.request("GET", "/api/v1/pods?limit=500")
            raw_list.append(now() - t0)
            assert st == 200
            raw["list_json_bytes"] = len(body)
            t0 = now()
            st, body = api.request(
                "GET", "/api/v1/pods?limit=500",
                accept="application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
            raw_table.append(now() - t0)
            raw["list_table_bytes"] = len(body)
        raw["get_pods_A_ns"], raw["get_pods_A_json_ns"] = gets, gets_json
        raw["get_ns_floor_ns"] = floor
        raw["raw_list_json_ns"], raw["raw_list_table_ns"] = raw_list, raw_table
        B.log(f"get pods -A: p50 {s_ms(gets)['p50']:.0f} ms")

        # 4. memory with the pods
        time.sleep(SETTLE_S)
        raw["mem_pods"] = mem(sk)
        B.log(f"with {args.pods} pods: {raw['mem_pods']}")

        # 5. watch latency
        st, _ = api.request("POST", "/api/v1/namespaces/default/configmaps",
                            body=json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                                             "metadata": {"name": "lat"},
                                             "data": {"n": "start"}}),
                            ctype="application/json")
        assert st == 201, st
        watch_conn = http.client.HTTPSConnection("127.0.0.1", sk.api_port, context=api.ctx,
                                                 timeout=120)
        watch_conn.request("GET", "/api/v1/namespaces/default/configmaps?watch=true&"
                                  "fieldSelector=metadata.name%3Dlat",
                           headers={"Authorization": f"Bearer {sk.token}"})
        wresp = watch_conn.getresponse()
        assert wresp.status == 200, wresp.status

        def raw_match(line):
            try:
                ev = json.loads(line)
            except ValueError:
                return None
            return ev.get("object", {}).get("data", {}).get("n")

        raw_reader = LineReader(wresp, raw_match)
        raw_reader.start()
        kubectl_w = subprocess.Popen(k.base + ["get", "cm", "lat", "-w", "--output-watch-events",
                                               "-o", "jsonpath={.type} {.object.data.n}{\"\\n\"}"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

        def k_match(line):
            parts = line.split()
            return parts[1] if len(parts) == 2 and parts[0] == "MODIFIED" else None

        k_reader = LineReader(kubectl_w.stdout, k_match)
        k_reader.start()
        raw_reader.wait("start", 10)
        time.sleep(2)  # kubectl: discovery, list, watch open
        writer = Api(sk)
        # One unmeasured write, to be sure both streams are open.
        writer.request("PATCH", "/api/v1/namespaces/default/configmaps/lat",
                       body=json.dumps({"data": {"n": "warm"}}),
                       ctype="application/merge-patch+json")
        assert raw_reader.wait("warm", 10) and k_reader.wait("warm", 15), "watch streams idle"
        lat_raw, lat_k, write_ns = [], [], []
        for i in range(args.watch_runs):
            tok = f"v{i}"
            t0 = now()
            st, _ = writer.request("PATCH", "/api/v1/namespaces/default/configmaps/lat",
                                   body=json.dumps({"data": {"n": tok}}),
                                   ctype="application/merge-patch+json")
            t1 = now()
            assert st == 200, st
            tr = raw_reader.wait(tok, 10)
            tk = k_reader.wait(tok, 10)
            write_ns.append(t1 - t0)
            if tr:
                lat_raw.append(tr - t0)
            if tk:
                lat_k.append(tk - t0)
            time.sleep(0.05)
        raw["watch_raw_ns"], raw["watch_kubectl_ns"], raw["patch_ns"] = lat_raw, lat_k, write_ns
        raw["mem_end"] = mem(sk)
        if HEAP:
            # How much of the RSS is memory the allocator keeps freed: glibc's malloc_trim(0)
            # returns every free page of every arena, then RSS again.
            subprocess.run(["gdb", "-p", str(sk.proc.pid), "-batch", "-ex", "call (int)malloc_trim(0)"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
            raw["mem_end_trimmed"] = mem(sk)
            B.log(f"after malloc_trim(0): {raw['mem_end_trimmed']}")

        # Report
        p = lambda kb: f"{kb / 1024:.1f} MiB"  # noqa: E731
        print("\n## Results\n")
        print(f"skiff binary: `{sk.bin}`\n")
        print("| memory (daemon) | VmRSS | Pss | heap in use |\n|---|---|---|---|")
        for label, key in (("idle", "mem_idle"),
                           (f"after 100 objects × {args.runs + 1} namespaces", "mem_after_apply"),
                           (f"with {args.pods} pods stored (+ the above)", "mem_pods"),
                           ("end (after the watch runs)", "mem_end"),
                           ("end, after glibc's malloc_trim(0) (`--heap`)", "mem_end_trimmed")):
            if key not in raw:
                continue
            heap = raw[key].get("heap_in_use_kb")
            print(f"| {label} | {p(raw[key]['rss_kb'])} | {p(raw[key]['pss_kb'])} | "
                  f"{p(heap) if heap is not None else '—'} |")
        objs = (args.runs + 1) * 100
        for what, k in (("RSS", "rss_kb"), ("heap in use", "heap_in_use_kb")):
            a, w, b = (raw[m].get(k) for m in ("mem_idle", "mem_warm", "mem_after_apply"))
            if a is not None and b is not None:
                print(f"\nper stored object ({what} growth from idle / {objs}): {(b - a) / objs:.1f} KB; "
                      f"from after the warm-up / {objs - 100}: {(b - w) / (objs - 100):.1f} KB")
        print("\n| operation (ms) | n | p50 | p90 | min | max |\n|---|---|---|---|---|---|")
        print(row("`kubectl apply -f` 100 objects, create", s_ms(creates)))
        print(row("`kubectl apply -f` 100 objects, unchanged", s_ms(noops)))
        print(row("`kubectl apply --server-side -f` 100 objects", s_ms(ssas)))
        print(row("`kubectl get ns` (2 objects: kubectl's own floor)", s_ms(floor)))
        print(row(f"`kubectl get pods -A` ({args.pods} pods)", s_ms(gets)))
        print(row(f"`kubectl get pods -A -o json` ({args.pods} pods)", s_ms(gets_json)))
        print(row(f"raw `GET /api/v1/pods` JSON ({raw['list_json_bytes']} B)", s_ms(raw_list)))
        print(row(f"raw `GET /api/v1/pods` Table ({raw['list_table_bytes']} B)", s_ms(raw_table)))
        print(row("PATCH round trip (merge patch of a ConfigMap)", s_ms(write_ns)))
        print(row("write → event on a raw watch stream", s_ms(lat_raw)))
        print(row("write → event line on `kubectl get cm -w` stdout", s_ms(lat_k)))
        print(f"\n{args.pods} pods applied (one multi-document `kubectl apply -f -`) in {raw['create_pods_ns'] / 1e6:.0f} ms")
        if args.json:
            with open(args.json, "w") as f:
                json.dump(raw, f, indent=1)
    finally:
        if kubectl_w is not None:
            kubectl_w.kill()
            kubectl_w.wait()
        sk.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
