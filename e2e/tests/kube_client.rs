//! "A Rust e2e test uses `kube`'s client against the same server for the same flow."
//!
//! `kube` 5 (rustls) with `k8s-openapi`, loading the kubeconfig the server wrote: create,
//! server-side apply, strategic merge / merge / JSON patches, waiting with
//! `kube::runtime::wait::await_condition`, a `kube::runtime::watcher` on Events, label and
//! field selectors, deletion with owner garbage collection, and the `Status` errors kube turns
//! into `kube::Error::Api` (404, 409 AlreadyExists / Conflict, 422, 403).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::{await_condition, conditions};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, Config};
use serde_json::{json, Value};
use skiff_e2e::kubectl::server_with_images;

const IMAGE: &str = "skiff-e2e-kube:v1";

async fn connect(kubeconfig: &Path) -> Client {
    let kc = Kubeconfig::read_from(kubeconfig).expect("read the kubeconfig");
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("a kube Config from the kubeconfig");
    Client::try_from(config).expect("a kube Client")
}

fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{
                        "name": "main",
                        "image": IMAGE,
                        "imagePullPolicy": "Never",
                        "command": ["sleep", "3611"],
                    }],
                },
            },
        },
    }))
    .expect("a Deployment")
}

fn js<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("serializable")
}

/// Available, observed, and every replica updated and available (what `rollout status` checks).
fn rolled_out(d: Option<&Deployment>) -> bool {
    let Some(d) = d else { return false };
    let d = js(d);
    let want = d["spec"]["replicas"].as_i64().unwrap_or(1);
    let st = &d["status"];
    st["observedGeneration"].as_i64() >= d["metadata"]["generation"].as_i64()
        && st["updatedReplicas"].as_i64().unwrap_or(0) == want
        && st["availableReplicas"].as_i64().unwrap_or(0) == want
        && st["replicas"].as_i64().unwrap_or(0) == want
        && st["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Available" && c["status"] == "True")
        })
}

async fn wait_rolled_out(api: &Api<Deployment>, name: &str, what: &str) -> Deployment {
    match tokio::time::timeout(
        Duration::from_secs(90),
        await_condition(api.clone(), name, rolled_out),
    )
    .await
    {
        Ok(Ok(Some(d))) => d,
        Ok(Ok(None)) => panic!("{what}: deployment {name} vanished"),
        Ok(Err(e)) => panic!("{what}: await_condition failed: {e}"),
        Err(_) => panic!(
            "{what}: not rolled out within 90 s: {}",
            api.get(name)
                .await
                .map(|d| js(&d).to_string())
                .unwrap_or_default()
        ),
    }
}

/// Waits until the pods matching `selector` are exactly `n`, all Running and not terminating,
/// and `pred` holds for each.
async fn wait_pods(
    api: &Api<Pod>,
    selector: &str,
    n: usize,
    pred: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    let mut last = Vec::new();
    for _ in 0..300 {
        let list = api
            .list(&ListParams::default().labels(selector))
            .await
            .expect("list pods");
        last = list.items.iter().map(js).collect::<Vec<_>>();
        if last.len() == n
            && last.iter().all(|p| {
                p["status"]["phase"] == "Running"
                    && p["metadata"]["deletionTimestamp"].is_null()
                    && pred(p)
            })
        {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "pods {selector}: wanted {n}; last seen: {}",
        last.iter()
            .map(|p| format!("{} {}", p["metadata"]["name"], p["status"]["phase"]))
            .collect::<Vec<_>>()
            .join(", ")
    );
}

fn api_error(e: kube::Error) -> Box<kube::core::Status> {
    match e {
        kube::Error::Api(s) => s,
        other => panic!("expected kube::Error::Api, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_client_drives_the_core_flow() {
    let s = tokio::task::spawn_blocking(|| server_with_images(&[IMAGE]))
        .await
        .unwrap();
    let client = connect(&s.kubeconfig).await;
    let ver = client.apiserver_version().await.expect("GET /version");
    assert_eq!((ver.major.as_str(), ver.minor.as_str()), ("1", "32"));

    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let events: Api<Event> = Api::default_namespaced(client.clone());

    // Events as they happen, through kube's watcher (list + watch, resumed by resourceVersion).
    let (ev_tx, mut ev_rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let ev_task = tokio::spawn(
        watcher(events.clone(), watcher::Config::default())
            .applied_objects()
            .try_for_each(move |e| {
                let _ = ev_tx.send(js(&e));
                futures::future::ready(Ok(()))
            }),
    );

    // --- create ---------------------------------------------------------------------------
    let cm: ConfigMap = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "kc-config"}, "data": {"greeting": "one"},
    }))
    .unwrap();
    cms.create(&PostParams::default(), &cm)
        .await
        .expect("create configmap");
    let created = deploys
        .create(&PostParams::default(), &deployment("kc", 1))
        .await
        .expect("create deployment");
    let c = js(&created);
    assert_eq!(c["metadata"]["generation"], 1);
    assert!(c["metadata"]["uid"].is_string() && c["metadata"]["resourceVersion"].is_string());
    assert_eq!(
        c["spec"]["strategy"]["type"], "RollingUpdate",
        "defaults applied: {c}"
    );
    assert_eq!(c["spec"]["revisionHistoryLimit"], 10);

    // 409 AlreadyExists.
    let e = api_error(
        deploys
            .create(&PostParams::default(), &deployment("kc", 1))
            .await
            .expect_err("a second create"),
    );
    assert_eq!((e.code, e.reason.as_str()), (409, "AlreadyExists"), "{e:?}");
    assert_eq!(e.message, "deployments.apps \"kc\" already exists");

    let d = wait_rolled_out(&deploys, "kc", "after create").await;
    assert_eq!(js(&d)["status"]["readyReplicas"], 1);
    // kube-runtime's own condition agrees.
    tokio::time::timeout(
        Duration::from_secs(30),
        await_condition(deploys.clone(), "kc", conditions::is_deployment_completed()),
    )
    .await
    .expect("is_deployment_completed within 30 s")
    .expect("await_condition");

    // --- server-side apply ----------------------------------------------------------------
    let applied = deploys
        .patch(
            "kc",
            &PatchParams::apply("skiff-e2e").force(),
            &Patch::Apply(json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "kc"},
                "spec": {"replicas": 3},
            })),
        )
        .await
        .expect("server-side apply");
    let a = js(&applied);
    assert_eq!(a["spec"]["replicas"], 3);
    assert_eq!(
        a["spec"]["template"]["spec"]["containers"][0]["image"], IMAGE,
        "{a}"
    );
    assert_eq!(a["metadata"]["generation"], 2);
    wait_rolled_out(&deploys, "kc", "after server-side apply").await;
    let three = wait_pods(&pods, "app=kc", 3, |_| true).await;
    let hash1 = three[0]["metadata"]["labels"]["pod-template-hash"].clone();
    // Server-side apply creates what does not exist (201 path).
    let cm2 = cms
        .patch(
            "kc-applied",
            &PatchParams::apply("skiff-e2e"),
            &Patch::Apply(json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "kc-applied"}, "data": {"a": "b"},
            })),
        )
        .await
        .expect("server-side apply creates");
    assert_eq!(js(&cm2)["data"]["a"], "b");

    // --- strategic merge patch: containers merged by name ---------------------------------
    let patched = deploys
        .patch(
            "kc",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [
                {"name": "main", "env": [{"name": "ROUND", "value": "2"}]}
            ]}}}})),
        )
        .await
        .expect("strategic merge patch");
    let p = js(&patched);
    let c0 = &p["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        p["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "{p}"
    );
    assert_eq!(
        c0["command"],
        json!(["sleep", "3611"]),
        "merged by name, not replaced: {p}"
    );
    assert_eq!(c0["env"], json!([{"name": "ROUND", "value": "2"}]));
    assert_eq!(p["metadata"]["generation"], 3);
    wait_rolled_out(&deploys, "kc", "after the strategic merge patch").await;
    let new_pods = wait_pods(&pods, "app=kc", 3, |p| {
        p["metadata"]["labels"]["pod-template-hash"] != hash1
            && p["spec"]["containers"][0]["env"][0]["value"] == "2"
    })
    .await;
    // Field selectors work on lists too.
    let one = js(&new_pods[0])["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let by_name = pods
        .list(&ListParams::default().fields(&format!("metadata.name={one}")))
        .await
        .unwrap();
    assert_eq!(by_name.items.len(), 1);
    let none = pods
        .list(&ListParams::default().labels("app=kc,tier=nope"))
        .await
        .unwrap();
    assert!(none.items.is_empty());

    // --- merge patch and JSON patch --------------------------------------------------------
    let cm = cms
        .patch(
            "kc-config",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"greeting": "two", "extra": "x"}})),
        )
        .await
        .expect("merge patch");
    assert_eq!(js(&cm)["data"], json!({"greeting": "two", "extra": "x"}));
    let jp: json_patch::Patch = serde_json::from_value(json!([
        {"op": "replace", "path": "/spec/replicas", "value": 1}
    ]))
    .unwrap();
    let d = deploys
        .patch("kc", &PatchParams::default(), &Patch::<()>::Json(jp))
        .await
        .expect("JSON patch");
    assert_eq!(js(&d)["spec"]["replicas"], 1);
    wait_rolled_out(&deploys, "kc", "after the JSON patch").await;
    wait_pods(&pods, "app=kc", 1, |_| true).await;

    // --- a raw watch from a resourceVersion sees a change as it happens -------------------
    let rv = deploys
        .get("kc")
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = deploys
        .watch(&WatchParams::default().fields("metadata.name=kc"), &rv)
        .await
        .expect("watch")
        .boxed();
    deploys
        .patch(
            "kc",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"seen": "yes"}}})),
        )
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(ev) = stream.next().await {
            if let Ok(WatchEvent::Modified(d)) = ev {
                if js(&d)["metadata"]["labels"]["seen"] == "yes" {
                    return true;
                }
            }
        }
        false
    })
    .await;
    assert_eq!(got, Ok(true), "no MODIFIED event for the label change");
    drop(stream);

    // --- events seen through the watcher ---------------------------------------------------
    let mut reasons = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !(reasons.contains("ScalingReplicaSet")
        && reasons.contains("Started")
        && reasons.contains("Scheduled"))
    {
        match tokio::time::timeout_at(deadline, ev_rx.recv()).await {
            Ok(Some(e)) => {
                if let Some(r) = e["reason"].as_str() {
                    reasons.insert(r.to_string());
                }
            }
            _ => panic!("events seen by the watcher: {reasons:?}"),
        }
    }
    // And the Events of one object by field selector (what `kubectl describe` asks).
    let dep_events = events
        .list(
            &ListParams::default().fields("involvedObject.kind=Deployment,involvedObject.name=kc"),
        )
        .await
        .unwrap();
    assert!(
        !dep_events.items.is_empty()
            && dep_events
                .items
                .iter()
                .all(|e| js(e)["involvedObject"]["name"] == "kc"
                    && js(e)["involvedObject"]["kind"] == "Deployment"),
        "{:?}",
        dep_events.items.iter().map(js).collect::<Vec<_>>()
    );

    // --- error shapes ----------------------------------------------------------------------
    let e = api_error(deploys.get("nosuch").await.expect_err("get nosuch"));
    assert_eq!((e.code, e.reason.as_str()), (404, "NotFound"), "{e:?}");
    assert_eq!(e.message, "deployments.apps \"nosuch\" not found");
    assert!(e.is_not_found());
    let details = e.details.as_ref().expect("details");
    assert_eq!(
        (
            details.name.as_str(),
            details.group.as_str(),
            details.kind.as_str()
        ),
        ("nosuch", "apps", "deployments")
    );
    let e = api_error(
        cms.delete("nosuch", &DeleteParams::default())
            .await
            .expect_err("delete nosuch"),
    );
    assert_eq!((e.code, e.reason.as_str()), (404, "NotFound"), "{e:?}");

    // 409 Conflict: a replace carrying a stale resourceVersion.
    let mut stale = cms.get("kc-config").await.unwrap();
    cms.patch(
        "kc-config",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"greeting": "three"}})),
    )
    .await
    .unwrap();
    stale
        .data
        .get_or_insert_default()
        .insert("greeting".into(), "stale".into());
    let e = api_error(
        cms.replace("kc-config", &PostParams::default(), &stale)
            .await
            .expect_err("replace with a stale resourceVersion"),
    );
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"), "{e:?}");
    assert!(e.message.contains("the object has been modified"), "{e:?}");
    assert_eq!(
        js(&cms.get("kc-config").await.unwrap())["data"]["greeting"],
        "three"
    );

    // 422 Invalid, naming the field.
    let mut bad = js(&deployment("kc-bad", 1));
    bad["spec"]["replicas"] = json!(-1);
    let bad: Deployment = serde_json::from_value(bad).unwrap();
    let e = api_error(
        deploys
            .create(&PostParams::default(), &bad)
            .await
            .expect_err("negative replicas"),
    );
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"), "{e:?}");
    let causes = &e.details.as_ref().expect("details").causes;
    assert!(causes.iter().any(|c| c.field == "spec.replicas"), "{e:?}");

    // 403 Forbidden for a namespace-scoped token outside its namespace.
    cms.patch(
        "ns-holder",
        &PatchParams::apply("skiff-e2e"),
        &Patch::Apply(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ns-holder"}}),
        ),
    )
    .await
    .unwrap();
    let nss: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}),
        )
        .unwrap(),
    )
    .await
    .expect("create namespace team");
    let team_kc = s.work_dir.join("team.kubeconfig");
    let o = s.cli(&[
        "token",
        "create",
        "-n",
        "team",
        "--kubeconfig",
        team_kc.to_str().unwrap(),
        "--admin-kubeconfig",
        s.kubeconfig.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let team = connect(&team_kc).await;
    let team_cms: Api<ConfigMap> = Api::namespaced(team.clone(), "team");
    team_cms
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mine"}}),
            )
            .unwrap(),
        )
        .await
        .expect("a team token writes in its namespace");
    let e = api_error(
        Api::<ConfigMap>::namespaced(team.clone(), "default")
            .list(&ListParams::default())
            .await
            .expect_err("team token lists default"),
    );
    assert_eq!((e.code, e.reason.as_str()), (403, "Forbidden"), "{e:?}");

    // --- delete: the Deployment's ReplicaSets and Pods go with it --------------------------
    let uid = deploys.get("kc").await.unwrap().metadata.uid.unwrap();
    deploys
        .delete("kc", &DeleteParams::background())
        .await
        .expect("delete");
    tokio::time::timeout(
        Duration::from_secs(30),
        await_condition(deploys.clone(), "kc", conditions::is_deleted(&uid)),
    )
    .await
    .expect("deleted within 30 s")
    .unwrap();
    let rss: Api<k8s_openapi::api::apps::v1::ReplicaSet> = Api::default_namespaced(client.clone());
    let mut gone = false;
    for _ in 0..300 {
        let p = pods
            .list(&ListParams::default().labels("app=kc"))
            .await
            .unwrap();
        let r = rss
            .list(&ListParams::default().labels("app=kc"))
            .await
            .unwrap();
        if p.items.is_empty() && r.items.is_empty() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(gone, "pods or replicasets of kc remain after deleting it");
    let e = api_error(deploys.get("kc").await.expect_err("get after delete"));
    assert_eq!(e.code, 404);

    ev_task.abort();
    tokio::task::spawn_blocking(move || drop(s)).await.unwrap();
}
