#!/usr/bin/env python3
"""Pod networking benchmark (issue 5), stdlib only plus wrk.

1. Pod network setup time (network namespace, veth, address, routes), p50/p90 over 50 pods:
   read from the daemon's own `pod network ready took_us=…` debug lines (SKIFF_LOG=debug).
2. HTTP throughput through a Service's ClusterIP versus straight to the pod IP (wrk -t1 -c16
   -d5s pinned to CPU 1, interleaved rounds, medians), for two backends — busybox httpd (closes
   every connection: every request is a new connection through the NAT) and a keep-alive
   server (e2e/images/http-keepalive.rs) — and from two clients: the host, and wrk run inside
   a pod's network namespace (nsenter --net), the path pod-to-Service traffic takes.
3. DNS query latency p50/p90 of the cluster DNS for a Service name, measured from inside the
   pod's network namespace (nsenter into the pod's netns, a UDP query sent to the gateway).

Run as root: python3 e2e/bench/network.py [--json OUT.json] [--pods N] [--rounds R] [--duration S]
(uses target/release/skiff or $SKIFF_BIN)
Traffic goes only to 127.0.0.1 and to this server's own bridge addresses (checked with
`ip route get`).
"""
import json
import os
import random
import re
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

BRIDGE = "skbench0"
CLUSTER = "10.247.0.0/24"
SERVICE = "10.248.0.0/24"


def sh(cmd, check=True):
    return subprocess.run(cmd, shell=True, check=check, capture_output=True, text=True)


def kubectl(kc, cache, *args, stdin=None):
    return subprocess.run(["kubectl", "--kubeconfig", kc, "--cache-dir", cache, *args],
                          input=stdin, capture_output=True, text=True, check=True).stdout


def route_is_bridge(ip):
    out = sh(f"ip route get {ip}").stdout
    return f"dev {BRIDGE} " in out


def dns_query(name):
    qid = random.randint(0, 65535)
    header = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    q = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00" + struct.pack(">HH", 1, 1)
    return header + q


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def arg(name, default):
    return type(default)(sys.argv[sys.argv.index(name) + 1]) if name in sys.argv else default


DURATION = arg("--duration", 5)


def wrk(url, netns=None):
    enter = f"nsenter --net={netns} " if netns else ""
    out = sh(f"{enter}taskset -c 1 wrk -t1 -c16 -d{DURATION}s {url}").stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return float(m.group(1)) if m else 0.0


def main():
    json_out = arg("--json", "") or None
    pods_n, rounds = arg("--pods", 50), arg("--rounds", 3)
    res = {"info": benchlib.machine_info()}
    res["info"]["loadavg_start"] = open("/proc/loadavg").read().split()[:3]
    skiff = os.environ.get("SKIFF_BIN") or benchlib.skiff_bin()
    root = tempfile.mkdtemp(prefix="skiff-bench-net-")
    data, manifests, images = (os.path.join(root, d) for d in ("data", "manifests", "images"))
    for d in (data, manifests, images):
        os.makedirs(d)
    kc, cache = os.path.join(root, "kubeconfig"), os.path.join(root, "cache")
    archive = os.path.join(images, "bench.tar")
    keepalive = os.path.join(root, "http-keepalive")
    sh(f"rustc --edition 2021 -O -C target-feature=+crt-static -o {keepalive} "
       f"{benchlib.ROOT}/e2e/images/http-keepalive.rs")
    sh(f"bash {benchlib.ROOT}/e2e/images/build-busybox-image.sh {archive} skiff-bench:v1"
       f" --add {keepalive}:/bin/http-keepalive")
    api = benchlib.free_port()
    log = open(os.path.join(root, "server.log"), "w")
    env = dict(os.environ, SKIFF_LOG="info,skiff_agent::pod=debug")
    server = subprocess.Popen([skiff, "server", "--data-dir", data, "--manifests", manifests, "--images", images,
                               "--config", "/dev/null", "--api-port", str(api), "--bind-address", "127.0.0.1",
                               "--write-kubeconfig", kc, "--disable-default-registry-endpoint",
                               "--bridge", BRIDGE, "--cluster-cidr", CLUSTER, "--service-cidr", SERVICE,
                               "--http-port", "0", "--https-port", "0"],
                              stdout=log, stderr=log, env=env)
    try:
        for _ in range(100):
            if os.path.exists(kc):
                break
            time.sleep(0.1)
        app = """apiVersion: apps/v1
kind: Deployment
metadata: {name: many}
spec:
  replicas: PODS
  selector: {matchLabels: {app: many}}
  template:
    metadata: {labels: {app: many}}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - {name: c, image: "skiff-bench:v1", imagePullPolicy: Never, command: ["sleep", "3600"]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - {name: web, image: "skiff-bench:v1", imagePullPolicy: Never, command: ["httpd", "-f", "-p", "8080", "-h", "/www"]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ka}
spec:
  selector: {matchLabels: {app: ka}}
  template:
    metadata: {labels: {app: ka}}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - {name: ka, image: "skiff-bench:v1", imagePullPolicy: Never, command: ["/bin/http-keepalive", "8080"]}
---
apiVersion: v1
kind: Service
metadata: {name: ka}
spec:
  selector: {app: ka}
  ports: [{port: 80, targetPort: 8080}]
""".replace("PODS", str(pods_n))
        kubectl(kc, cache, "apply", "-f", "-", stdin=app)
        kubectl(kc, cache, "rollout", "status", "deploy/many", "--timeout=300s")
        kubectl(kc, cache, "rollout", "status", "deploy/web", "--timeout=60s")
        kubectl(kc, cache, "rollout", "status", "deploy/ka", "--timeout=60s")
        log.flush()
        lines = re.findall(r"pod network ready.*?namespaces_us=(\d+) took_us=(\d+)",
                           open(os.path.join(root, "server.log")).read())
        took = [int(t) for _, t in lines]
        ns = [int(n) for n, _ in lines]
        veth = [int(t) - int(n) for n, t in lines]
        print(f"pod network setup: n={len(took)} p50={pct(took, 50) / 1000:.2f} ms p90={pct(took, 90) / 1000:.2f} ms"
              f" (of which namespaces p50={pct(ns, 50) / 1000:.2f} ms, veth+address p50="
              f"{pct(veth, 50) / 1000:.2f} ms)")
        res["setup_ms"] = {"n": len(took), "p50": pct(took, 50) / 1000, "p90": pct(took, 90) / 1000,
                           "namespaces_p50": pct(ns, 50) / 1000, "veth_p50": pct(veth, 50) / 1000}

        client_dir = [p for p in os.listdir(os.path.join(data, "pods")) if p.startswith("default_many-")][0]
        client_ns = os.path.join(data, "pods", client_dir, "ns", "net")
        res["http"] = {}
        for app_name, what in (("web", "busybox httpd, close per request"), ("ka", "keep-alive server")):
            pods = json.loads(kubectl(kc, cache, "get", "pods", "-l", f"app={app_name}", "-o", "json"))["items"]
            pod_ip = pods[0]["status"]["podIP"]
            vip = json.loads(kubectl(kc, cache, "get", "svc", app_name, "-o", "json"))["spec"]["clusterIP"]
            assert route_is_bridge(pod_ip) and route_is_bridge(vip), "routes must be the bench bridge"
            for client, netns in (("host", None), ("pod", client_ns)):
                direct, via = [], []
                wrk(f"http://{pod_ip}:8080/", netns)  # warm-up
                for _ in range(rounds):
                    direct.append(wrk(f"http://{pod_ip}:8080/", netns))
                    via.append(wrk(f"http://{vip}/", netns))
                d, v = statistics.median(direct), statistics.median(via)
                print(f"HTTP {what}, from the {client}: direct to pod {d:.0f} req/s; through ClusterIP "
                      f"{v:.0f} req/s; ratio {v / d:.3f} (rounds direct {[round(x) for x in direct]}, "
                      f"ClusterIP {[round(x) for x in via]})")
                res["http"][f"{app_name}_{client}"] = {"direct_rps": direct, "clusterip_rps": via,
                                                        "ratio": v / d}

        # DNS from inside a pod's network namespace.
        nspath = client_ns
        gw = CLUSTER.split("/")[0].rsplit(".", 1)[0] + ".1"
        script = f"""
import socket, struct, time, random
lat = []
for i in range(500):
    qid = random.randint(0, 65535)
    name = 'web.default.svc.cluster.local'
    q = struct.pack('>HHHHHH', qid, 0x0100, 1, 0, 0, 0) + b''.join(bytes([len(p)]) + p.encode() for p in name.split('.')) + b'\\x00' + struct.pack('>HH', 1, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
    t = time.perf_counter(); s.sendto(q, ('{gw}', 53)); s.recvfrom(512); lat.append(time.perf_counter() - t); s.close()
lat.sort()
print(f"{{lat[len(lat)//2]*1e6:.0f}} {{lat[int(len(lat)*0.9)]*1e6:.0f}}")
"""
        probe = os.path.join(root, "dns_probe.py")
        with open(probe, "w") as f:
            f.write(script)
        out = sh(f"nsenter --net={nspath} python3 {probe}").stdout.split()
        print(f"DNS from a pod: p50={out[0]} us p90={out[1]} us (500 queries)")
        res["dns_us"] = {"p50": float(out[0]), "p90": float(out[1])}
        res["info"]["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
        print(f"load average: start {res['info']['loadavg_start']}, end {res['info']['loadavg_end']}")
        if json_out:
            with open(json_out, "w") as f:
                json.dump(res, f, indent=1)
    finally:
        server.terminate()
        server.wait(timeout=30)
        subprocess.run([skiff, "killall", "--data-dir", data], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
