//! Pod Security admission on the API's write paths: who is held to which level, and the
//! answer (refusal, `Warning:` headers, an audit line in the daemon's log).
//!
//! - A namespace token is held to its namespace's `pod-security.kubernetes.io/enforce` level,
//!   `baseline` when the admin has not labelled it. A workload (Deployment, ReplicaSet,
//!   StatefulSet, any kind [`podsecurity::template_pointer`] knows) is refused at the workload:
//!   Kubernetes only warns there and refuses each pod, but skiff's controllers create pods as
//!   the system, so the refused pod would silently never appear.
//! - The admin token is exempt (as an `exemptions.usernames` entry upstream), but hears what
//!   the namespace's enforce and warn levels would refuse, as warnings. The manifests folder
//!   and the controllers are the admin's and do not pass here.
//! - A write that leaves the pod template as it was is not refused again (a label change on a
//!   Deployment after the admin tightened the namespace), as upstream exempts insignificant
//!   pod updates.

use std::net::IpAddr;

use hyper::Response;
use serde_json::Value;

use super::auth::Identity;
use super::status::ApiError;
use super::{ApiState, Body};
use crate::model::podsecurity::{self, Level, LevelVersion};
use crate::model::store::ObjectKey;
use crate::model::validate::FieldError;

/// What a namespace token gets where the admin said nothing.
pub const TOKEN_DEFAULT: LevelVersion = LevelVersion::latest(Level::Baseline);

/// Admits `obj` (about to be written by `who`; `existing` is what it replaces): the warnings
/// to return, or the refusal.
pub(super) fn admit(
    state: &ApiState,
    who: &Identity,
    plural: &str,
    obj: &Value,
    existing: Option<&Value>,
) -> Result<Vec<String>, ApiError> {
    let ns = obj["metadata"]["namespace"].as_str().unwrap_or_default();
    let namespace = state.store.get_tree(&ObjectKey::new("Namespace", "", ns));
    let namespace = namespace.as_deref().unwrap_or(&Value::Null);
    if who.namespace.is_some() {
        host_ports_allowed(namespace, plural, obj)?;
        endpoints_on_the_pod_network(state, plural, obj)?;
    }
    host_ports_free(state, obj)?;
    let Some((meta, spec)) = podsecurity::pod_of(obj) else {
        return Ok(Vec::new());
    };
    if who.namespace.is_some() {
        within_the_namespace(plural, obj, spec)?;
    }
    let labels = &namespace["metadata"]["labels"];
    let default = match who.namespace {
        Some(_) => TOKEN_DEFAULT,
        None => LevelVersion::latest(Level::Privileged),
    };
    let (policy, _) = podsecurity::policy(labels, default);
    let unchanged = existing
        .and_then(podsecurity::pod_of)
        .is_some_and(|(m, s)| m == meta && s == spec);
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let mut warnings = Vec::new();
    let enforced = podsecurity::evaluate(&policy.enforce, meta, spec);
    if !enforced.is_empty() {
        let detail = podsecurity::describe(&enforced);
        if who.namespace.is_some() && !unchanged {
            return Err(ApiError::forbidden(format!(
                "{plural} {name:?} is forbidden: violates PodSecurity \"{}\": {detail}",
                policy.enforce
            )));
        }
        warnings.push(format!(
            "would violate PodSecurity \"{}\": {detail}",
            policy.enforce
        ));
    }
    if policy.warn != policy.enforce {
        let warned = podsecurity::evaluate(&policy.warn, meta, spec);
        if !warned.is_empty() {
            warnings.push(format!(
                "would violate PodSecurity \"{}\": {}",
                policy.warn,
                podsecurity::describe(&warned)
            ));
        }
    }
    let audited = podsecurity::evaluate(&policy.audit, meta, spec);
    if !audited.is_empty() {
        tracing::warn!(
            user = %who.user(), namespace = ns, name,
            "audit: {plural} would violate PodSecurity \"{}\": {}",
            policy.audit,
            podsecurity::describe(&audited)
        );
    }
    Ok(warnings)
}

/// What a token's pods may not reach beyond their namespace: the critical priority classes
/// (Kubernetes' Priority admission keeps them to `kube-system`: they preempt and outlive
/// everything), and pod (anti-)affinity over other namespaces (a required anti-affinity
/// naming another namespace keeps that namespace's pods from being scheduled).
fn within_the_namespace(plural: &str, obj: &Value, spec: &Value) -> Result<(), ApiError> {
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let ns = obj["metadata"]["namespace"].as_str().unwrap_or_default();
    if let Some(class @ ("system-node-critical" | "system-cluster-critical")) =
        spec["priorityClassName"].as_str()
    {
        if ns != "kube-system" {
            return Err(ApiError::forbidden(format!(
                "{plural} {name:?} is forbidden: pods with {class} priorityClass is not permitted in {ns} namespace"
            )));
        }
    }
    for kind in ["podAffinity", "podAntiAffinity"] {
        let a = &spec["affinity"][kind];
        let required = a["requiredDuringSchedulingIgnoredDuringExecution"]
            .as_array()
            .into_iter()
            .flatten();
        let preferred = a["preferredDuringSchedulingIgnoredDuringExecution"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|w| &w["podAffinityTerm"]);
        for term in required.chain(preferred) {
            let others = term["namespaces"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|n| n.as_str() != Some(ns));
            if others || !term["namespaceSelector"].is_null() {
                return Err(ApiError::forbidden(format!(
                    "{plural} {name:?} is forbidden: spec.affinity.{kind}: a namespace token's pods may only select pods of their own namespace {ns:?} (namespaces, namespaceSelector)"
                )));
            }
        }
    }
    Ok(())
}

/// A token's EndpointSlice may only name pod addresses: the node's Service rules send a
/// Service's traffic to its endpoints, so an address off the pod network (the node's own
/// 127.0.0.1, a LAN host, the router) would have the node connect where the tenant says.
/// (The admin's and skiff's own EndpointSlices may name any address, as on Kubernetes.)
fn endpoints_on_the_pod_network(
    state: &ApiState,
    plural: &str,
    obj: &Value,
) -> Result<(), ApiError> {
    if obj["kind"] != "EndpointSlice" {
        return Ok(());
    }
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let endpoints = obj["endpoints"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    for (i, e) in endpoints.iter().enumerate() {
        let addresses = e["addresses"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        for (j, a) in addresses.iter().enumerate() {
            let text = a.as_str().unwrap_or_default();
            let on_pods = text
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| state.node.is_pod_address(ip));
            if !on_pods {
                return Err(ApiError::forbidden(format!(
                    "{plural} {name:?} is forbidden: endpoints[{i}].addresses[{j}]: {text:?} is not a pod address of this node; a namespace's EndpointSlices may only name pods (the admin's may name any address)"
                )));
            }
        }
    }
    Ok(())
}

/// The response with each warning as a `Warning: 299 - "…"` header (what kubectl prints as
/// `Warning: …`).
pub(super) fn with_warnings(mut r: Response<Body>, warnings: &[String]) -> Response<Body> {
    for w in warnings {
        let escaped = w.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(v) = hyper::header::HeaderValue::from_str(&format!("299 - \"{escaped}\"")) {
            r.headers_mut().append(hyper::header::WARNING, v);
        }
    }
    r
}

/// The Namespace annotation by which the admin lets a namespace's tokens claim host ports:
/// `"8080,30000-30100"`.
pub const HOST_PORTS_ANNOTATION: &str = "skiff.io/host-ports";

/// Parses the annotation's list of ports and ranges (`None`: malformed).
pub fn parse_port_list(s: &str) -> Option<Vec<std::ops::RangeInclusive<u16>>> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
                (a <= b).then_some(a..=b)
            }
            None => p.parse().ok().map(|n| n..=n),
        })
        .collect()
}

/// A host port an object claims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The field that claims it (`spec.ports[0].port`).
    pub field: String,
    /// On this host address only (a `loadBalancerIP`, a `hostIP`), or `None`: on every one.
    pub address: Option<IpAddr>,
    /// The port; `None` for a node port left to allocate.
    pub port: Option<u16>,
}

/// Whether two claims of one port meet: the same address, or one of them on every address.
fn addresses_meet(a: Option<IpAddr>, b: Option<IpAddr>) -> bool {
    a.is_none() || b.is_none() || a == b
}

/// `address:port`, or the port on every address.
fn describe_port(address: Option<IpAddr>, port: u16) -> String {
    match address {
        Some(a) => format!("{a}:{port}"),
        None => format!("host port {port}"),
    }
}

/// The host ports an object claims. A LoadBalancer's port is claimed on its `loadBalancerIP`
/// (every address without one); node ports always on every address; a hostPort on its
/// `hostIP` (0.0.0.0 and none: every address).
pub fn claimed_host_ports(obj: &Value) -> Vec<Claim> {
    let mut out = Vec::new();
    let parse = |v: &Value| {
        v.as_str()
            .and_then(|a| a.parse::<IpAddr>().ok())
            .filter(|a| !a.is_unspecified())
    };
    let port = |v: &Value| v.as_u64().and_then(|n| u16::try_from(n).ok());
    if obj["kind"] == "Service" {
        let ty = obj["spec"]["type"].as_str().unwrap_or("ClusterIP");
        let lb_address = parse(&obj["spec"]["loadBalancerIP"]);
        if ty == "NodePort" || ty == "LoadBalancer" {
            for (i, p) in obj["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                out.push(Claim {
                    field: format!("spec.ports[{i}].nodePort"),
                    address: None,
                    port: port(&p["nodePort"]),
                });
                if ty == "LoadBalancer" {
                    out.push(Claim {
                        field: format!("spec.ports[{i}].port"),
                        address: lb_address,
                        port: port(&p["port"]),
                    });
                }
            }
        }
    }
    if let Some((_, spec)) = podsecurity::pod_of(obj) {
        for list in ["initContainers", "containers"] {
            for (i, c) in spec[list].as_array().into_iter().flatten().enumerate() {
                for (j, p) in c["ports"].as_array().into_iter().flatten().enumerate() {
                    if p["hostPort"].as_u64().is_some_and(|h| h != 0) {
                        out.push(Claim {
                            field: format!("{list}[{i}].ports[{j}].hostPort"),
                            address: parse(&p["hostIP"]),
                            port: port(&p["hostPort"]),
                        });
                    }
                }
            }
        }
    }
    out
}

/// A host port is taken once on an address: not where one of skiff's own listeners is, not
/// where another Service's node or LoadBalancer port is (ports compared by number, whatever
/// the protocol; the same port on two distinct addresses is fine, a port on every address
/// meets all of them).
fn host_ports_free(state: &ApiState, obj: &Value) -> Result<(), ApiError> {
    let claimed = claimed_host_ports(obj);
    if claimed.is_empty() {
        return Ok(());
    }
    let reserved = state.node.reserved_ports();
    let me = (&obj["metadata"]["namespace"], &obj["metadata"]["name"]);
    let others: Vec<(Option<IpAddr>, u16, String)> = if obj["kind"] == "Service" {
        state
            .store
            .list("Service", None)
            .iter()
            .filter(|s| (&s["metadata"]["namespace"], &s["metadata"]["name"]) != me)
            .flat_map(|s| {
                let who = format!(
                    "the Service {}/{}",
                    s["metadata"]["namespace"].as_str().unwrap_or_default(),
                    s["metadata"]["name"].as_str().unwrap_or_default()
                );
                claimed_host_ports(s)
                    .into_iter()
                    .filter_map(move |c| Some((c.address, c.port?, who.clone())))
            })
            .collect()
    } else {
        Vec::new()
    };
    let errors: Vec<FieldError> = claimed
        .iter()
        .filter_map(|c| {
            let port = c.port?;
            let (at, _, who) = reserved
                .iter()
                .chain(&others)
                .find(|(a, p, _)| *p == port && addresses_meet(*a, c.address))?;
            Some(FieldError {
                field: c.field.clone(),
                message: format!(
                    "Invalid value: {port}: provided port is already allocated ({} is {who}'s)",
                    describe_port(at.or(c.address), port)
                ),
            })
        })
        .collect();
    if errors.is_empty() {
        return Ok(());
    }
    Err(ApiError::invalid(
        obj["kind"].as_str().unwrap_or_default(),
        obj["metadata"]["name"].as_str().unwrap_or_default(),
        &errors,
    ))
}

/// A namespace token may claim a host port only where the admin listed it on the Namespace.
fn host_ports_allowed(namespace: &Value, plural: &str, obj: &Value) -> Result<(), ApiError> {
    let claimed = claimed_host_ports(obj);
    if claimed.is_empty() {
        return Ok(());
    }
    let ns = obj["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let allowed = namespace["metadata"]["annotations"][HOST_PORTS_ANNOTATION]
        .as_str()
        .and_then(parse_port_list)
        .unwrap_or_default();
    for Claim { field, port, .. } in claimed {
        let ok = port.is_some_and(|p| allowed.iter().any(|r| r.contains(&p)));
        if ok {
            continue;
        }
        let what = match port {
            Some(p) => format!("{field}={p}"),
            None => format!("{field} (to be allocated: name one the namespace may use)"),
        };
        return Err(ApiError::forbidden(format!(
            "{plural} {name:?} is forbidden: {what} is a port on the host, and the namespace {ns:?} may only use the host ports its Namespace's {HOST_PORTS_ANNOTATION} annotation lists ({}); host ports are the admin's",
            namespace["metadata"]["annotations"][HOST_PORTS_ANNOTATION]
                .as_str()
                .map_or("none".to_string(), |s| format!("{s:?}"))
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn host_port_lists_parse_and_claims_are_found() {
        assert_eq!(
            parse_port_list("8080, 30000-30100"),
            Some(vec![8080..=8080, 30000..=30100])
        );
        assert_eq!(parse_port_list("70000"), None);
        assert_eq!(parse_port_list("9-1"), None);
        let lb = json!({"kind": "Service", "spec": {"type": "LoadBalancer", "ports": [{"port": 443, "nodePort": 30443}]}});
        let claim = |field: &str, address: Option<&str>, port: Option<u16>| Claim {
            field: field.to_string(),
            address: address.map(|a| a.parse().unwrap()),
            port,
        };
        assert_eq!(
            claimed_host_ports(&lb),
            vec![
                claim("spec.ports[0].nodePort", None, Some(30443)),
                claim("spec.ports[0].port", None, Some(443))
            ]
        );
        let mut on_one = lb.clone();
        on_one["spec"]["loadBalancerIP"] = json!("127.0.0.2");
        assert_eq!(
            claimed_host_ports(&on_one)[1],
            claim("spec.ports[0].port", Some("127.0.0.2"), Some(443))
        );
        let np = json!({"kind": "Service", "spec": {"type": "NodePort", "ports": [{"port": 80}]}});
        assert_eq!(
            claimed_host_ports(&np),
            vec![claim("spec.ports[0].nodePort", None, None)]
        );
        let d = json!({"kind": "Deployment", "spec": {"template": {"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80, "hostPort": 8080, "hostIP": "0.0.0.0"}]}]}}}});
        assert_eq!(
            claimed_host_ports(&d),
            vec![claim("containers[0].ports[0].hostPort", None, Some(8080))]
        );
        // Addresses: distinct ones never meet, every address meets all.
        let (a, b) = ("127.0.0.2".parse().ok(), "127.0.0.3".parse().ok());
        assert!(!addresses_meet(a, b));
        assert!(addresses_meet(a, a) && addresses_meet(None, b) && addresses_meet(a, None));
        let ns = json!({"metadata": {"annotations": {"skiff.io/host-ports": "30443,443"}}});
        let mut svc = lb.clone();
        svc["metadata"] = json!({"name": "web", "namespace": "ci"});
        assert!(host_ports_allowed(&ns, "services", &svc).is_ok());
        let e = host_ports_allowed(&json!({}), "services", &svc).unwrap_err();
        assert!(
            e.message.contains("spec.ports[0].nodePort=30443") && e.message.contains("(none)"),
            "{}",
            e.message
        );
    }
}
