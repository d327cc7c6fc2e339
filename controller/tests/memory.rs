//! Issue 15 part 3: what a stored object costs the daemon's heap. The store, its watch history
//! and the controllers' watch caches (`client::view`, over the in-process API client) are
//! started as the daemon starts them; objects are written through the API as `kubectl apply`
//! writes them (client-side apply, then `--server-side`), and the heap is counted by this test
//! binary's own global allocator (live bytes, not RSS: exact and independent of the allocator's
//! caching).
//!
//! It asserts the sharing itself — the view's cached object *is* the store's version — and a
//! bound on the live bytes per object; `--nocapture` prints the breakdown recorded in
//! `docs/benchmarks.md`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{json, Value};
use skiff_controller::client::view::View;
use skiff_controller::model::store::{ObjectKey, Store};

/// Counts the bytes allocated and not yet freed, by anyone in this process.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to the system allocator with the caller's arguments; the
// counter is only arithmetic beside it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded as given.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded as given.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded as given.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded as given.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// The live bytes once the background tasks have gone quiet (the smallest of a few samples).
async fn settled_live() -> isize {
    let mut least = isize::MAX;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        least = least.min(live());
    }
    least
}

/// The objects `e2e/bench/api-kubectl.py` applies: ConfigMaps of two keys (one of 200 bytes),
/// labelled.
fn config_map(i: usize) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": format!("cm-{i:04}"), "labels": {"bench": "apply"}},
        "data": {"key": format!("value-{i}"), "other": "x".repeat(200)}})
}

const OBJECTS: usize = 400;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_object_is_held_once_and_costs_few_kilobytes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    skiff_controller::model::builtin::ensure(&store).unwrap();
    let client = skiff_controller::api::local::client_for(store.clone(), dir.path()).unwrap();
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    let (view, _watches) = View::start(client.clone(), &["ConfigMap", "Namespace"], shutdown)
        .await
        .unwrap();
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(client.clone(), "default");

    // Warm up: the first requests build what every later one reuses.
    write(&api, 9999).await;
    let before = settled_live().await;

    for i in 0..OBJECTS {
        write(&api, i).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let cached = view.list("ConfigMap", Some("default"));
        let stored = store.list_trees("ConfigMap", Some("default"));
        if cached.len() == stored.len()
            && stored.iter().all(|s| {
                view.get(&ObjectKey::of(s)).is_some_and(|c| {
                    c["metadata"]["resourceVersion"] == s["metadata"]["resourceVersion"]
                })
            })
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the view did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after = settled_live().await;

    // Held once: the cache's object is the store's version (a ConfigMap's whole JSON text),
    // not an equal copy; and so is a kind held as a tree (a Namespace: its tree without
    // managedFields).
    let stored = store.list_objects("ConfigMap", Some("default"));
    let not_shared: Vec<String> = stored
        .iter()
        .map(|s| ObjectKey::of(&s.tree()))
        .filter(|k| {
            let (s, c) = (store.get_object(k).unwrap(), view.cached(k).unwrap());
            !s.is_text() || !s.same(&c)
        })
        .map(|k| k.to_string())
        .collect();
    assert!(
        not_shared.is_empty(),
        "not held once as text: {not_shared:?}"
    );
    let ns = ObjectKey::new("Namespace", "", "default");
    let (s, c) = (store.get_object(&ns).unwrap(), view.cached(&ns).unwrap());
    assert!(s.shared_tree().is_some() && s.same(&c), "{s:?} {c:?}");

    // Read through the API, an object is whole — managedFields in their place, the same bytes
    // as the whole tree — in a get and in a list.
    let whole = store
        .get(&ObjectKey::new("ConfigMap", "default", "cm-0001"))
        .unwrap();
    assert_eq!(
        whole["metadata"]["managedFields"].as_array().map(Vec::len),
        Some(2),
        "{whole}"
    );
    let got = get_text(&client, "/api/v1/namespaces/default/configmaps/cm-0001").await;
    assert_eq!(got, serde_json::to_string(&*whole).unwrap());
    let list = get_text(
        &client,
        "/api/v1/namespaces/default/configmaps?labelSelector=bench%3Dapply",
    )
    .await;
    let list: Value = serde_json::from_str(&list).unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), OBJECTS + 1);
    assert!(items.contains(&*whole));

    // The breakdown: one version as stored (its whole JSON text), what it would be as a tree
    // without managedFields (as the kinds held as trees are) and as one whole tree.
    let sample = store
        .get_object(&ObjectKey::new("ConfigMap", "default", "cm-0000"))
        .unwrap();
    let json_bytes = serde_json::to_string(&sample).unwrap().len();
    let t0 = live();
    let whole = sample.whole();
    let whole_bytes = live() - t0;
    let managed = whole["metadata"]["managedFields"].clone();
    let managed_bytes = live() - t0 - whole_bytes;
    let t1 = live();
    let tree = sample.tree();
    let tree_bytes = live() - t1;
    let managed_text = sample.managed_fields_json().map_or(0, |t| t.len()) as isize;
    let held = sample.packed().map_or(0, |p| p.len());
    drop((whole, managed, tree));
    let per_object = (after - before) / OBJECTS as isize;
    println!(
        "{OBJECTS} ConfigMaps (client-side apply, then server-side apply): {per_object} bytes \
         of heap per object in total; one version as stored: its JSON {json_bytes} bytes \
         (of which managedFields {managed_text}), held LZ4-compressed in {held}; as a tree without managedFields \
         {tree_bytes} bytes; as one whole tree {whole_bytes} bytes (of which managedFields \
         {managed_bytes})"
    );
    let mut keys: BTreeMap<&str, usize> = BTreeMap::new();
    let tree = sample.tree();
    for k in tree["metadata"].as_object().unwrap().keys() {
        *keys.entry(k).or_default() += 1;
    }
    println!("metadata fields: {keys:?}");
    // The JSON held once, the history's JSON of each superseded version and the keys: less
    // than one tree of the object would be alone.
    assert!(
        per_object < tree_bytes,
        "{per_object} bytes per object, one tree is {tree_bytes}"
    );
}

/// A GET through the API, its body as text.
async fn get_text(client: &kube::Client, path: &str) -> String {
    let req = http::Request::get(path).body(Vec::new()).unwrap();
    client.request_text(req).await.unwrap()
}

/// `kubectl apply -f` (client-side: the last-applied annotation, manager
/// `kubectl-client-side-apply`), then `kubectl apply --server-side` (manager `kubectl`).
async fn write(api: &kube::Api<ConfigMap>, i: usize) {
    let mut cm = config_map(i);
    let last = serde_json::to_string(&cm).unwrap();
    cm["metadata"]["annotations"] =
        json!({"kubectl.kubernetes.io/last-applied-configuration": last});
    let typed: ConfigMap = serde_json::from_value(cm).unwrap();
    let pp = PostParams {
        field_manager: Some("kubectl-client-side-apply".into()),
        ..Default::default()
    };
    api.create(&pp, &typed).await.unwrap();
    let name = format!("cm-{i:04}");
    api.patch(
        &name,
        &PatchParams::apply("kubectl"),
        &Patch::Apply(config_map(i)),
    )
    .await
    .unwrap();
}
