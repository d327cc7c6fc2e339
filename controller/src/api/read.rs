//! The reading verbs: get, list (as a `List` or a server-side `Table`), watch (with resume
//! from a resourceVersion, bookmarks, 410 beyond the retained window), pod logs, `/metrics`.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::Response;
use serde_json::{json, Value};

use super::rest::{
    error, key_of, not_found, ok_json, respond, wants_table, Target, BOOKMARK_EVERY, TABLE_CT,
};
use super::select::{FieldSelector, LabelSelector};
use super::status::ApiError;
use super::{table, ApiState, Body, LogOptions};
use crate::model::kinds::KINDS;
use crate::model::meta;
use crate::model::object::Object;
use crate::model::store::{event_rv, EventType, ObjectKey};
use skiff_proxy::metrics::label_value;

pub(super) fn get(
    state: &ApiState,
    t: &Target,
    name: &str,
    accept: &str,
) -> Result<Response<Body>, ApiError> {
    let obj = state
        .store
        .get_object(&key_of(t, name))
        .ok_or_else(|| not_found(t, name))?;
    if wants_table(accept) {
        let rv = obj.rv().to_string();
        return Ok(respond(
            200,
            TABLE_CT,
            serde_json::to_vec(&table::table(t.kind.kind, &[&obj.tree()], &rv, "Metadata"))
                .expect("json"),
        ));
    }
    Ok(ok_json(200, &obj))
}

pub(super) fn selectors(
    q: &HashMap<String, String>,
) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let bad = |e: super::select::SelectorError| ApiError::bad_request(e.to_string());
    let l = LabelSelector::parse(q.get("labelSelector").map_or("", String::as_str)).map_err(bad)?;
    let f = FieldSelector::parse(q.get("fieldSelector").map_or("", String::as_str)).map_err(bad)?;
    Ok((l, f))
}

/// Whether both selectors select an object (a tree is parsed for one held as text only when
/// a selector has a requirement).
fn selected(ls: &LabelSelector, fs: &FieldSelector, o: &Object) -> bool {
    if ls.is_empty() && fs.is_empty() {
        return true;
    }
    let tree = o.tree();
    ls.matches(&tree) && fs.matches(&tree)
}

pub(super) fn list(
    state: &ApiState,
    t: &Target,
    q: &HashMap<String, String>,
    accept: &str,
) -> Result<Response<Body>, ApiError> {
    let (ls, fs) = selectors(q)?;
    let rv = state.store.resource_version().to_string();
    let items: Vec<Object> = state
        .store
        .list_objects(t.kind.kind, t.namespace.as_deref())
        .into_iter()
        .filter(|o| selected(&ls, &fs, o))
        .collect();
    if wants_table(accept) {
        let trees: Vec<Arc<Value>> = items.iter().map(Object::tree).collect();
        let refs: Vec<&Value> = trees.iter().map(|o| &**o).collect();
        let include = q.get("includeObject").map_or("Metadata", String::as_str);
        return Ok(respond(
            200,
            TABLE_CT,
            serde_json::to_vec(&table::table(t.kind.kind, &refs, &rv, include)).expect("json"),
        ));
    }
    /// A list, serialized from the stored objects themselves (whole, no copy of their trees);
    /// the fields in the order `json!` gave them (sorted), so the bytes are as before.
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct List<'a> {
        api_version: &'a str,
        items: &'a [Object],
        kind: String,
        metadata: Value,
    }
    Ok(ok_json(
        200,
        &List {
            api_version: t.kind.api_version,
            items: &items,
            kind: format!("{}List", t.kind.kind),
            metadata: json!({ "resourceVersion": rv }),
        },
    ))
}

pub(super) fn logs(
    state: &ApiState,
    t: &Target,
    name: &str,
    q: &HashMap<String, String>,
) -> Response<Body> {
    let Some(pod) = state.store.get_tree(&key_of(t, name)) else {
        return error(&not_found(t, name));
    };
    let container = match super::container_of(&pod, q.get("container").map(String::as_str), false) {
        Ok(c) => c,
        Err(e) => return error(&e),
    };
    let flag = |k: &str| q.get(k).is_some_and(|v| super::query_bool(v));
    let options = LogOptions {
        container,
        follow: flag("follow"),
        tail_lines: q.get("tailLines").and_then(|v| v.parse().ok()),
        timestamps: flag("timestamps"),
        previous: flag("previous"),
        since_seconds: q.get("sinceSeconds").and_then(|v| v.parse().ok()),
        limit_bytes: q.get("limitBytes").and_then(|v| v.parse().ok()),
    };
    match state.node.logs(&pod, options) {
        Ok(rx) => {
            // A followed log ends when the daemon stops (`kubectl logs -f` then exits 0), so
            // the drain does not wait for it.
            let stopping = state.stopping.clone();
            let stream =
                futures_util::stream::unfold((rx, stopping), |(mut rx, stopping)| async move {
                    tokio::select! {
                        b = rx.recv() => b.map(|b| (Ok(Frame::data(b)), (rx, stopping))),
                        _ = super::stopped(stopping.clone()) => None,
                    }
                });
            Response::builder()
                .status(200)
                .header(hyper::header::CONTENT_TYPE, "text/plain")
                .body(BodyExt::boxed(StreamBody::new(stream)))
                .expect("valid response")
        }
        Err(e) => error(&ApiError::bad_request(e.0)),
    }
}

pub(super) fn watch(
    state: &ApiState,
    t: &Target,
    q: &HashMap<String, String>,
    as_table: bool,
) -> Response<Body> {
    let (labels, fields) = match selectors(q) {
        Ok(s) => s,
        Err(e) => return error(&e),
    };
    let rv: Option<u64> = q
        .get("resourceVersion")
        .filter(|v| !v.is_empty() && *v != "0")
        .and_then(|v| v.parse().ok());
    let (initial, last_rv, rx) = match rv {
        None => {
            let (items, at, rx) = state.store.list_and_watch(t.kind.kind);
            let initial: Vec<(EventType, ObjectKey, Object)> = items
                .into_iter()
                .map(|(k, o)| (EventType::Added, k, o))
                .collect();
            (initial, at, rx)
        }
        Some(rv) => match state.store.watch_from(rv) {
            Ok((past, rx)) => (
                past.into_iter()
                    .map(|e| (e.kind, e.key, e.object))
                    .collect(),
                rv,
                rx,
            ),
            Err(oldest) => {
                // Kubernetes answers a too-old watch with an ERROR event carrying 410.
                let status = ApiError::expired(rv, oldest).to_status();
                let line = format!("{}\n", json!({"type": "ERROR", "object": status}));
                return respond(200, "application/json", line);
            }
        },
    };
    let w = Watch {
        kind: t.kind.kind,
        api_version: t.kind.api_version,
        namespace: t.namespace.clone(),
        labels,
        fields,
        as_table,
        bookmarks: q
            .get("allowWatchBookmarks")
            .is_some_and(|b| super::query_bool(b)),
        deadline: q
            .get("timeoutSeconds")
            .and_then(|v| v.parse::<u64>().ok())
            .map(|s| tokio::time::Instant::now() + std::time::Duration::from_secs(s)),
    };
    let (tx, body_rx) = tokio::sync::mpsc::channel::<Bytes>(256);
    tokio::spawn(w.run(initial, last_rv, rx, tx, state.stopping.clone()));
    let stream = futures_util::stream::unfold(body_rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok(Frame::data(b)), rx))
    });
    Response::builder()
        .status(200)
        .header(
            hyper::header::CONTENT_TYPE,
            if as_table {
                TABLE_CT
            } else {
                "application/json"
            },
        )
        .body(BodyExt::boxed(StreamBody::new(stream)))
        .expect("valid response")
}

/// One watch: what it selects, how it renders, until when it runs.
struct Watch {
    kind: &'static str,
    api_version: &'static str,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    as_table: bool,
    bookmarks: bool,
    deadline: Option<tokio::time::Instant>,
}

fn line(v: &impl serde::Serialize) -> Bytes {
    let mut line = serde_json::to_vec(v).expect("json");
    line.push(b'\n');
    Bytes::from(line)
}

impl Watch {
    fn matches(&self, key: &ObjectKey, o: &Object) -> bool {
        key.kind == self.kind
            && self
                .namespace
                .as_deref()
                .is_none_or(|ns| key.namespace == ns)
            && selected(&self.labels, &self.fields, o)
    }

    fn render(&self, ty: EventType, o: &Object) -> Bytes {
        let ty = match ty {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        };
        /// A watch event, serialized from the stored object itself (no copy of its tree); the
        /// fields in the order `json!` gave them (sorted), so the bytes are as before.
        #[derive(serde::Serialize)]
        struct Line<'a, O: serde::Serialize> {
            object: &'a O,
            #[serde(rename = "type")]
            ty: &'a str,
        }
        if self.as_table {
            let rv = o.rv().to_string();
            let object = table::table(self.kind, &[&o.tree()], &rv, "Metadata");
            line(&Line {
                ty,
                object: &object,
            })
        } else {
            line(&Line { ty, object: o })
        }
    }

    fn bookmark(&self, rv: u64) -> Bytes {
        line(&json!({"type": "BOOKMARK", "object": {
            "kind": self.kind, "apiVersion": self.api_version,
            "metadata": {"resourceVersion": rv.to_string()},
        }}))
    }

    /// Sends the initial events, then every matching change, bookmarks when asked, until the
    /// client goes, the deadline passes, the watcher lags (410, as Kubernetes answers) or the
    /// daemon stops (the stream simply ends, as at kube-apiserver's watch timeout: client-go's
    /// informers and `kubectl wait`/`rollout status` watch again from their last version).
    async fn run(
        self,
        initial: Vec<(EventType, ObjectKey, Object)>,
        mut last_rv: u64,
        mut rx: tokio::sync::broadcast::Receiver<crate::model::store::Event>,
        tx: tokio::sync::mpsc::Sender<Bytes>,
        stopping: tokio::sync::watch::Receiver<bool>,
    ) {
        let stopped = super::stopped(stopping);
        tokio::pin!(stopped);
        for (ty, key, o) in initial {
            if self.matches(&key, &o) && tx.send(self.render(ty, &o)).await.is_err() {
                return;
            }
            last_rv = last_rv.max(o.rv());
        }
        // Every event up to here has been seen (sent or filtered out): what a bookmark says.
        let mut seen_rv = last_rv;
        let mut bookmark =
            tokio::time::interval_at(tokio::time::Instant::now() + BOOKMARK_EVERY, BOOKMARK_EVERY);
        loop {
            let next = async {
                match self.deadline {
                    Some(d) => tokio::time::timeout_at(d, rx.recv()).await.ok(),
                    None => Some(rx.recv().await),
                }
            };
            let out = tokio::select! {
                _ = tx.closed() => return,
                _ = &mut stopped => return,
                _ = bookmark.tick(), if self.bookmarks && !self.as_table => self.bookmark(seen_rv),
                ev = next => match ev {
                    None => return,
                    Some(Ok(e)) => {
                        let rv = event_rv(&e);
                        seen_rv = seen_rv.max(rv);
                        if rv <= last_rv || !self.matches(&e.key, &e.object) {
                            continue;
                        }
                        last_rv = rv;
                        self.render(e.kind, &e.object)
                    }
                    Some(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {
                        let status = ApiError::expired(last_rv, last_rv).to_status();
                        let _ = tx.send(line(&json!({"type": "ERROR", "object": status}))).await;
                        return;
                    }
                    Some(Err(_)) => return,
                },
            };
            if tx.send(out).await.is_err() {
                return;
            }
        }
    }
}

/// Prometheus metrics from the store: objects per kind, pods per phase, container restarts,
/// ready replicas of Deployments, the store's resourceVersion.
pub(super) fn metrics(state: &ApiState) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP skiff_objects Objects in the store, by kind.\n# TYPE skiff_objects gauge"
    );
    for k in KINDS {
        let _ = writeln!(
            out,
            "skiff_objects{{kind=\"{}\"}} {}",
            k.kind,
            state.store.list_objects(k.kind, None).len()
        );
    }
    let pods = state.store.list_trees("Pod", None);
    let mut phases: std::collections::BTreeMap<String, usize> = Default::default();
    let mut restarts = 0i64;
    for p in &pods {
        *phases
            .entry(
                p["status"]["phase"]
                    .as_str()
                    .unwrap_or("Pending")
                    .to_string(),
            )
            .or_default() += 1;
        restarts += p["status"]["containerStatuses"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| c["restartCount"].as_i64().unwrap_or(0))
            .sum::<i64>();
    }
    let _ = writeln!(
        out,
        "# HELP skiff_pods Pods by phase.\n# TYPE skiff_pods gauge"
    );
    for phase in ["Pending", "Running", "Succeeded", "Failed"] {
        let _ = writeln!(
            out,
            "skiff_pods{{phase=\"{phase}\"}} {}",
            phases.get(phase).copied().unwrap_or(0)
        );
    }
    let _ = writeln!(out, "# HELP skiff_container_restarts Container restarts of the pods that exist.\n# TYPE skiff_container_restarts gauge\nskiff_container_restarts {restarts}");
    let _ = writeln!(out, "# HELP skiff_deployment_replicas_available Available replicas per Deployment.\n# TYPE skiff_deployment_replicas_available gauge");
    for d in state.store.list_trees("Deployment", None) {
        let _ = writeln!(
            out,
            "skiff_deployment_replicas_available{{namespace=\"{}\",deployment=\"{}\"}} {}",
            meta::namespace(&d),
            meta::name(&d),
            d["status"]["availableReplicas"].as_i64().unwrap_or(0)
        );
    }
    let _ = writeln!(out, "# HELP skiff_store_resource_version The store's newest resourceVersion.\n# TYPE skiff_store_resource_version counter\nskiff_store_resource_version {}", state.store.resource_version());
    usage_metrics(&mut out, state, &pods);
    manifest_metrics(&mut out, state);
    if let Some(proxy) = state.proxy.get() {
        out.push_str(&proxy.metrics());
    }
    out
}

/// The manifests folder's last apply result per file, and when it was.
fn manifest_metrics(out: &mut String, state: &ApiState) {
    use std::fmt::Write;
    let results = state.manifest_results.lock().expect("not poisoned").clone();
    let _ = writeln!(out, "# HELP skiff_manifest_file_last_apply_success Whether the last apply of a manifests-folder file succeeded (1) or failed (0).\n# TYPE skiff_manifest_file_last_apply_success gauge");
    for (file, (ok, _)) in &results {
        let _ = writeln!(
            out,
            "skiff_manifest_file_last_apply_success{{file=\"{}\"}} {}",
            label_value(file),
            u8::from(*ok)
        );
    }
    let _ = writeln!(out, "# HELP skiff_manifest_file_last_apply_timestamp_seconds When a manifests-folder file was last applied or tried (Unix time).\n# TYPE skiff_manifest_file_last_apply_timestamp_seconds gauge");
    for (file, (_, at)) in &results {
        let _ = writeln!(
            out,
            "skiff_manifest_file_last_apply_timestamp_seconds{{file=\"{}\"}} {at}",
            label_value(file)
        );
    }
}

/// The node's and each container's CPU (cores, over the last sampling window) and memory
/// working set (bytes): what `kubectl top` shows, as Prometheus gauges.
fn usage_metrics(out: &mut String, state: &ApiState, pods: &[Arc<Value>]) {
    use std::fmt::Write;
    let Some(report) = state.node.usage() else {
        return;
    };
    let cores = |n: u64| n as f64 / 1e9;
    let _ = writeln!(out, "# HELP skiff_node_cpu_usage_cores The node's CPU use over the last sampling window (~10 s), in cores.\n# TYPE skiff_node_cpu_usage_cores gauge");
    let _ = writeln!(out, "# HELP skiff_node_memory_working_set_bytes The node's memory working set (total - free - inactive file).\n# TYPE skiff_node_memory_working_set_bytes gauge");
    if let Some(n) = &report.node {
        let _ = writeln!(out, "skiff_node_cpu_usage_cores {}", cores(n.cpu_nanocores));
        let _ = writeln!(
            out,
            "skiff_node_memory_working_set_bytes {}",
            n.memory_bytes
        );
    }
    let by_uid: std::collections::HashMap<&str, &Value> = pods
        .iter()
        .filter_map(|p| Some((p["metadata"]["uid"].as_str()?, p.as_ref())))
        .collect();
    let _ = writeln!(out, "# HELP skiff_container_cpu_usage_cores A container's CPU use over the last sampling window (~10 s), in cores.\n# TYPE skiff_container_cpu_usage_cores gauge");
    let _ = writeln!(out, "# HELP skiff_container_memory_working_set_bytes A container's memory working set (usage - inactive file), as cAdvisor's.\n# TYPE skiff_container_memory_working_set_bytes gauge");
    for c in &report.containers {
        let Some(pod) = by_uid.get(c.pod_uid.as_str()) else {
            continue;
        };
        let labels = format!(
            "namespace=\"{}\",pod=\"{}\",container=\"{}\"",
            meta::namespace(pod),
            meta::name(pod),
            c.container
        );
        let _ = writeln!(
            out,
            "skiff_container_cpu_usage_cores{{{labels}}} {}",
            cores(c.usage.cpu_nanocores)
        );
        let _ = writeln!(
            out,
            "skiff_container_memory_working_set_bytes{{{labels}}} {}",
            c.usage.memory_bytes
        );
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::api::metrics_api::{ContainerUsage, Usage, UsageReport};

    /// A node reporting one container's usage.
    struct Measured;

    impl crate::api::Node for Measured {
        fn logs(
            &self,
            _: &Value,
            _: LogOptions,
        ) -> Result<tokio::sync::mpsc::Receiver<Bytes>, crate::api::NodeError> {
            Err(crate::api::NodeError("no logs".into()))
        }
        fn exec(
            &self,
            _: &Value,
            _: crate::api::ExecRequest,
        ) -> Result<tokio::process::Child, crate::api::NodeError> {
            Err(crate::api::NodeError("no exec".into()))
        }
        fn is_pod_address(&self, _: std::net::IpAddr) -> bool {
            false
        }
        fn usage(&self) -> Option<UsageReport> {
            let usage = Usage {
                cpu_nanocores: 1,
                memory_bytes: 1,
            };
            Some(UsageReport {
                timestamp: String::new(),
                window: std::time::Duration::from_secs(10),
                node: Some(usage.clone()),
                containers: vec![ContainerUsage {
                    pod_uid: "u".into(),
                    container: "main".into(),
                    usage,
                }],
            })
        }
    }

    /// The metric names `/metrics` declares (`# TYPE` lines; a histogram's as its series).
    fn exported(text: &str) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        for l in text.lines() {
            let Some(rest) = l.strip_prefix("# TYPE ") else {
                continue;
            };
            let (name, ty) = rest.split_once(' ').expect("# TYPE name type");
            if ty == "histogram" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            } else {
                names.insert(name.to_string());
            }
        }
        names
    }

    /// Every `skiff_*` name in a string (a PromQL expression).
    fn metric_names(expr: &str, out: &mut BTreeSet<String>) {
        let mut rest = expr;
        while let Some(i) = rest.find("skiff_") {
            let before = rest[..i].chars().next_back();
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                out.insert(tail[..end].to_string());
            }
            rest = &tail[end..];
        }
    }

    fn strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::String(s) => out.push(s),
            Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
            Value::Object(o) => o.values().for_each(|x| strings(x, out)),
            _ => {}
        }
    }

    /// docs/grafana-dashboard.json imports (a Prometheus datasource input every query uses) and
    /// queries only metrics the daemon exports.
    #[test]
    fn the_dashboard_queries_only_exported_metrics() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(crate::model::store::Store::open(dir.path()).unwrap());
        crate::model::builtin::ensure(&store).unwrap();
        store
            .create(json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "namespace": "default", "uid": "u"},
                "spec": {"containers": [{"name": "main", "image": "x"}]}}))
            .unwrap();
        let state = ApiState {
            store,
            tokens: crate::api::auth::Tokens::open(dir.path()).unwrap(),
            issuer: Arc::new(crate::api::sa_token::Issuer::open(&dir.path().join("tls")).unwrap()),
            node: Arc::new(Measured),
            max_body_bytes: crate::api::MAX_BODY_BYTES,
            manifest_results: Default::default(),
            stopping: tokio::sync::watch::channel(false).1,
            proxy: Default::default(),
        };
        state
            .manifest_results
            .lock()
            .unwrap()
            .insert("app.yaml".into(), (true, 1));
        let _ = state
            .proxy
            .set(skiff_proxy::Proxy::new(Default::default()).unwrap());
        let exported = exported(&metrics(&state));
        for name in [
            "skiff_proxy_requests_total",
            "skiff_proxy_request_duration_seconds_bucket",
            "skiff_certificate_expiry_timestamp_seconds",
            "skiff_container_cpu_usage_cores",
            "skiff_manifest_file_last_apply_success",
        ] {
            assert!(exported.contains(name), "{name} not in {exported:?}");
        }

        let text = include_str!("../../../docs/grafana-dashboard.json");
        let dashboard: Value = serde_json::from_str(text).expect("valid JSON");
        let input = &dashboard["__inputs"][0];
        assert_eq!(input["type"], "datasource");
        assert_eq!(input["pluginId"], "prometheus");
        let datasource = format!("${{{}}}", input["name"].as_str().unwrap());
        let mut queried = BTreeSet::new();
        let panels = dashboard["panels"].as_array().unwrap();
        let mut queries = 0;
        for p in panels.iter().filter(|p| p["type"] != "row") {
            assert_eq!(p["datasource"]["uid"], datasource.as_str(), "{p}");
            for t in p["targets"].as_array().unwrap() {
                assert_eq!(t["datasource"]["uid"], datasource.as_str(), "{t}");
                metric_names(t["expr"].as_str().unwrap(), &mut queried);
                queries += 1;
            }
        }
        assert!(queries >= 15, "{queries} queries");
        // Template variables too: every string of the dashboard.
        let mut all = Vec::new();
        strings(&dashboard, &mut all);
        for s in all {
            metric_names(s, &mut queried);
        }
        let unknown: Vec<_> = queried.difference(&exported).collect();
        assert!(
            unknown.is_empty(),
            "the dashboard queries {unknown:?}, which the daemon does not export"
        );
        for wanted in [
            "skiff_proxy_request_duration_seconds_bucket",
            "skiff_proxy_tls_handshakes_total",
            "skiff_proxy_upstream_errors_total",
            "skiff_certificate_expiry_timestamp_seconds",
            "skiff_node_cpu_usage_cores",
            "skiff_container_memory_working_set_bytes",
            "skiff_manifest_file_last_apply_success",
        ] {
            assert!(queried.contains(wanted), "the dashboard has no {wanted}");
        }
    }
}
