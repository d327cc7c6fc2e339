//! The objects every cluster has from its first start: the `default` and `kube-system`
//! namespaces, skiff's IngressClass, the `local-path` StorageClass (the default ones) and the
//! ClusterRoles `cluster-admin`, `admin`, `edit` and `view`.

use serde_json::Value;

use crate::model::store::{self, Store};

/// Makes sure the built-in namespaces, IngressClass and StorageClass exist.
pub fn ensure(store: &Store) -> Result<(), store::StoreError> {
    // `kube-node-lease` holds the node's Lease (its heartbeat, as kubelet's).
    for ns in ["default", "kube-system", "kube-node-lease"] {
        let key = store::ObjectKey::new("Namespace", "", ns);
        if store.get(&key).is_none() {
            store.create(serde_json::json!({
                "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns},
                "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}
            }))?;
        }
    }
    // The default IngressClass: Ingresses without a class are skiff's.
    let class = store::ObjectKey::new("IngressClass", "", "skiff");
    if store.get(&class).is_none() {
        store.create(serde_json::json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {"name": "skiff", "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
            "spec": {"controller": "skiff.io/ingress"}
        }))?;
    }
    // The default StorageClass, named and provisioned as k3s's: a directory per claim under
    // `<data-dir>/volumes` (controllers/volumes.rs).
    let class = store::ObjectKey::new("StorageClass", "", LOCAL_PATH);
    if store.get(&class).is_none() {
        store.create(serde_json::json!({
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": LOCAL_PATH, "annotations": {crate::model::defaults::DEFAULT_CLASS_ANNOTATION: "true"}},
            "provisioner": LOCAL_PATH_PROVISIONER,
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "WaitForFirstConsumer",
        }))?;
    }
    // The built-in PriorityClasses, as the API server creates them.
    for (name, value, description) in [
        ("system-node-critical", 2_000_001_000, "Used for system critical pods that must not be moved from their current node."),
        ("system-cluster-critical", 2_000_000_000, "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary."),
    ] {
        let key = store::ObjectKey::new("PriorityClass", "", name);
        if store.get(&key).is_none() {
            store.create(serde_json::json!({
                "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                "metadata": {"name": name}, "value": value, "description": description,
                "preemptionPolicy": "PreemptLowerPriority",
            }))?;
        }
    }
    for role in cluster_roles() {
        let key = store::ObjectKey::of(&role);
        if store.get(&key).is_none() {
            store.create(role)?;
        }
    }
    Ok(())
}

/// The built-in ClusterRoles `cluster-admin`, `admin`, `edit` and `view`, with the rules of
/// Kubernetes' (aggregated) roles over the kinds skiff serves.
pub fn cluster_roles() -> Vec<Value> {
    use serde_json::json;
    let read = json!(["get", "list", "watch"]);
    let write = json!(["create", "delete", "deletecollection", "patch", "update"]);
    let all = json!([
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch"
    ]);
    let workloads = json!({"apiGroups": ["apps"], "resources": ["deployments", "deployments/scale", "replicasets", "replicasets/scale", "statefulsets", "statefulsets/scale"]});
    let core_write = json!([
        "pods",
        "pods/exec",
        "pods/portforward",
        "configmaps",
        "endpoints",
        "persistentvolumeclaims",
        "secrets",
        "services",
        "serviceaccounts"
    ]);
    let core_read = json!([
        "pods",
        "pods/log",
        "pods/status",
        "configmaps",
        "endpoints",
        "persistentvolumeclaims",
        "persistentvolumeclaims/status",
        "services",
        "services/status",
        "serviceaccounts",
        "events",
        "namespaces",
        "namespaces/status",
        "replicationcontrollers",
        "limitranges",
        "resourcequotas"
    ]);
    let with = |base: &Value, verbs: &Value| {
        let mut r = base.clone();
        r["verbs"] = verbs.clone();
        r
    };
    let view = vec![
        json!({"apiGroups": [""], "resources": core_read, "verbs": read}),
        with(&workloads, &read),
        json!({"apiGroups": ["apps"], "resources": ["controllerrevisions"], "verbs": read}),
        json!({"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": read}),
        json!({"apiGroups": ["networking.k8s.io"], "resources": ["ingresses", "ingresses/status"], "verbs": read}),
    ];
    let mut edit = view.clone();
    // `view` does not read Secrets; `edit` does.
    edit.push(json!({"apiGroups": [""], "resources": ["secrets"], "verbs": read}));
    edit.push(json!({"apiGroups": [""], "resources": core_write, "verbs": write}));
    edit.push(with(&workloads, &write));
    edit.push(
        json!({"apiGroups": ["networking.k8s.io"], "resources": ["ingresses"], "verbs": write}),
    );
    edit.push(
        json!({"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch", "update"]}),
    );
    let mut admin = edit.clone();
    admin.push(json!({"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"], "verbs": all}));
    let role = |name: &str, rules: Vec<Value>| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
            "rules": rules})
    };
    vec![
        role(
            "cluster-admin",
            vec![json!({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]})],
        ),
        role("admin", admin),
        role("edit", edit),
        role("view", view),
    ]
}

/// The `kubernetes` Service in `default` (ClusterIP `service_ip`, port 443 named `https`) and
/// its EndpointSlice (`address:port`, where the API listens for pods), made or corrected.
pub fn kubernetes_service(
    store: &Store,
    service_ip: std::net::Ipv4Addr,
    address: std::net::Ipv4Addr,
    port: u16,
) -> Result<(), store::StoreError> {
    let ip = service_ip.to_string();
    let mut svc = serde_json::json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default",
            "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"type": "ClusterIP", "clusterIP": ip, "clusterIPs": [ip],
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]}});
    crate::model::defaults::apply(&mut svc);
    let slice = serde_json::json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "kubernetes", "namespace": "default",
            "labels": {"kubernetes.io/service-name": "kubernetes"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [address.to_string()], "conditions": {"ready": true}}],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}]});
    for want in [svc, slice] {
        match store.get(&store::ObjectKey::of(&want)) {
            None => {
                store.create(want)?;
            }
            Some(have) => {
                let fields = ["spec", "endpoints", "ports"];
                if fields.iter().any(|f| have[*f] != want[*f]) {
                    let mut updated = (*have).clone();
                    for f in fields {
                        if !want[f].is_null() {
                            updated[f] = want[f].clone();
                        }
                    }
                    store.update(updated)?;
                }
            }
        }
    }
    Ok(())
}

/// The built-in StorageClass's name.
pub const LOCAL_PATH: &str = "local-path";
/// The provisioner skiff implements (k3s's name for it).
pub const LOCAL_PATH_PROVISIONER: &str = "rancher.io/local-path";
