//! The EndpointSlice reconciler: for every Service with a selector, one EndpointSlice
//! (`discovery.k8s.io/v1`, named after the Service, labelled
//! `kubernetes.io/service-name`) listing the matching pods that have an address, with their
//! `ready`/`serving`/`terminating` conditions and the Service's ports resolved to the pods'
//! target ports (named target ports looked up in the pods' container ports).

use serde_json::{json, Value};

use crate::client::view::{View, WriteError};
use crate::model::meta;
use crate::model::store::{ObjectKey, Op};

const MANAGED_BY: &str = "endpointslice-controller.k8s.io";

fn named_port(pod: &Value, name: &str) -> Option<i64> {
    pod["spec"]["containers"].as_array()?.iter().find_map(|c| {
        c["ports"]
            .as_array()?
            .iter()
            .find(|p| p["name"] == name)
            .and_then(|p| p["containerPort"].as_i64())
    })
}

/// The EndpointSlice a Service should have.
pub fn desired(svc: &Value, pods: &[&Value]) -> Value {
    let selector = &svc["spec"]["selector"];
    let mut endpoints = Vec::new();
    for pod in pods {
        if !meta::labels_match(selector, &pod["metadata"]["labels"])
            || selector.as_object().is_none_or(|m| m.is_empty())
        {
            continue;
        }
        let Some(ip) = pod["status"]["podIP"].as_str() else {
            continue;
        };
        let phase = pod["status"]["phase"].as_str().unwrap_or("");
        if phase == "Succeeded" || phase == "Failed" {
            continue;
        }
        let terminating = meta::is_terminating(pod);
        let ready = super::replicaset::pod_ready(pod);
        let mut endpoint = json!({
            "addresses": [ip],
            "conditions": {"ready": ready && !terminating, "serving": ready, "terminating": terminating},
            "targetRef": {"kind": "Pod", "namespace": meta::namespace(pod), "name": meta::name(pod), "uid": meta::uid(pod)},
            "nodeName": pod["spec"]["nodeName"],
        });
        // As Kubernetes' controller: a pod whose subdomain is this Service's name is named by
        // its hostname (cluster DNS answers `<hostname>.<service>.<ns>.svc…` for it).
        if let Some(h) = pod["spec"]["hostname"].as_str() {
            if pod["spec"]["subdomain"].as_str() == Some(meta::name(svc)) {
                endpoint["hostname"] = json!(h);
            }
        }
        endpoints.push(endpoint);
    }
    endpoints.sort_by(|a, b| {
        a["targetRef"]["name"]
            .as_str()
            .cmp(&b["targetRef"]["name"].as_str())
    });
    let first_pod = pods
        .iter()
        .find(|p| meta::labels_match(selector, &p["metadata"]["labels"]));
    let ports: Vec<Value> = svc["spec"]["ports"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|p| {
            let target = match &p["targetPort"] {
                Value::Number(n) => n.as_i64(),
                Value::String(name) => first_pod.and_then(|pod| named_port(pod, name)).or_else(|| name.parse().ok()),
                _ => p["port"].as_i64(),
            };
            json!({"name": p["name"].as_str().unwrap_or(""), "port": target, "protocol": p["protocol"].as_str().unwrap_or("TCP")})
        })
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": meta::name(svc),
            "namespace": meta::namespace(svc),
            "labels": {"kubernetes.io/service-name": meta::name(svc), "endpointslice.kubernetes.io/managed-by": MANAGED_BY},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": meta::name(svc), "uid": meta::uid(svc), "controller": true, "blockOwnerDeletion": true}],
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": ports,
    })
}

/// Reconciles the EndpointSlices of every Service.
pub async fn reconcile(view: &View) -> Result<(), WriteError> {
    let mut ops = Vec::new();
    for svc in view.list("Service", None) {
        if svc["spec"]["selector"]
            .as_object()
            .is_none_or(|m| m.is_empty())
        {
            continue;
        }
        let pods = view.list("Pod", Some(meta::namespace(&svc)));
        let refs: Vec<&Value> = pods.iter().map(|p| &**p).collect();
        let want = desired(&svc, &refs);
        let key = ObjectKey::of(&want);
        match view.get(&key) {
            None => ops.push(Op::Create(want)),
            Some(have) => {
                if have["endpoints"] != want["endpoints"]
                    || have["ports"] != want["ports"]
                    || have["metadata"]["labels"] != want["metadata"]["labels"]
                {
                    ops.push(Op::Update(want));
                }
            }
        }
    }
    if !ops.is_empty() {
        view.apply(ops).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_whose_subdomain_is_the_service_is_named_by_its_hostname() {
        let svc = json!({"metadata": {"name": "web", "namespace": "default", "uid": "s"},
            "spec": {"clusterIP": "None", "selector": {"app": "web"}, "ports": [{"port": 80}]}});
        let pod = |name: &str, subdomain: &str| {
            json!({"metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
              "spec": {"hostname": name, "subdomain": subdomain},
              "status": {"podIP": "10.42.0.5", "phase": "Running"}})
        };
        let (web0, other) = (pod("web-0", "web"), pod("x-0", "other"));
        let slice = desired(&svc, &[&web0, &other]);
        let eps = slice["endpoints"].as_array().unwrap();
        assert_eq!(eps[0]["hostname"], "web-0");
        assert!(eps[1].get("hostname").is_none(), "{}", eps[1]);
    }
}
