"""The official Kubernetes Python client (PyPI `kubernetes`) against skiff.

Run by e2e/tests/clients.rs: python scenario.py KUBECONFIG NAMESPACE IMAGE
Each step prints `ok <step>: <detail>`; any failure raises (exit code 1 with a traceback).
"""

import sys
import time

from kubernetes import client, config, watch
from kubernetes.stream import stream

kubeconfig, ns, image = sys.argv[1], sys.argv[2], sys.argv[3]
config.load_kube_config(config_file=kubeconfig)
core = client.CoreV1Api()
apps = client.AppsV1Api()
NAME = "py"
LABELS = {"app": NAME}


def ok(step, detail=""):
    print(f"ok {step}: {detail}", flush=True)


def patch_as(api, content_type, call, *args, **kwargs):
    """A patch sent with `content_type`: client 32 picks strategic merge for a dict and JSON
    patch for a list, and takes another type only from a default header."""
    api.api_client.set_default_header("Content-Type", content_type)
    try:
        return call(*args, **kwargs)
    finally:
        del api.api_client.default_headers["Content-Type"]


# the collection's version before the create: the watch starts from it, so it sees the pod
# ADDED and then MODIFIED however fast it starts
rv = core.list_namespaced_pod(ns, label_selector="app=py").metadata.resource_version

# create
dep = client.V1Deployment(
    metadata=client.V1ObjectMeta(name=NAME, labels=LABELS),
    spec=client.V1DeploymentSpec(
        replicas=1,
        selector=client.V1LabelSelector(match_labels=LABELS),
        template=client.V1PodTemplateSpec(
            metadata=client.V1ObjectMeta(labels=LABELS),
            spec=client.V1PodSpec(
                termination_grace_period_seconds=1,
                containers=[
                    client.V1Container(
                        name="main",
                        image=image,
                        image_pull_policy="Never",
                        command=["sh", "-c", "echo hello-from-python-pod; while true; do sleep 1; done"],
                    )
                ],
            ),
        ),
    ),
)
created = apps.create_namespaced_deployment(ns, dep)
assert created.metadata.uid, created
ok("create", created.metadata.uid)

# list
names = [d.metadata.name for d in apps.list_namespaced_deployment(ns).items]
assert NAME in names, names
ok("list", ",".join(names))

# watch: the pod is ADDED, then MODIFIED until it runs and is ready
events = []
pod_name = None
w = watch.Watch()
for ev in w.stream(core.list_namespaced_pod, ns, label_selector="app=py", resource_version=rv,
                   timeout_seconds=90):
    pod = ev["object"]
    events.append(ev["type"])
    status = pod.status or client.V1PodStatus()
    ready = any(c.type == "Ready" and c.status == "True" for c in (status.conditions or []))
    if status.phase == "Running" and ready:
        pod_name = pod.metadata.name
        w.stop()
assert pod_name, f"no ready pod seen; events {events}"
assert events[0] == "ADDED" and "MODIFIED" in events, events
ok("watch", " ".join(events))

# patch: JSON merge patch, then strategic merge patch (containers merged by name)
patch_as(
    apps, "application/merge-patch+json", apps.patch_namespaced_deployment,
    NAME, ns, {"metadata": {"labels": {"merged": "yes"}}},
)
got = apps.read_namespaced_deployment(NAME, ns)
assert got.metadata.labels.get("merged") == "yes", got.metadata.labels
ok("patch merge", got.metadata.labels)
# (a dict is sent as a strategic merge patch)
apps.patch_namespaced_deployment(
    NAME, ns,
    {"spec": {"template": {"spec": {"containers": [{"name": "main", "env": [{"name": "FROM", "value": "strategic"}]}]}}}},
)
got = apps.read_namespaced_deployment(NAME, ns)
c = got.spec.template.spec.containers
assert len(c) == 1 and c[0].image == image and c[0].env[0].value == "strategic", c
ok("patch strategic", c[0].env)

# server-side apply (a ConfigMap the client owns; applied twice, the second changes a key)
for value in ["one", "two"]:
    cm = patch_as(
        core, "application/apply-patch+yaml", core.patch_namespaced_config_map,
        "py-applied", ns,
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "py-applied"}, "data": {"k": value}},
        field_manager="python-client", force=True,
    )
assert cm.data == {"k": "two"}, cm.data
managers = [m.manager for m in cm.metadata.managed_fields]
assert "python-client" in managers, managers
ok("server-side apply", managers)

# logs (of the pod that is now running: wait for the new template's pod first)
deadline = time.time() + 90
while True:
    pods = core.list_namespaced_pod(ns, label_selector="app=py").items
    fresh = [p for p in pods if p.metadata.deletion_timestamp is None and p.status and p.status.phase == "Running"
             and any(e.value == "strategic" for e in (p.spec.containers[0].env or []))]
    if fresh:
        pod_name = fresh[0].metadata.name
        break
    assert time.time() < deadline, [p.metadata.name for p in pods]
    time.sleep(0.5)
deadline = time.time() + 30
while True:
    log = core.read_namespaced_pod_log(pod_name, ns, container="main")
    if "hello-from-python-pod" in log:
        break
    assert time.time() < deadline, log
    time.sleep(0.5)
ok("logs", log.strip())

# exec (the client's WebSocket, v4.channel.k8s.io): output and exit code
resp = stream(
    core.connect_get_namespaced_pod_exec, pod_name, ns, container="main",
    command=["sh", "-c", "echo exec-out-$FROM; echo exec-err >&2; exit 3"],
    stderr=True, stdin=False, stdout=True, tty=False, _preload_content=False,
)
resp.run_forever(timeout=30)
out, err, code = resp.read_stdout(), resp.read_stderr(), resp.returncode
assert "exec-out-strategic" in out and "exec-err" in err and code == 3, (out, err, code)
ok("exec", f"stdout {out.strip()!r} stderr {err.strip()!r} exit {code}")
out = stream(
    core.connect_get_namespaced_pod_exec, pod_name, ns,
    command=["cat", "/etc/hostname"], stderr=True, stdin=False, stdout=True, tty=False,
)
assert out.strip() == pod_name, out
ok("exec preloaded", out.strip())

# delete (foreground: the Deployment goes once its ReplicaSets and pods are gone)
apps.delete_namespaced_deployment(NAME, ns, propagation_policy="Foreground")
core.delete_namespaced_config_map("py-applied", ns)
deadline = time.time() + 90
while True:
    left = [p.metadata.name for p in core.list_namespaced_pod(ns, label_selector="app=py").items]
    gone = NAME not in [d.metadata.name for d in apps.list_namespaced_deployment(ns).items]
    if gone and not left:
        break
    assert time.time() < deadline, (gone, left)
    time.sleep(0.5)
try:
    apps.read_namespaced_deployment(NAME, ns)
    raise AssertionError("the deployment is still there")
except client.exceptions.ApiException as e:
    assert e.status == 404, e
ok("delete", "deployment, pods and config map gone; read answers 404")
print("PASS", flush=True)
