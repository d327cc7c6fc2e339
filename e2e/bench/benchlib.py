"""Shared helpers of the skiff benchmarks in e2e/bench/ (python3, stdlib only).

Every benchmark script builds what it needs itself (temporary folders, the busybox test image
archive, a `skiff server` with its own data directory, podman's configuration) and removes it
on exit, failure included. Run as root, from anywhere:

    python3 e2e/bench/manifest-to-http.py
    python3 e2e/bench/create-to-running.py
    python3 e2e/bench/memory.py

Environment: SKIFF_BIN (default: $CARGO_TARGET_DIR/release/skiff, else target/release/skiff);
SKIFF_BENCH_NET_INDEX=N gives every server its own bridge, address ranges and no ingress
listeners (two copies of a script side by side, e.g. a before/after pair).
All times are taken with CLOCK_REALTIME (time.time_ns()) so that they can be compared with
file mtimes and with the nanosecond timestamps skiff writes in CRI log lines.
"""

import base64
import errno
import http.client
import glob
import json
import math
import os
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
IMAGE_SCRIPT = os.path.join(ROOT, "e2e", "images", "build-busybox-image.sh")
# A fully qualified name, so that podman resolves it in local storage without short-name rules.
IMAGE_REF = "localhost/skiff-bench/busybox:1"


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def now_ns():
    return time.time_ns()


def ms(ns):
    return ns / 1e6


# ------------------------------------------------------------------------------------------
# Statistics

def p90(values):
    """Nearest-rank 90th percentile (for 20 values: the 18th smallest)."""
    v = sorted(values)
    return v[max(0, math.ceil(0.9 * len(v)) - 1)]


def summary(values):
    """Median, p90 (nearest rank), min, max of a list of numbers (None when empty)."""
    if not values:
        return None
    return {
        "n": len(values),
        "p50": statistics.median(values),
        "p90": p90(values),
        "min": min(values),
        "max": max(values),
    }


def fmt_ms(x):
    return "—" if x is None else f"{x:.1f}"


# ------------------------------------------------------------------------------------------
# Processes and files

def run(cmd, check=True, quiet=False, timeout=120, **kw):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()}")
    if not quiet and r.returncode != 0:
        log(f"  (ignored) {' '.join(cmd)}: rc={r.returncode} {r.stderr.strip()[:300]}")
    return r


def write_atomic(folder, name, text, tmpdir):
    """Writes `text` to a file in `tmpdir` (same filesystem), then renames it to
    `folder/name`: the manifests folder sees one complete file appear. Returns the time
    (ns) taken just before the rename."""
    tmp = os.path.join(tmpdir, f".{name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    t0 = now_ns()
    os.rename(tmp, os.path.join(folder, name))
    return t0


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http_status(port, timeout=1.0):
    """The HTTP status code of GET / on 127.0.0.1:port, or None if nothing answers."""
    s = socket.socket()
    s.settimeout(timeout)
    try:
        s.connect(("127.0.0.1", port))
        s.sendall(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        parts = data.split(b" ", 2)
        if len(parts) >= 2 and parts[0].startswith(b"HTTP/"):
            return int(parts[1])
        return None
    except OSError:
        return None
    finally:
        s.close()


def wait_http_200(port, deadline_ns, interval=0.001, idle=None):
    """Polls 127.0.0.1:port every ~1 ms until an HTTP 200; returns the time (ns) the answer
    arrived, or None at the deadline. `idle(seconds)`, if given, is called between attempts
    instead of sleeping (it must return within about that time)."""
    while now_ns() < deadline_ns:
        if http_status(port) == 200:
            return now_ns()
        (idle or time.sleep)(interval)
    return None


def wait_port_closed(port, deadline_ns, interval=0.02):
    while now_ns() < deadline_ns:
        s = socket.socket()
        s.settimeout(0.5)
        try:
            s.connect(("127.0.0.1", port))
        except OSError:
            return True
        finally:
            s.close()
        time.sleep(interval)
    return False


def proc_status(pid):
    """Fields of /proc/PID/status as a dict of strings, or None."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    except OSError:
        return None


def rss_kb(pid):
    st = proc_status(pid)
    if not st or "VmRSS" not in st:
        return 0
    return int(st["VmRSS"].split()[0])


def pss_kb(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def all_pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def ppid_of(pid):
    st = proc_status(pid)
    return int(st["PPid"]) if st else None


def comm_of(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return None


def cmdline_of(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def descendants(roots):
    """All descendants of the given pids (not the roots themselves)."""
    children = {}
    for pid in all_pids():
        pp = ppid_of(pid)
        if pp is not None:
            children.setdefault(pp, []).append(pid)
    out, todo = [], list(roots)
    while todo:
        p = todo.pop()
        for c in children.get(p, []):
            out.append(c)
            todo.append(c)
    return out


# ------------------------------------------------------------------------------------------
# inotify (through ctypes): when did a file appear, to ~0.1 ms, without polling

IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_ISDIR = 0x40000000
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000


class Inotify:
    """Watches folders for created / renamed-in entries and timestamps each event (ns,
    CLOCK_REALTIME) when it is read. File mtimes on this kernel are taken from the coarse
    clock (one tick = 4 ms at HZ=250) unless someone stat()ed the file recently, so they
    cannot separate steps a few ms apart; events read at once can, to the reader's wake-up
    latency (the caller must read promptly: `wait(timeout)` blocks in select())."""

    def __init__(self):
        import ctypes
        import ctypes.util
        self._libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self.fd = self._libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.paths = {}  # wd -> path

    def add(self, path, mask=IN_CREATE | IN_MOVED_TO):
        import ctypes
        wd = self._libc.inotify_add_watch(self.fd, os.fsencode(path), mask)
        if wd < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {path}")
        self.paths[wd] = path
        return wd

    def read(self):
        """Events ready now, as (ns, path of the folder, name, is_dir)."""
        import struct
        out = []
        while True:
            try:
                buf = os.read(self.fd, 65536)
            except BlockingIOError:
                return out
            t = now_ns()
            off = 0
            while off < len(buf):
                wd, mask, _cookie, ln = struct.unpack_from("iIII", buf, off)
                name = buf[off + 16: off + 16 + ln].split(b"\0", 1)[0].decode()
                off += 16 + ln
                if wd in self.paths:
                    out.append((t, self.paths[wd], name, bool(mask & IN_ISDIR)))

    def wait(self, timeout_s):
        import select
        r, _, _ = select.select([self.fd], [], [], timeout_s)
        return self.read() if r else []

    def close(self):
        os.close(self.fd)


class ContainerWatch:
    """Timestamps of the steps of a skiff container start, from inotify events under
    <data>/containers/<id>/ and <data>/pods/:
      pod_dir      <data>/pods/<ns>_<name>_<uid>/ created (the agent starts the pod sandbox)
      ctr_dir      <data>/containers/<id>/ created (the daemon starts preparing the container)
      meta_tmp     .meta.json.tmp created (overlayfs mounted, config.json written)
      meta_json    meta.json renamed in (after its fsync)
      shim_spawn   shim.log created (the daemon spawns `skiff shim` right after)
      shim_running shim.pid created (the shim process runs its main)
      state_tmp    .state.json.tmp created (libcontainer build() + start() returned)
      state_json   state.json renamed in (after its fsync; the shim then reads the pipes)"""

    NAMES = {".meta.json.tmp": "meta_tmp", "meta.json": "meta_json", "shim.log": "shim_spawn",
             "shim.pid": "shim_running", ".state.json.tmp": "state_tmp",
             "state.json": "state_json"}
    ORDER = ["pod_dir", "ctr_dir", "meta_tmp", "meta_json", "shim_spawn", "shim_running",
             "state_tmp", "state_json"]

    def __init__(self, data_dir):
        self.data = data_dir
        for d in ("containers", "pods"):
            os.makedirs(os.path.join(data_dir, d), exist_ok=True)
        self.ino = Inotify()
        self.ino.add(os.path.join(data_dir, "containers"), IN_CREATE)
        self.ino.add(os.path.join(data_dir, "pods"), IN_CREATE)
        self.times = {}

    def reset(self):
        self.times = {}
        for wd in list(self.ino.paths):
            p = self.ino.paths[wd]
            if p not in (os.path.join(self.data, "containers"), os.path.join(self.data, "pods")):
                del self.ino.paths[wd]  # the folder is gone; the kernel dropped the watch
        self.ino.read()

    def _handle(self, events):
        for t, folder, name, is_dir in events:
            if folder.endswith("/containers") and is_dir:
                self.times.setdefault("ctr_dir", t)
                try:
                    self.ino.add(os.path.join(folder, name), IN_CREATE | IN_MOVED_TO)
                except OSError:
                    pass
            elif folder.endswith("/pods") and is_dir:
                self.times.setdefault("pod_dir", t)
            elif name in self.NAMES:
                self.times.setdefault(self.NAMES[name], t)

    def wait(self, timeout_s):
        self._handle(self.ino.wait(timeout_s))

    def close(self):
        self.ino.close()


# ------------------------------------------------------------------------------------------
# The test image

def build_image(workdir):
    """Builds the busybox test image (docker-archive) into workdir; returns its path."""
    for tool, pkg in (("umoci", "umoci"), ("skopeo", "skopeo")):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} not found: apt-get install -y busybox-static umoci skopeo")
    out = os.path.join(workdir, "busybox.tar")
    run(["bash", IMAGE_SCRIPT, out, IMAGE_REF])
    return out


# ------------------------------------------------------------------------------------------
# skiff

def skiff_bin():
    if os.environ.get("SKIFF_BIN"):
        return os.environ["SKIFF_BIN"]
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    p = os.path.join(target, "release", "skiff")
    if not os.path.isfile(p):
        raise RuntimeError(f"{p} not found: build it with `cargo build --release -p skiff` "
                           "(or set SKIFF_BIN)")
    return p


class Skiff:
    """One `skiff server` with its own data, manifests and images folders under `root`."""

    def __init__(self, root, bin=None, net_index=None):
        """`bin`: another build to run (default: skiff_bin()). `net_index`: give this server
        its own bridge and address ranges and no ingress listeners, so that two servers can
        run side by side (a before/after comparison in one run)."""
        self.bin = bin or skiff_bin()
        self.net_args = []
        self.extra_args = []  # more `skiff server` flags (e.g. --max-pods)
        if net_index is None and os.environ.get("SKIFF_BENCH_NET_INDEX"):
            # Lets two copies of one script run side by side (a before/after pair).
            net_index = int(os.environ["SKIFF_BENCH_NET_INDEX"])
        if net_index is not None:
            self.net_args = ["--bridge", f"skiffbench{net_index}",
                             "--cluster-cidr", f"10.{200 + net_index}.0.0/16",
                             "--service-cidr", f"10.{210 + net_index}.0.0/16",
                             "--http-port", "0", "--https-port", "0"]
        self.root = root
        self.data = os.path.join(root, "data")
        self.manifests = os.path.join(root, "manifests")
        self.images = os.path.join(root, "images")
        self.staging = os.path.join(root, "staging")  # temp files, renamed into manifests/
        for d in (self.data, self.manifests, self.images, self.staging):
            os.makedirs(d, exist_ok=True)
        self.log_path = os.path.join(root, "server.log")
        self.proc = None

    def import_image(self, archive):
        run([self.bin, "image", "import", archive, "--data-dir", self.data])

    def start(self):
        self.log_file = open(self.log_path, "ab")
        self.api_port = free_port()
        self.kubeconfig = os.path.join(self.root, "kubeconfig.yaml")
        self.proc = subprocess.Popen(
            [self.bin, "server", "--data-dir", self.data, "--manifests", self.manifests,
             "--images", self.images, "--config", "/dev/null",
             "--api-port", str(self.api_port), "--bind-address", "127.0.0.1",
             "--disable-default-registry-endpoint",
             "--write-kubeconfig", self.kubeconfig]
            + self.net_args + self.extra_args,
            stdin=subprocess.DEVNULL, stdout=self.log_file, stderr=self.log_file)
        pidfile = os.path.join(self.data, "run", "skiff.pid")
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"skiff server exited: {self.log_tail()}")
            try:
                with open(pidfile) as f:
                    if int(f.read().split()[0]) == self.proc.pid:
                        time.sleep(0.5)  # let it finish starting (folders, agent)
                        return
            except (OSError, ValueError, IndexError):
                pass
            time.sleep(0.05)
        raise RuntimeError("skiff server did not write its pid file within 30 s")

    def wait_api(self, timeout_s=30):
        """Waits for the admin kubeconfig the server writes; keeps its token and CA (for
        [`Api`])."""
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"skiff server exited: {self.log_tail()}")
            if os.path.isfile(self.kubeconfig):
                try:
                    k = kubeconfig_fields(self.kubeconfig)
                    if k["token"] and k["ca"]:
                        self.token, self.ca = k["token"], k["ca"]
                        return
                except (OSError, KeyError):
                    pass
            time.sleep(0.05)
        raise RuntimeError(f"skiff server wrote no kubeconfig within {timeout_s} s")

    def log_tail(self, lines=30):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def get_pods(self):
        r = run([self.bin, "get", "pods", "-A", "--data-dir", self.data, "-o", "json"],
                check=False, quiet=True)
        if r.returncode != 0:
            return None
        v = json.loads(r.stdout or "null")
        if isinstance(v, dict) and "items" in v:
            return v["items"]
        if isinstance(v, list):
            return v
        return [v] if v else []

    def apply(self, name, text):
        return write_atomic(self.manifests, name, text, self.staging)

    def delete(self, name):
        try:
            os.unlink(os.path.join(self.manifests, name))
        except FileNotFoundError:
            pass

    def wait_no_pods(self, deadline_ns):
        while now_ns() < deadline_ns:
            pods = self.get_pods()
            if pods == [] and not glob.glob(os.path.join(self.data, "containers", "*")):
                return True
            time.sleep(0.1)
        return False

    def shim_pids(self):
        out = []
        for pid in all_pids():
            cl = cmdline_of(pid)
            if len(cl) >= 3 and cl[1] == "shim" and cl[-1].startswith(self.data + "/"):
                out.append(pid)
        return out

    def zygote_pids(self):
        """The daemon's zygote, which forks the shims (`agent/src/runtime/zygote.rs`)."""
        return [pid for pid in all_pids()
                if cmdline_of(pid)[1:] == ["shim-zygote", self.data]]

    def stop(self):
        """Stops the daemon, every container and shim of the data dir (skiff killall)."""
        if os.path.isdir(self.data):
            run([self.bin, "killall", "--data-dir", self.data], check=False)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()  # our own child, by pid
                self.proc.wait()
            self.proc = None
        for leftover in self.leftovers():
            log(f"LEFTOVER after skiff killall: {leftover}")

    def leftovers(self):
        """Cgroups, mounts and processes of this data directory still present."""
        import hashlib
        out = []
        names = {"skiff-" + hashlib.sha256(p.encode()).hexdigest()[:8]
                 for p in (self.data, os.path.realpath(self.data))}
        for n in names:
            out += glob.glob(f"/sys/fs/cgroup/*/{n}")
        with open("/proc/self/mountinfo") as f:
            out += [line.split()[4] for line in f if line.split()[4].startswith(self.root)]
        out += [f"pid {p}" for p in self.shim_pids()]
        return out


# ------------------------------------------------------------------------------------------
# podman

CONTAINERS_CONF = "/etc/containers/containers.conf"
# podman's state folders: removed at the end if they did not exist before the run.
PODMAN_STATE_PATHS = ["/etc/containers/networks", "/var/lib/containers/storage",
                      "/run/containers", "/run/libpod", "/run/runc", "/run/crun"]
PODMAN_CONF = """# written by skiff e2e/bench (restored afterwards)
[engine]
runtime = "runc"

[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
"""


def nft_tables():
    r = run(["nft", "list", "tables"], check=False, quiet=True)
    return set(l.strip() for l in r.stdout.splitlines() if l.strip())


def cgroup_dirs(pattern):
    return set(glob.glob(f"/sys/fs/cgroup/*/{pattern}"))


class Podman:
    """podman configured as the notes say, with its configuration restored and its state
    reset on close."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.backup = None
        self.had_conf = False
        self.nft_before = None
        self.cg_before = None
        self.ready = False

    def setup(self, archive):
        if shutil.which("podman") is None:
            log("installing podman (apt-get install -y podman)")
            run(["apt-get", "install", "-y", "podman"], timeout=600)
        self.created_paths = [p for p in PODMAN_STATE_PATHS if not os.path.exists(p)]
        r = run(["podman", "ps", "-a", "--format", "{{.ID}}"], check=False, quiet=True)
        if r.stdout.strip():
            raise RuntimeError("podman already has containers on this machine: not touching them "
                               "(the benchmark resets podman's state at the end)")
        self.nft_before = nft_tables()
        self.cg_before = cgroup_dirs("libpod_parent*") | cgroup_dirs("machine.slice")
        if os.path.exists(CONTAINERS_CONF):
            self.had_conf = True
            self.backup = os.path.join(self.workdir, "containers.conf.orig")
            shutil.copy2(CONTAINERS_CONF, self.backup)
        with open(CONTAINERS_CONF, "w") as f:
            f.write(PODMAN_CONF)
        self.ready = True
        run(["podman", "load", "-q", "-i", archive])

    def version(self):
        r = run(["podman", "--version"], check=False, quiet=True)
        return r.stdout.strip()

    def conmon_pids(self):
        return [p for p in all_pids() if comm_of(p) == "conmon"]

    def close(self):
        if not self.ready:
            return
        for cmd in (["podman", "pod", "rm", "-af", "-t", "0"], ["podman", "rm", "-af", "-t", "0"],
                    ["podman", "system", "reset", "-f"]):
            run(cmd, check=False, timeout=120)
        if self.had_conf:
            shutil.copy2(self.backup, CONTAINERS_CONF)
        else:
            try:
                os.unlink(CONTAINERS_CONF)
            except FileNotFoundError:
                pass
        # Leftovers: podman's state folders that did not exist before, firewall tables
        # podman added, its cgroups.
        for p in getattr(self, "created_paths", []):
            if p in ("/run/runc", "/run/crun"):  # the OCI runtime's state root: only if empty
                try:
                    os.rmdir(p)
                except OSError:
                    pass
            elif os.path.exists(p):
                log(f"removing {p} (created by podman during the run)")
                shutil.rmtree(p, ignore_errors=True)
        added = nft_tables() - (self.nft_before or set())
        for t in sorted(added):
            log(f"removing nftables table added during the run: {t}")
            run(["nft", "delete"] + t.split(), check=False)  # e.g. "table inet netavark"
        for d in sorted(cgroup_dirs("libpod_parent*") - (self.cg_before or set()), reverse=True):
            # deepest first; only empty cgroups can be removed (rmdir)
            for sub in sorted((x[0] for x in os.walk(d)), key=len, reverse=True):
                try:
                    os.rmdir(sub)
                except OSError as e:
                    log(f"cgroup {sub} not removed: {e}")
        self.ready = False


def kubeconfig_fields(path):
    """The bearer token and the CA (PEM) of a kubeconfig skiff wrote."""
    out = {"token": None, "ca": None}
    with open(path) as f:
        for line in f:
            s = line.strip()
            if s.startswith("token:"):
                out["token"] = s.split(":", 1)[1].strip()
            elif s.startswith("certificate-authority-data:"):
                out["ca"] = base64.b64decode(s.split(":", 1)[1].strip()).decode()
    return out


class Api:
    """One kept-alive HTTPS connection to a started [`Skiff`]'s API (after `wait_api()`),
    verifying the server with its CA."""

    def __init__(self, sk):
        self.ctx = ssl.create_default_context(cadata=sk.ca)
        self.port, self.token = sk.api_port, sk.token
        self.conn = None

    def _conn(self):
        if self.conn is None:
            self.conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx,
                                                    timeout=60)
        return self.conn

    def request(self, method, path, body=None, ctype=None, accept="application/json"):
        headers = {"Authorization": f"Bearer {self.token}", "Accept": accept}
        if ctype:
            headers["Content-Type"] = ctype
        c = self._conn()
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        data = r.read()
        return r.status, data


def pod_manifest(name, port, command=None, host_network=True, restart="Always", grace=0,
                 ports=False):
    """A Pod manifest (YAML) running the busybox test image. With `ports`, the container
    declares its port (podman refuses that with hostNetwork)."""
    command = command or ["httpd", "-f", "-p", f"127.0.0.1:{port}", "-h", "/www"]
    lines = [
        "apiVersion: v1",
        "kind: Pod",
        "metadata:",
        f"  name: {name}",
        "spec:",
        f"  hostNetwork: {'true' if host_network else 'false'}",
        f"  restartPolicy: {restart}",
        f"  terminationGracePeriodSeconds: {grace}",
        "  containers:",
        "  - name: web",
        f"    image: {IMAGE_REF}",
        "    imagePullPolicy: Never",
        "    command: " + json.dumps(command),
    ]
    if ports:
        lines += ["    ports:", f"    - containerPort: {port}"]
    return "\n".join(lines) + "\n"


def print_failures(failures):
    """Prints a benchmark's failed runs (their daemon log tail apart)."""
    if not failures:
        return
    print(f"\n{len(failures)} failure(s):")
    for f in failures:
        print(json.dumps({k: v for k, v in f.items() if k != "log_tail"}))
        if f.get("log_tail"):
            print("daemon log tail:\n" + f["log_tail"])


def install_signal_handlers():
    """SIGINT/SIGTERM/SIGHUP raise KeyboardInterrupt so that `finally` blocks clean up."""
    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, handler)


def machine_info():
    info = {"nproc": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            info["mem_total_mb"] = int(f.readline().split()[1]) // 1024
        info["kernel"] = os.uname().release
        with open("/proc/loadavg") as f:
            info["loadavg_start"] = f.read().split()[:3]
    except OSError:
        pass
    return info


def make_workdir(prefix):
    return tempfile.mkdtemp(prefix=prefix, dir=os.environ.get("TMPDIR", "/tmp"))
