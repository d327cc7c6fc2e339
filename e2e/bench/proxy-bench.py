#!/usr/bin/env python3
"""skiff's ingress proxy side by side with nginx, HAProxy and Caddy (issue 6, "Measure"),
following ../shared/notes/proxy-benchmark.md:

- each proxy pinned to CPU 0 with one worker/thread; the load generator and the backend (an
  nginx with one worker returning a fixed 600-byte body) on CPU 1;
- upstream keep-alive from every proxy; X-Forwarded-For/-Proto/-Host added; access logs off;
  404 for unknown hosts;
- TLS 1.3, X25519, TLS_AES_128_GCM_SHA256 offered first by the clients (OPENSSL_CONF), the same
  RSA-2048 certificate for every proxy (and skiff again with ECDSA P-256);
- scenarios: HTTP keep-alive, HTTPS keep-alive, HTTPS with `Connection: close` (resumed
  handshakes), full handshakes (resumption off server-side), HTTP/2 with h2load;
- requests/s, p50/p99, the proxy's own CPU time per request (from /proc), RSS idle / under load;
- rounds interleaved (every proxy once per round), medians reported.

skiff is measured as its data plane alone: `proxy/examples/bench-proxy.rs` (the same
`skiff_proxy::Proxy` the daemon runs, served as the daemon serves it: on one thread of the
proxy's own, a current-thread runtime), built with
`cargo build --release -p skiff-proxy --example bench-proxy`.

    python3 e2e/bench/proxy-bench.py [--rounds N] [--duration S] [--only skiff,nginx,...]

`--only skiff,skiff-base,nginx` with SKIFF_BENCH_PROXY_BASE=<another bench-proxy build> adds that
build as its own engine, interleaved with the others: a before/after comparison in one run.

Needs: nginx (nginx-light), haproxy, caddy, wrk, h2load (nghttp2-client), openssl, taskset;
installed when missing (their services are not started by this script).
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
BENCH_PROXY = os.environ.get("SKIFF_BENCH_PROXY", os.path.join(TARGET, "release", "examples", "bench-proxy"))
BENCH_PROXY_BASE = os.environ.get("SKIFF_BENCH_PROXY_BASE")
HZ = os.sysconf("SC_CLK_TCK")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def ensure_tools():
    need = {"nginx": "nginx-light", "haproxy": "haproxy", "caddy": "caddy", "wrk": "wrk",
            "h2load": "nghttp2-client", "openssl": "openssl"}
    missing = [pkg for tool, pkg in need.items() if not shutil.which(tool)]
    if missing:
        log("installing", missing)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if not os.path.exists(BENCH_PROXY):
        log("building bench-proxy (release)")
        subprocess.run(["cargo", "build", "--release", "-p", "skiff-proxy", "--example", "bench-proxy"],
                       cwd=ROOT, check=True)


def tree_pids(pid):
    pids = [pid]
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    pids.append(int(p))
            except OSError:
                pass
    return pids


def cpu_ticks(pid):
    total = 0
    for p in tree_pids(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total


def rss_kib(pid):
    total = 0
    for p in tree_pids(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


class Env:
    def __init__(self, dir):
        self.dir = dir
        self.backend_port = free_port()
        self.procs = []
        # Certificates: RSA-2048 (all proxies) and ECDSA P-256 (skiff, second run), for app.test
        # and localhost (clients connect to localhost, SNI localhost, Host app.test).
        for kind, newkey in (("rsa", ["-newkey", "rsa:2048"]),
                             ("ec", ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])):
            subprocess.run(["openssl", "req", "-x509", *newkey, "-nodes", "-days", "30",
                            "-subj", "/CN=app.test", "-addext", "subjectAltName=DNS:app.test,DNS:localhost",
                            "-keyout", f"{dir}/{kind}.key", "-out", f"{dir}/{kind}.pem"],
                           check=True, capture_output=True)
            with open(f"{dir}/{kind}-both.pem", "w") as out:
                out.write(open(f"{dir}/{kind}.pem").read() + open(f"{dir}/{kind}.key").read())
        with open(f"{dir}/openssl-client.cnf", "w") as f:
            f.write("openssl_conf = default_conf\n[default_conf]\nssl_conf = ssl_sect\n"
                    "[ssl_sect]\nsystem_default = sys\n[sys]\n"
                    "Ciphersuites = TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256\n"
                    "Groups = X25519\nMinProtocol = TLSv1.3\n")
        body = "x" * 599 + "\n"
        self.write("backend.conf", f"""
worker_processes 1; daemon off; pid {dir}/backend.pid; error_log {dir}/backend.err;
events {{ worker_connections 8192; }}
http {{ access_log off; keepalive_requests 100000000; client_body_temp_path {dir}/b1; proxy_temp_path {dir}/b2;
  fastcgi_temp_path {dir}/b3; uwsgi_temp_path {dir}/b4; scgi_temp_path {dir}/b5;
  server {{ listen 127.0.0.1:{self.backend_port}; location / {{ default_type text/plain; return 200 "{body}"; }} }} }}
""")
        self.spawn(["taskset", "-c", "1", "nginx", "-c", f"{dir}/backend.conf", "-p", dir])
        wait_port(self.backend_port)

    def write(self, name, text):
        with open(f"{self.dir}/{name}", "w") as f:
            f.write(text)
        return f"{self.dir}/{name}"

    def spawn(self, cmd, env=None):
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(f"{self.dir}/proc-{len(self.procs)}.err", "w"),
                             env={**os.environ, **(env or {})}, start_new_session=True)
        self.procs.append(p)
        return p

    def stop(self, p):
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                self.stop(p)


def start_proxy(env, name, full_handshake, key="rsa"):
    """Starts one proxy on CPU 0; returns (process, http_port, https_port)."""
    d, be = env.dir, env.backend_port
    hp, sp = free_port(), free_port()
    cert, keyf = f"{d}/{key}.pem", f"{d}/{key}.key"
    if name.startswith("skiff"):
        e = {"SKIFF_PROXY_NO_TLS_RESUMPTION": "1"} if full_handshake else {}
        binary = BENCH_PROXY_BASE if name == "skiff-base" else BENCH_PROXY
        p = env.spawn(["taskset", "-c", "0", binary, f"127.0.0.1:{hp}", f"127.0.0.1:{sp}", "app.test",
                       f"127.0.0.1:{be}", cert, keyf], env=e)
    elif name == "nginx":
        no_resume = "ssl_session_tickets off; ssl_session_cache off;" if full_handshake else ""
        conf = env.write("nginx.conf", f"""
worker_processes 1; daemon off; pid {d}/nginx.pid; error_log {d}/nginx.err;
events {{ worker_connections 8192; }}
http {{ access_log off; keepalive_requests 100000000; client_body_temp_path {d}/n1; proxy_temp_path {d}/n2;
  fastcgi_temp_path {d}/n3; uwsgi_temp_path {d}/n4; scgi_temp_path {d}/n5;
  ssl_protocols TLSv1.3; {no_resume}
  ssl_certificate {cert}; ssl_certificate_key {keyf};
  upstream be {{ server 127.0.0.1:{be}; keepalive 32; keepalive_requests 100000000; }}
  server {{ listen 127.0.0.1:{hp} default_server; listen 127.0.0.1:{sp} ssl http2 default_server; return 404; }}
  server {{ listen 127.0.0.1:{hp}; listen 127.0.0.1:{sp} ssl http2; server_name app.test;
    location / {{ proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Host $http_host; proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme; proxy_set_header X-Forwarded-Host $http_host; }} }} }}
""")
        p = env.spawn(["taskset", "-c", "0", "nginx", "-c", conf, "-p", d])
    elif name == "haproxy":
        conf = env.write("haproxy.cfg", f"""
global
  nbthread 1
  ssl-default-bind-options ssl-min-ver TLSv1.3
  {"tune.ssl.cachesize 0" if full_handshake else ""}
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option forwardfor
  http-reuse always
frontend fe
  bind 127.0.0.1:{hp}
  bind 127.0.0.1:{sp} ssl crt {d}/{key}-both.pem alpn h2,http/1.1 {"no-tls-tickets" if full_handshake else ""}
  acl app req.hdr(host),field(1,:) -i app.test
  http-request return status 404 if !app
  http-request set-header X-Forwarded-Proto https if {{ ssl_fc }}
  http-request set-header X-Forwarded-Proto http if !{{ ssl_fc }}
  http-request set-header X-Forwarded-Host %[req.hdr(host)]
  default_backend be
backend be
  server s1 127.0.0.1:{be}
""")
        p = env.spawn(["taskset", "-c", "0", "haproxy", "-db", "-f", conf])
    elif name == "caddy":
        conf = env.write("Caddyfile", f"""
{{
  auto_https off
  admin off
  default_bind 127.0.0.1
}}
https://:{sp} {{
  tls {cert} {keyf} {{
    protocols tls1.3
  }}
  @app host app.test
  handle @app {{
    reverse_proxy 127.0.0.1:{be} {{
      transport http {{
        keepalive_idle_conns_per_host 32
      }}
    }}
  }}
  respond 404
}}
http://app.test:{hp} {{
  reverse_proxy 127.0.0.1:{be} {{
    transport http {{
      keepalive_idle_conns_per_host 32
    }}
  }}
}}
http://:{hp} {{
  respond 404
}}
""")
        p = env.spawn(["taskset", "-c", "0", "caddy", "run", "--adapter", "caddyfile", "--config", conf],
                      env={"GOMAXPROCS": "1", "HOME": d, "XDG_DATA_HOME": d, "XDG_CONFIG_HOME": d})
    else:
        raise ValueError(name)
    wait_port(hp)
    wait_port(sp)
    time.sleep(0.3)
    return p, hp, sp


def wrk(env, url, duration, close=False):
    cmd = ["taskset", "-c", "1", "wrk", "-t1", "-c32", f"-d{duration}s", "--latency", "-H", "Host: app.test"]
    if close:
        cmd += ["-H", "Connection: close"]
    out = subprocess.run(cmd + [url], capture_output=True, text=True,
                         env={**os.environ, "OPENSSL_CONF": f"{env.dir}/openssl-client.cnf"}).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))

    def pct(p):
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        if not m:
            return float("nan")
        return float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "requests": total, "p50": pct(50), "p99": pct(99),
            "bad": int(non2xx.group(1)) if non2xx else 0, "errors": errors.group(1) if errors else ""}


def h2load(env, port, seconds):
    logf = f"{env.dir}/h2load.log"
    if os.path.exists(logf):
        os.unlink(logf)
    out = subprocess.run(["taskset", "-c", "1", "h2load", "-D", str(seconds), "-c", "32", "-m", "10", f"--log-file={logf}",
                          "-H", ":authority: app.test", f"https://localhost:{port}/"],
                         capture_output=True, text=True,
                         env={**os.environ, "OPENSSL_CONF": f"{env.dir}/openssl-client.cnf"}).stdout
    rps = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out).group(1))
    proto = re.search(r"Application protocol: (\S+)", out)
    durs = []
    bad = 0
    with open(logf) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3:
                durs.append(int(parts[2]) / 1000)
                if parts[1] != "200":
                    bad += 1
    durs.sort()
    q = lambda p: durs[min(len(durs) - 1, int(len(durs) * p))] if durs else float("nan")
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done", out)
    return {"rps": rps, "requests": int(done.group(1)) if done else len(durs), "p50": q(0.5), "p99": q(0.99), "bad": bad,
            "errors": "" if proto and proto.group(1) == "h2" else f"protocol {proto.group(1) if proto else '?'}"}


SCENARIOS = ["http", "https", "resumed", "full", "h2"]


def run_one(env, name, scenario, duration, key="rsa"):
    p, hp, sp = start_proxy(env, name, scenario == "full", key)
    try:
        url = f"http://localhost:{hp}/" if scenario == "http" else f"https://localhost:{sp}/"
        # Unknown hosts get 404 (checked once per start).
        chk = subprocess.run(["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: nothing.test", url],
                             capture_output=True, text=True).stdout
        warm = subprocess.run(["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: app.test", url],
                              capture_output=True, text=True).stdout
        if chk != "404" or warm != "200":
            raise RuntimeError(f"{name}: unknown host -> {chk}, app.test -> {warm}")
        # Warm-up.
        if scenario == "h2":
            h2load(env, sp, 3)
        else:
            wrk(env, url, 3, close=scenario in ("resumed", "full"))
        rss_idle = rss_kib(p.pid)
        c0, t0 = cpu_ticks(p.pid), time.time()
        if scenario == "h2":
            r = h2load(env, sp, duration)
        else:
            r = wrk(env, url, duration, close=scenario in ("resumed", "full"))
        c1 = cpu_ticks(p.pid)
        r["rss_load"] = rss_kib(p.pid)
        r["rss_idle"] = rss_idle
        r["cpu_us_per_req"] = (c1 - c0) / HZ * 1e6 / max(r["requests"], 1)
        r["cpu_share"] = (c1 - c0) / HZ / (time.time() - t0)
        return r
    finally:
        env.stop(p)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--only", default="skiff,skiff-ecdsa,nginx,haproxy,caddy")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--json", help="write every round's numbers and the medians to this file")
    a = ap.parse_args()
    ensure_tools()
    names = a.only.split(",")
    scenarios = a.scenarios.split(",")
    results = {}
    with tempfile.TemporaryDirectory(prefix="skiff-proxy-bench-") as d:
        env = Env(d)
        try:
            for rnd in range(a.rounds):
                for sc in scenarios:
                    for name in names:
                        if name == "skiff-ecdsa" and sc in ("http",):
                            continue
                        try:
                            r = run_one(env, name, sc, a.duration, key="ec" if name == "skiff-ecdsa" else "rsa")
                        except Exception as e:  # a peer that cannot do a scenario is reported, not fatal
                            log(f"round {rnd + 1} {sc} {name}: FAILED {e}")
                            continue
                        log(f"round {rnd + 1} {sc:8} {name:12} {r['rps']:9.0f} req/s  p50 {r['p50']:.2f} ms  p99 {r['p99']:.2f} ms"
                            f"  cpu {r['cpu_us_per_req']:.1f} us/req ({r['cpu_share'] * 100:.0f}%)  rss {r['rss_idle'] // 1024}/{r['rss_load'] // 1024} MiB"
                            f"  bad {r['bad']} {r['errors']}")
                        results.setdefault((sc, name), []).append(r)
        finally:
            env.close()
    print(f"\nmedians of {a.rounds} interleaved round(s), {a.duration} s each; proxy on CPU 0, client + backend on CPU 1")
    print("| scenario | proxy | req/s | p50 ms | p99 ms | proxy CPU µs/req | RSS idle/load MiB |")
    print("|---|---|---|---|---|---|---|")
    for sc in scenarios:
        for name in names:
            rs = results.get((sc, name))
            if not rs:
                continue
            med = lambda k: statistics.median(r[k] for r in rs)
            print(f"| {sc} | {name} | {med('rps'):,.0f} | {med('p50'):.2f} | {med('p99'):.2f} | {med('cpu_us_per_req'):.1f} |"
                  f" {med('rss_idle') / 1024:.0f} / {med('rss_load') / 1024:.0f} |")
    if a.json:
        keys = ("rps", "p50", "p99", "cpu_us_per_req", "rss_idle", "rss_load")
        out = {"args": vars(a), "loadavg_end": open("/proc/loadavg").read().split()[:3],
               "medians": {sc: {name: {k: statistics.median(r[k] for r in rs) for k in keys}
                                for (s2, name), rs in results.items() if s2 == sc}
                           for sc in scenarios},
               "rounds": [{"scenario": sc, "proxy": name, **r} for (sc, name), rs in results.items() for r in rs]}
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
