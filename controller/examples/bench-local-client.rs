//! Benchmark for architecture decision 2: the daemon's own loops as API clients through
//! `kube` over the in-process transport, against reading and writing the store directly (what
//! the agent did before) and against the same client over HTTPS on loopback.
//!
//!     cargo run --release -p skiff-controller --example bench-local-client [PODS] [RUNS]
//!
//! Stores PODS pods (default 500) in a fresh store, starts the API server on a free loopback
//! port, and measures RUNS times (default 200; lists 30): reading every pod, replacing one
//! pod's status, and the time from a status write to the event reaching a watcher. Prints a
//! Markdown table (µs) with each path's p50 as a ratio of the direct store's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use kube::runtime::{reflector, watcher, WatchStreamExt};
use serde_json::json;
use skiff_controller::api::local::NoNode;
use skiff_controller::api::{self, ApiConfig};
use skiff_controller::model::store::{ObjectKey, Op, Store};

fn pod(i: usize) -> serde_json::Value {
    json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":format!("p{i}"),"namespace":"default",
      "labels":{"app":"bench"}},
      "spec":{"containers":[{"name":"c","image":"nosuch:1","imagePullPolicy":"Never",
        "args":["sleep","3600"],"env":[{"name":"A","value":"1"}]}],
        "restartPolicy":"Always","terminationGracePeriodSeconds":30}})
}

fn status(n: usize) -> serde_json::Value {
    json!({"phase":"Running","podIP":"10.42.0.9","conditions":[{"type":"Ready","status":"True"}],
      "containerStatuses":[{"name":"c","ready":true,"restartCount":n,"image":"nosuch:1","imageID":"",
        "state":{"running":{"startedAt":"2026-11-28T00:00:00Z"}}}]})
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

struct Row {
    what: &'static str,
    path: &'static str,
    samples: Vec<f64>,
}

fn pct(s: &[f64], p: f64) -> f64 {
    let mut v = s.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

async fn watch_latency(store: &Store, api: Api<Pod>, runs: usize, base: usize) -> Vec<f64> {
    let (reader, writer) = reflector::store::<Pod>();
    let stream = watcher(api, watcher::Config::default().fields("metadata.name=p0"))
        .default_backoff()
        .reflect(writer)
        .applied_objects();
    let mut stream = std::pin::pin!(stream);
    // The first event: the initial list.
    let _ = stream.next().await;
    drop(reader);
    let key = ObjectKey::new("Pod", "default", "p0");
    let mut out = Vec::new();
    for i in 0..runs {
        let t = Instant::now();
        store.update_status(&key, status(base + i)).unwrap();
        loop {
            let p = stream.next().await.unwrap().unwrap();
            let n = p
                .status
                .as_ref()
                .unwrap()
                .container_statuses
                .as_ref()
                .unwrap()[0]
                .restart_count;
            if n as usize == base + i {
                break;
            }
        }
        out.push(us(t.elapsed()));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    out
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let pods = args.first().copied().unwrap_or(500);
    let runs = args.get(1).copied().unwrap_or(200);
    let list_runs = 30;
    let dir = tempfile::tempdir()?;
    let store = Arc::new(Store::open(dir.path())?);
    skiff_controller::model::builtin::ensure(&store)?;
    store.transaction((0..pods).map(|i| Op::Create(pod(i))).collect())?;
    for i in 0..pods {
        store.update_status(
            &ObjectKey::new("Pod", "default", &format!("p{i}")),
            status(0),
        )?;
    }
    let (_rx_keep, shutdown) = {
        let (tx, rx) = tokio::sync::watch::channel(false);
        (tx, rx)
    };
    let kubeconfig = dir.path().join("kubeconfig.yaml");
    let (_task, state) = api::start(
        ApiConfig {
            listen: "127.0.0.1:0".parse()?,
            tls_sans: vec![],
            kubeconfig: kubeconfig.clone(),
            data_dir: dir.path().to_path_buf(),
            in_cluster: None,
            limits: Default::default(),
        },
        &Default::default(),
        store.clone(),
        Arc::new(NoNode),
        shutdown,
    )
    .await?;
    let local = api::local::client(state, "skiff-bench");
    let kc = kube::config::Kubeconfig::read_from(&kubeconfig)?;
    let https = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?,
    )?;
    let mut rows: Vec<Row> = Vec::new();

    // 1. Every pod, typed.
    let mut s = Vec::new();
    for _ in 0..list_runs {
        let t = Instant::now();
        let v: Vec<Pod> = store
            .list("Pod", None)
            .iter()
            .map(|p| serde_json::from_value((**p).clone()).unwrap())
            .collect();
        assert_eq!(v.len(), pods);
        s.push(us(t.elapsed()));
    }
    rows.push(Row {
        what: "read every pod (typed)",
        path: "store, decoded (before)",
        samples: s,
    });
    let (reader, writer) = reflector::store::<Pod>();
    let refl = watcher(Api::<Pod>::all(local.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(writer);
    tokio::spawn(async move {
        let mut refl = std::pin::pin!(refl);
        while refl.next().await.is_some() {}
    });
    reader.wait_until_ready().await?;
    let mut s = Vec::new();
    for _ in 0..list_runs {
        let t = Instant::now();
        let v: Vec<Pod> = reader.state().iter().map(|p| (**p).clone()).collect();
        assert_eq!(v.len(), pods);
        s.push(us(t.elapsed()));
    }
    rows.push(Row {
        what: "read every pod (typed)",
        path: "reflector cache (now)",
        samples: s,
    });
    for (path, client) in [
        ("list, in-process client", &local),
        ("list, HTTPS loopback", &https),
    ] {
        let api: Api<Pod> = Api::all(client.clone());
        let mut s = Vec::new();
        for _ in 0..list_runs {
            let t = Instant::now();
            let l = api.list(&Default::default()).await?;
            assert_eq!(l.items.len(), pods);
            s.push(us(t.elapsed()));
        }
        rows.push(Row {
            what: "read every pod (typed)",
            path,
            samples: s,
        });
    }

    // 2. One status write.
    let key = ObjectKey::new("Pod", "default", "p1");
    let mut s = Vec::new();
    for i in 0..runs {
        let t = Instant::now();
        store.update_status(&key, status(i + 1))?;
        s.push(us(t.elapsed()));
    }
    rows.push(Row {
        what: "replace a pod's status",
        path: "store (before)",
        samples: s,
    });
    let mut n = runs + 1;
    for (path, client) in [
        ("in-process client (now)", &local),
        ("HTTPS loopback", &https),
    ] {
        let api: Api<Pod> = Api::namespaced(client.clone(), "default");
        let mut body: Pod = api.get("p1").await?;
        body.metadata.resource_version = None;
        let mut s = Vec::new();
        for _ in 0..runs {
            n += 1;
            body.status = Some(serde_json::from_value(status(n))?);
            let t = Instant::now();
            api.replace_status("p1", &PostParams::default(), &body)
                .await?;
            s.push(us(t.elapsed()));
        }
        rows.push(Row {
            what: "replace a pod's status",
            path,
            samples: s,
        });
    }

    // 3. Write → watch event.
    let mut sub = store.subscribe();
    let key0 = ObjectKey::new("Pod", "default", "p0");
    let mut s = Vec::new();
    for i in 0..runs {
        let t = Instant::now();
        store.update_status(&key0, status(10_000 + i))?;
        loop {
            let e = sub.recv().await?;
            if e.key.name == "p0" {
                break;
            }
        }
        s.push(us(t.elapsed()));
    }
    drop(sub);
    rows.push(Row {
        what: "status write → watcher has it",
        path: "store broadcast (before)",
        samples: s,
    });
    let s = watch_latency(&store, Api::all(local.clone()), runs, 20_000).await;
    rows.push(Row {
        what: "status write → watcher has it",
        path: "kube watcher, in-process (now)",
        samples: s,
    });
    let s = watch_latency(&store, Api::all(https.clone()), runs, 40_000).await;
    rows.push(Row {
        what: "status write → watcher has it",
        path: "kube watcher, HTTPS loopback",
        samples: s,
    });

    println!("{pods} pods stored; {runs} runs (lists: {list_runs}); µs\n");
    println!("| operation | path | p50 | p90 | p50 ÷ first path |");
    println!("|---|---|---|---|---|");
    let mut base = ("", 0.0);
    for r in &rows {
        let p50 = pct(&r.samples, 0.5);
        if base.0 != r.what {
            base = (r.what, p50);
        }
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.2} |",
            r.what,
            r.path,
            p50,
            pct(&r.samples, 0.9),
            p50 / base.1
        );
    }
    Ok(())
}
