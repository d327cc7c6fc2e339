// The official Kubernetes JavaScript client (npm @kubernetes/client-node) against skiff.
//
// Run by e2e/tests/clients.rs: node scenario.mjs KUBECONFIG NAMESPACE IMAGE
// Each step prints `ok <step>: <detail>`; any failure throws (exit code 1).

import * as k8s from '@kubernetes/client-node';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';

const [kubeconfig, ns, image] = process.argv.slice(2);
const kc = new k8s.KubeConfig();
kc.loadFromFile(kubeconfig);
const core = kc.makeApiClient(k8s.CoreV1Api);
const apps = kc.makeApiClient(k8s.AppsV1Api);
const NAME = 'js';
const labels = { app: NAME };

const ok = (step, detail = '') => console.log(`ok ${step}: ${typeof detail === 'string' ? detail : JSON.stringify(detail)}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// A deadline that does not keep node running once everything else is done.
const deadline = (ms, what) => new Promise((_, reject) => setTimeout(() => reject(new Error(what)), ms).unref());
async function until(what, seconds, f) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(500);
  }
}
function collector() {
  let text = '';
  const w = new Writable({ write(chunk, _enc, cb) { text += chunk.toString(); cb(); } });
  return { w, text: () => text };
}

// watch first, so that the pod's ADDED and MODIFIED events are seen as they happen
const events = [];
let readyPod = null;
let resolveReady;
const ready = new Promise((r) => { resolveReady = r; });
const watcher = await new k8s.Watch(kc).watch(
  `/api/v1/namespaces/${ns}/pods`,
  { labelSelector: 'app=js' },
  (type, pod) => {
    events.push(type);
    const isReady = (pod.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
    if (pod.status?.phase === 'Running' && isReady && !readyPod) {
      readyPod = pod.metadata.name;
      resolveReady();
    }
  },
  (err) => { if (err && !readyPod) console.error('watch ended:', err); },
);

// create
const created = await apps.createNamespacedDeployment({
  namespace: ns,
  body: {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: NAME, labels },
    spec: {
      replicas: 1,
      selector: { matchLabels: labels },
      template: {
        metadata: { labels },
        spec: {
          terminationGracePeriodSeconds: 1,
          containers: [{
            name: 'main', image, imagePullPolicy: 'Never',
            command: ['sh', '-c', 'echo hello-from-js-pod; while true; do sleep 1; done'],
          }],
        },
      },
    },
  },
});
assert.ok(created.metadata.uid);
ok('create', created.metadata.uid);

// list
const names = (await apps.listNamespacedDeployment({ namespace: ns })).items.map((d) => d.metadata.name);
assert.ok(names.includes(NAME), names.join(','));
ok('list', names.join(','));

// watch
await Promise.race([ready, deadline(90000, `no ready pod within 90 s; events ${events}`)]);
watcher.abort();
assert.equal(events[0], 'ADDED', events.join(' '));
assert.ok(events.includes('MODIFIED'), events.join(' '));
ok('watch', events.join(' '));

// patch: JSON merge patch, then strategic merge patch (containers merged by name)
await apps.patchNamespacedDeployment(
  { name: NAME, namespace: ns, body: { metadata: { labels: { merged: 'yes' } } } },
  k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
);
let got = await apps.readNamespacedDeployment({ name: NAME, namespace: ns });
assert.equal(got.metadata.labels.merged, 'yes');
ok('patch merge', got.metadata.labels);
await apps.patchNamespacedDeployment(
  {
    name: NAME, namespace: ns,
    body: { spec: { template: { spec: { containers: [{ name: 'main', env: [{ name: 'FROM', value: 'strategic' }] }] } } } },
  },
  k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch),
);
got = await apps.readNamespacedDeployment({ name: NAME, namespace: ns });
const c = got.spec.template.spec.containers;
assert.equal(c.length, 1);
assert.equal(c[0].image, image);
assert.equal(c[0].env[0].value, 'strategic');
ok('patch strategic', c[0].env);

// server-side apply, twice (the second changes a key)
let cm;
for (const value of ['one', 'two']) {
  cm = await core.patchNamespacedConfigMap(
    {
      name: 'js-applied', namespace: ns, fieldManager: 'js-client', force: true,
      body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'js-applied' }, data: { k: value } },
    },
    k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.ServerSideApply),
  );
}
assert.deepEqual(cm.data, { k: 'two' });
const managers = cm.metadata.managedFields.map((m) => m.manager);
assert.ok(managers.includes('js-client'), managers.join(','));
ok('server-side apply', managers);

// logs, of the new template's pod
const podName = await until('the patched pod', 90, async () => {
  const pods = (await core.listNamespacedPod({ namespace: ns, labelSelector: 'app=js' })).items;
  const p = pods.find((p) => !p.metadata.deletionTimestamp && p.status?.phase === 'Running'
    && (p.spec.containers[0].env ?? []).some((e) => e.value === 'strategic'));
  return p?.metadata.name;
});
const logText = await until('the pod\'s log line', 30, async () => {
  const t = await core.readNamespacedPodLog({ name: podName, namespace: ns, container: 'main' });
  return t.includes('hello-from-js-pod') ? t : null;
});
ok('logs', logText.trim());
const followed = collector();
const logReq = await new k8s.Log(kc).log(ns, podName, 'main', followed.w, { follow: true, tailLines: 5 });
await until('a followed log line', 30, () => followed.text().includes('hello-from-js-pod'));
logReq.abort();
ok('logs follow', followed.text().trim());

// exec over the client's WebSocket (v5.channel.k8s.io, else v4): output and exit code
const out = collector();
const err = collector();
const status = await new Promise((resolve, reject) => {
  new k8s.Exec(kc)
    .exec(ns, podName, 'main', ['sh', '-c', 'echo exec-out-$FROM; echo exec-err >&2; exit 3'],
      out.w, err.w, null, false, resolve)
    .catch(reject);
  deadline(30000, 'exec: no status within 30 s').catch(reject);
});
assert.equal(status.status, 'Failure', JSON.stringify(status));
assert.equal(status.reason, 'NonZeroExitCode', JSON.stringify(status));
assert.equal(status.details.causes.find((c) => c.reason === 'ExitCode').message, '3');
await until('exec output', 10, () => out.text().includes('exec-out-strategic') && err.text().includes('exec-err'));
ok('exec', `stdout ${JSON.stringify(out.text().trim())} stderr ${JSON.stringify(err.text().trim())} exit 3`);

// delete
await apps.deleteNamespacedDeployment({ name: NAME, namespace: ns, propagationPolicy: 'Foreground' });
await core.deleteNamespacedConfigMap({ name: 'js-applied', namespace: ns });
await until('the deployment and its pods gone', 90, async () => {
  const deps = (await apps.listNamespacedDeployment({ namespace: ns })).items.map((d) => d.metadata.name);
  const pods = (await core.listNamespacedPod({ namespace: ns, labelSelector: 'app=js' })).items;
  return !deps.includes(NAME) && pods.length === 0;
});
await assert.rejects(apps.readNamespacedDeployment({ name: NAME, namespace: ns }), (e) => e.code === 404);
ok('delete', 'deployment, pods and config map gone; read answers 404');
console.log('PASS');
