//! Validation of declared objects, before anything is stored.
//!
//! Three layers, each naming the field it rejects:
//! 1. **Kubernetes schema**: the object must deserialize into its `k8s-openapi` type (types,
//!    enums of shape), and every field must be one Kubernetes knows — found by serializing the
//!    typed value back and looking for what got lost ("unknown field").
//! 2. **skiff's support**: a field Kubernetes knows but skiff does not implement is rejected by
//!    name ("not supported by skiff"), never silently ignored. The allowlist below is the one
//!    place that says what skiff implements.
//! 3. **Semantics**: names, selectors matching template labels, unique container names, ranges.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::model::kinds;

/// One rejected field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The field's path, e.g. `spec.template.spec.containers[0].image`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

fn err(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

/// Validates one declared object. `status`, if present, must already be removed.
pub fn validate(obj: &Value) -> Result<(), Vec<FieldError>> {
    let kind = obj["kind"].as_str().unwrap_or_default();
    let api_version = obj["apiVersion"].as_str().unwrap_or_default();
    if kind.is_empty() {
        return Err(vec![err("kind", "is required")]);
    }
    if api_version.is_empty() {
        return Err(vec![err("apiVersion", "is required")]);
    }
    let Some(info) = kinds::by_kind(kind) else {
        return Err(vec![err(
            "kind",
            format!(
                "unknown kind {kind:?} (apiVersion {api_version:?}); skiff serves {}",
                kinds::KINDS
                    .iter()
                    .map(|k| k.kind)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )]);
    };
    if info.api_version != api_version {
        return Err(vec![err(
            "apiVersion",
            format!(
                "{kind} is served as apiVersion {:?}, not {api_version:?}",
                info.api_version
            ),
        )]);
    }
    let roundtrip = match kind {
        "Namespace" => roundtrip::<k8s_openapi::api::core::v1::Namespace>(obj),
        "ConfigMap" => roundtrip::<k8s_openapi::api::core::v1::ConfigMap>(obj),
        "Secret" => roundtrip::<k8s_openapi::api::core::v1::Secret>(obj),
        "Pod" => roundtrip::<k8s_openapi::api::core::v1::Pod>(obj),
        "Deployment" => roundtrip::<k8s_openapi::api::apps::v1::Deployment>(obj),
        "ReplicaSet" => roundtrip::<k8s_openapi::api::apps::v1::ReplicaSet>(obj),
        "Event" => roundtrip::<k8s_openapi::api::core::v1::Event>(obj),
        "Service" => roundtrip::<k8s_openapi::api::core::v1::Service>(obj),
        "EndpointSlice" => roundtrip::<k8s_openapi::api::discovery::v1::EndpointSlice>(obj),
        "Ingress" => roundtrip::<k8s_openapi::api::networking::v1::Ingress>(obj),
        "IngressClass" => roundtrip::<k8s_openapi::api::networking::v1::IngressClass>(obj),
        _ => unreachable!("every served kind has a type"),
    }
    .map_err(|e| vec![e])?;
    let mut errors = Vec::new();
    unknown_fields(obj, &roundtrip, "", &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    allowlist(kind).check(obj, "", &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    semantics(obj, info.namespaced, &mut errors);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// The object with every field Kubernetes does not know removed (what the API server keeps
/// when asked for `fieldValidation=Ignore`).
pub fn known_fields(obj: &Value) -> Result<Value, FieldError> {
    match obj["kind"].as_str().unwrap_or_default() {
        "Namespace" => roundtrip::<k8s_openapi::api::core::v1::Namespace>(obj),
        "ConfigMap" => roundtrip::<k8s_openapi::api::core::v1::ConfigMap>(obj),
        "Secret" => roundtrip::<k8s_openapi::api::core::v1::Secret>(obj),
        "Pod" => roundtrip::<k8s_openapi::api::core::v1::Pod>(obj),
        "Deployment" => roundtrip::<k8s_openapi::api::apps::v1::Deployment>(obj),
        "ReplicaSet" => roundtrip::<k8s_openapi::api::apps::v1::ReplicaSet>(obj),
        "Event" => roundtrip::<k8s_openapi::api::core::v1::Event>(obj),
        "Service" => roundtrip::<k8s_openapi::api::core::v1::Service>(obj),
        "EndpointSlice" => roundtrip::<k8s_openapi::api::discovery::v1::EndpointSlice>(obj),
        "Ingress" => roundtrip::<k8s_openapi::api::networking::v1::Ingress>(obj),
        "IngressClass" => roundtrip::<k8s_openapi::api::networking::v1::IngressClass>(obj),
        _ => Ok(obj.clone()),
    }
}

fn roundtrip<T: DeserializeOwned + Serialize>(obj: &Value) -> Result<Value, FieldError> {
    let typed: T = serde_path_to_error::deserialize(obj.clone()).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        err(path, e.into_inner().to_string())
    })?;
    Ok(serde_json::to_value(typed).expect("k8s-openapi types serialize"))
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn unknown_fields(orig: &Value, known: &Value, path: &str, out: &mut Vec<FieldError>) {
    match (orig, known) {
        (Value::Object(o), Value::Object(k)) => {
            for (key, v) in o {
                if v.is_null() {
                    continue;
                }
                match k.get(key) {
                    None => out.push(err(join(path, key), format!("unknown field {key:?}"))),
                    Some(kv) => unknown_fields(v, kv, &join(path, key), out),
                }
            }
        }
        (Value::Array(o), Value::Array(k)) => {
            for (i, (v, kv)) in o.iter().zip(k).enumerate() {
                unknown_fields(v, kv, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// A tree of the fields skiff implements.
#[derive(Default, Debug)]
struct Allow {
    leaf: bool,
    children: BTreeMap<String, Allow>,
    any_key: Option<Box<Allow>>,
    items: Option<Box<Allow>>,
}

impl Allow {
    fn from_patterns<'a>(patterns: impl IntoIterator<Item = &'a str>) -> Allow {
        let mut root = Allow::default();
        for p in patterns {
            let mut node = &mut root;
            for seg in p.split('.') {
                let (name, list) = match seg.strip_suffix("[]") {
                    Some(n) => (n, true),
                    None => (seg, false),
                };
                node = if name == "*" {
                    node.any_key.get_or_insert_with(Default::default)
                } else {
                    node.children.entry(name.to_string()).or_default()
                };
                if list {
                    node = node.items.get_or_insert_with(Default::default);
                }
            }
            node.leaf = true;
        }
        root
    }

    fn check(&self, v: &Value, path: &str, out: &mut Vec<FieldError>) {
        if self.leaf {
            return;
        }
        match v {
            Value::Object(map) => {
                for (k, child) in map {
                    if child.is_null() {
                        continue;
                    }
                    let p = join(path, k);
                    match self.children.get(k).or(self.any_key.as_deref()) {
                        Some(node) => node.check(child, &p, out),
                        None => out.push(err(p, "field is not supported by skiff")),
                    }
                }
            }
            Value::Array(items) => {
                if let Some(node) = &self.items {
                    for (i, item) in items.iter().enumerate() {
                        node.check(item, &format!("{path}[{i}]"), out);
                    }
                }
            }
            _ => {}
        }
    }
}

const METADATA: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata.name",
    "metadata.generateName",
    "metadata.namespace",
    "metadata.labels.*",
    "metadata.annotations.*",
    "metadata.ownerReferences",
    // Set by the server; a client sending back what it read is fine (the store overwrites them).
    "metadata.uid",
    "metadata.resourceVersion",
    "metadata.generation",
    "metadata.creationTimestamp",
    "metadata.deletionTimestamp",
    "metadata.deletionGracePeriodSeconds",
];

/// Fields of a PodSpec skiff implements (relative to the spec).
const POD_SPEC: &[&str] = &[
    "containers[].name",
    "containers[].image",
    "containers[].command",
    "containers[].args",
    "containers[].workingDir",
    "containers[].env[].name",
    "containers[].env[].value",
    "containers[].env[].valueFrom.configMapKeyRef.name",
    "containers[].env[].valueFrom.configMapKeyRef.key",
    "containers[].env[].valueFrom.configMapKeyRef.optional",
    "containers[].env[].valueFrom.secretKeyRef.name",
    "containers[].env[].valueFrom.secretKeyRef.key",
    "containers[].env[].valueFrom.secretKeyRef.optional",
    "containers[].env[].valueFrom.fieldRef.fieldPath",
    "containers[].env[].valueFrom.fieldRef.apiVersion",
    "containers[].envFrom[].prefix",
    "containers[].envFrom[].configMapRef.name",
    "containers[].envFrom[].configMapRef.optional",
    "containers[].envFrom[].secretRef.name",
    "containers[].envFrom[].secretRef.optional",
    "containers[].ports[].containerPort",
    "containers[].ports[].name",
    "containers[].ports[].protocol",
    "containers[].ports[].hostPort",
    "containers[].ports[].hostIP",
    "containers[].imagePullPolicy",
    "containers[].terminationMessagePath",
    "containers[].terminationMessagePolicy",
    "containers[].resources.limits.cpu",
    "containers[].resources.limits.memory",
    "containers[].resources.requests.cpu",
    "containers[].resources.requests.memory",
    "containers[].securityContext.runAsUser",
    "containers[].securityContext.runAsGroup",
    "containers[].volumeMounts[].name",
    "containers[].volumeMounts[].mountPath",
    "containers[].volumeMounts[].readOnly",
    "containers[].volumeMounts[].subPath",
    "volumes[].name",
    "volumes[].emptyDir.medium",
    "volumes[].emptyDir.sizeLimit",
    "volumes[].hostPath.path",
    "volumes[].hostPath.type",
    "volumes[].configMap.name",
    "volumes[].configMap.items[].key",
    "volumes[].configMap.items[].path",
    "volumes[].configMap.items[].mode",
    "volumes[].configMap.defaultMode",
    "volumes[].configMap.optional",
    "volumes[].secret.secretName",
    "volumes[].secret.items[].key",
    "volumes[].secret.items[].path",
    "volumes[].secret.items[].mode",
    "volumes[].secret.defaultMode",
    "volumes[].secret.optional",
    "containers[].livenessProbe.httpGet.path",
    "containers[].livenessProbe.httpGet.port",
    "containers[].livenessProbe.httpGet.host",
    "containers[].livenessProbe.httpGet.scheme",
    "containers[].livenessProbe.httpGet.httpHeaders[].name",
    "containers[].livenessProbe.httpGet.httpHeaders[].value",
    "containers[].livenessProbe.tcpSocket.port",
    "containers[].livenessProbe.tcpSocket.host",
    "containers[].livenessProbe.exec.command",
    "containers[].livenessProbe.initialDelaySeconds",
    "containers[].livenessProbe.periodSeconds",
    "containers[].livenessProbe.timeoutSeconds",
    "containers[].livenessProbe.successThreshold",
    "containers[].livenessProbe.failureThreshold",
    "containers[].readinessProbe.httpGet.path",
    "containers[].readinessProbe.httpGet.port",
    "containers[].readinessProbe.httpGet.host",
    "containers[].readinessProbe.httpGet.scheme",
    "containers[].readinessProbe.httpGet.httpHeaders[].name",
    "containers[].readinessProbe.httpGet.httpHeaders[].value",
    "containers[].readinessProbe.tcpSocket.port",
    "containers[].readinessProbe.tcpSocket.host",
    "containers[].readinessProbe.exec.command",
    "containers[].readinessProbe.initialDelaySeconds",
    "containers[].readinessProbe.periodSeconds",
    "containers[].readinessProbe.timeoutSeconds",
    "containers[].readinessProbe.successThreshold",
    "containers[].readinessProbe.failureThreshold",
    "containers[].startupProbe.httpGet.path",
    "containers[].startupProbe.httpGet.port",
    "containers[].startupProbe.httpGet.host",
    "containers[].startupProbe.httpGet.scheme",
    "containers[].startupProbe.httpGet.httpHeaders[].name",
    "containers[].startupProbe.httpGet.httpHeaders[].value",
    "containers[].startupProbe.tcpSocket.port",
    "containers[].startupProbe.tcpSocket.host",
    "containers[].startupProbe.exec.command",
    "containers[].startupProbe.initialDelaySeconds",
    "containers[].startupProbe.periodSeconds",
    "containers[].startupProbe.timeoutSeconds",
    "containers[].startupProbe.successThreshold",
    "containers[].startupProbe.failureThreshold",
    "restartPolicy",
    "terminationGracePeriodSeconds",
    "hostNetwork",
    "dnsPolicy",
    "hostname",
    "imagePullSecrets[].name",
    "nodeName",
    "schedulerName",
];

fn allowlist(kind: &str) -> Allow {
    let mut patterns: Vec<String> = METADATA.iter().map(|s| s.to_string()).collect();
    let pod = |prefix: &'static str| POD_SPEC.iter().map(move |p| format!("{prefix}{p}"));
    match kind {
        "Namespace" => {}
        "Service" => patterns.extend(
            [
                "spec.type",
                "spec.selector.*",
                "spec.ports[].name",
                "spec.ports[].protocol",
                "spec.ports[].port",
                "spec.ports[].targetPort",
                "spec.ports[].nodePort",
                "spec.ports[].appProtocol",
                "spec.clusterIP",
                "spec.clusterIPs",
                "spec.sessionAffinity",
                "spec.ipFamilies",
                "spec.ipFamilyPolicy",
                "spec.internalTrafficPolicy",
                "spec.externalTrafficPolicy",
                "spec.allocateLoadBalancerNodePorts",
                "spec.publishNotReadyAddresses",
            ]
            .map(String::from),
        ),
        "EndpointSlice" => patterns.extend(["addressType", "endpoints", "ports"].map(String::from)),
        "IngressClass" => patterns.extend(["spec.controller"].map(String::from)),
        "Ingress" => patterns.extend(
            [
                "spec.ingressClassName",
                "spec.defaultBackend.service.name",
                "spec.defaultBackend.service.port.number",
                "spec.defaultBackend.service.port.name",
                "spec.rules[].host",
                "spec.rules[].http.paths[].path",
                "spec.rules[].http.paths[].pathType",
                "spec.rules[].http.paths[].backend.service.name",
                "spec.rules[].http.paths[].backend.service.port.number",
                "spec.rules[].http.paths[].backend.service.port.name",
                "spec.tls[].hosts",
                "spec.tls[].secretName",
            ]
            .map(String::from),
        ),
        "Event" => patterns.extend(
            [
                "involvedObject",
                "reason",
                "message",
                "source",
                "firstTimestamp",
                "lastTimestamp",
                "count",
                "type",
                "eventTime",
                "series",
                "action",
                "related",
                "reportingComponent",
                "reportingInstance",
            ]
            .map(String::from),
        ),
        "ConfigMap" => patterns.extend(["data.*", "binaryData.*", "immutable"].map(String::from)),
        "Secret" => {
            patterns.extend(["type", "data.*", "stringData.*", "immutable"].map(String::from))
        }
        "Pod" => patterns.extend(pod("spec.")),
        "Deployment" | "ReplicaSet" => {
            patterns.extend(
                [
                    "spec.replicas",
                    "spec.selector.matchLabels.*",
                    "spec.template.metadata.labels.*",
                    "spec.template.metadata.annotations.*",
                    "spec.minReadySeconds",
                    "spec.revisionHistoryLimit",
                    "spec.progressDeadlineSeconds",
                    "spec.strategy.type",
                    "spec.strategy.rollingUpdate.maxSurge",
                    "spec.strategy.rollingUpdate.maxUnavailable",
                ]
                .map(String::from),
            );
            patterns.extend(pod("spec.template.spec."));
        }
        _ => {}
    }
    Allow::from_patterns(patterns.iter().map(String::as_str))
}

/// A DNS-1123 label: lower-case alphanumerics and '-', starting and ending alphanumeric, ≤ 63.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A DNS-1123 subdomain: dot-separated labels, ≤ 253.
pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn semantics(obj: &Value, namespaced: bool, out: &mut Vec<FieldError>) {
    let kind = obj["kind"].as_str().unwrap_or_default();
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    if name.is_empty() {
        out.push(err("metadata.name", "is required"));
    } else if kind == "Namespace" {
        if !is_dns_label(name) {
            out.push(err("metadata.name", format!("{name:?} must be a DNS-1123 label (lower-case letters, digits, '-'; at most 63)")));
        }
    } else if !is_dns_subdomain(name) {
        out.push(err(
            "metadata.name",
            format!("{name:?} must be a DNS-1123 subdomain (lower-case letters, digits, '-', '.')"),
        ));
    }
    if let Some(ns) = obj["metadata"]["namespace"].as_str() {
        if !namespaced {
            out.push(err(
                "metadata.namespace",
                format!("{kind} is cluster-scoped and takes no namespace"),
            ));
        } else if !is_dns_label(ns) {
            out.push(err(
                "metadata.namespace",
                format!("{ns:?} is not a valid namespace name"),
            ));
        }
    }
    match kind {
        "Service" => service_spec(&obj["spec"], out),
        "Ingress" => ingress_spec(&obj["spec"], out),
        "Pod" => pod_spec(&obj["spec"], "spec", false, out),
        "Deployment" | "ReplicaSet" => {
            let spec = &obj["spec"];
            if let Some(r) = spec["replicas"].as_i64() {
                if r < 0 {
                    out.push(err("spec.replicas", "must be greater than or equal to 0"));
                }
            }
            let sel = &spec["selector"]["matchLabels"];
            if sel.as_object().is_none_or(|m| m.is_empty()) {
                out.push(err("spec.selector", "a non-empty matchLabels is required"));
            } else if !crate::model::meta::labels_match(
                sel,
                &spec["template"]["metadata"]["labels"],
            ) {
                out.push(err(
                    "spec.template.metadata.labels",
                    "must match spec.selector.matchLabels (`selector` does not match template `labels`)",
                ));
            }
            if let Some(t) = spec["strategy"]["type"].as_str() {
                if t != "RollingUpdate" && t != "Recreate" {
                    out.push(err(
                        "spec.strategy.type",
                        format!("{t:?} is not RollingUpdate or Recreate"),
                    ));
                }
                if t == "Recreate" && !spec["strategy"]["rollingUpdate"].is_null() {
                    out.push(err(
                        "spec.strategy.rollingUpdate",
                        "may not be given when strategy type is Recreate",
                    ));
                }
            }
            pod_spec(&spec["template"]["spec"], "spec.template.spec", true, out);
        }
        _ => {}
    }
}

fn service_spec(spec: &Value, out: &mut Vec<FieldError>) {
    let ty = spec["type"].as_str().unwrap_or("ClusterIP");
    if !["ClusterIP", "NodePort", "LoadBalancer"].contains(&ty) {
        out.push(err(
            "spec.type",
            format!("{ty:?} is not supported by skiff (ClusterIP, NodePort, LoadBalancer)"),
        ));
    }
    let headless = spec["clusterIP"].as_str() == Some("None");
    let ports = spec["ports"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if ports.is_empty() && !headless {
        out.push(err("spec.ports", "at least one port is required"));
    }
    let mut names = std::collections::HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let port = p["port"].as_i64().unwrap_or(0);
        if !(1..=65535).contains(&port) {
            out.push(err(
                format!("spec.ports[{i}].port"),
                format!("{port} is not between 1 and 65535"),
            ));
        }
        if let Some(proto) = p["protocol"].as_str() {
            if !["TCP", "UDP"].contains(&proto) {
                out.push(err(
                    format!("spec.ports[{i}].protocol"),
                    format!("{proto:?} is not supported by skiff (TCP, UDP)"),
                ));
            }
        }
        let name = p["name"].as_str().unwrap_or("");
        if ports.len() > 1 && name.is_empty() {
            out.push(err(
                format!("spec.ports[{i}].name"),
                "is required when the service has more than one port",
            ));
        } else if !names.insert(name) {
            out.push(err(
                format!("spec.ports[{i}].name"),
                format!("duplicate port name {name:?}"),
            ));
        }
    }
    if spec["sessionAffinity"]
        .as_str()
        .is_some_and(|a| a != "None")
    {
        out.push(err(
            "spec.sessionAffinity",
            "only \"None\" is supported by skiff",
        ));
    }
}

fn ingress_spec(spec: &Value, out: &mut Vec<FieldError>) {
    let backend = |b: &Value, path: &str, out: &mut Vec<FieldError>| {
        let svc = &b["service"];
        if svc["name"].as_str().is_none_or(str::is_empty) {
            out.push(err(format!("{path}.service.name"), "is required"));
        }
        if svc["port"]["number"].is_null() == svc["port"]["name"].is_null() {
            out.push(err(
                format!("{path}.service.port"),
                "exactly one of number or name is required",
            ));
        }
    };
    if !spec["defaultBackend"].is_null() {
        backend(&spec["defaultBackend"], "spec.defaultBackend", out);
    }
    for (i, r) in spec["rules"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        if let Some(host) = r["host"].as_str() {
            let bare = host.strip_prefix("*.").unwrap_or(host);
            if host.parse::<std::net::IpAddr>().is_ok() || !is_dns_subdomain(bare) {
                out.push(err(
                    format!("spec.rules[{i}].host"),
                    format!(
                        "{host:?} must be a DNS name (a wildcard only as the first label, '*.')"
                    ),
                ));
            }
        }
        for (j, p) in r["http"]["paths"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let pp = format!("spec.rules[{i}].http.paths[{j}]");
            match p["pathType"].as_str() {
                Some("Exact" | "Prefix" | "ImplementationSpecific") => {}
                Some(other) => out.push(err(
                    format!("{pp}.pathType"),
                    format!("{other:?} is not Exact, Prefix or ImplementationSpecific"),
                )),
                None => out.push(err(format!("{pp}.pathType"), "is required")),
            }
            if p["path"]
                .as_str()
                .is_some_and(|path| !path.starts_with('/'))
            {
                out.push(err(format!("{pp}.path"), "must be an absolute path"));
            }
            backend(&p["backend"], &format!("{pp}.backend"), out);
        }
    }
}

fn pod_spec(spec: &Value, path: &str, in_template: bool, out: &mut Vec<FieldError>) {
    let containers = spec["containers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if containers.is_empty() {
        out.push(err(
            format!("{path}.containers"),
            "at least one container is required",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, c) in containers.iter().enumerate() {
        let cp = format!("{path}.containers[{i}]");
        let name = c["name"].as_str().unwrap_or_default();
        if !is_dns_label(name) {
            out.push(err(
                format!("{cp}.name"),
                format!("{name:?} must be a DNS-1123 label"),
            ));
        } else if !seen.insert(name) {
            out.push(err(
                format!("{cp}.name"),
                format!("duplicate container name {name:?}"),
            ));
        }
        if c["image"].as_str().is_none_or(|s| s.trim().is_empty()) {
            out.push(err(format!("{cp}.image"), "is required"));
        }
        if let Some(p) = c["imagePullPolicy"].as_str() {
            if !["Always", "IfNotPresent", "Never"].contains(&p) {
                out.push(err(
                    format!("{cp}.imagePullPolicy"),
                    format!("{p:?} is not Always, IfNotPresent or Never"),
                ));
            }
        }
        for (j, p) in c["ports"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let port = p["containerPort"].as_i64().unwrap_or(0);
            if !(1..=65535).contains(&port) {
                out.push(err(
                    format!("{cp}.ports[{j}].containerPort"),
                    format!("{port} is not between 1 and 65535"),
                ));
            }
            if let Some(proto) = p["protocol"].as_str() {
                if !["TCP", "UDP", "SCTP"].contains(&proto) {
                    out.push(err(
                        format!("{cp}.ports[{j}].protocol"),
                        format!("{proto:?} is not TCP, UDP or SCTP"),
                    ));
                }
            }
        }
        for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
            let p = &c[probe];
            if p.is_null() {
                continue;
            }
            let handlers = ["httpGet", "tcpSocket", "exec"]
                .iter()
                .filter(|h| !p[**h].is_null())
                .count();
            if handlers != 1 {
                out.push(err(
                    format!("{cp}.{probe}"),
                    "exactly one handler is required (httpGet, tcpSocket or exec)",
                ));
            }
            if let Some(scheme) = p["httpGet"]["scheme"].as_str() {
                if scheme != "HTTP" {
                    out.push(err(
                        format!("{cp}.{probe}.httpGet.scheme"),
                        format!("{scheme:?} is not supported by skiff (HTTP)"),
                    ));
                }
            }
        }
        for (j, e) in c["env"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            if e["name"].as_str().is_none_or(str::is_empty) {
                out.push(err(format!("{cp}.env[{j}].name"), "is required"));
            }
        }
    }
    let mut volume_names = std::collections::HashSet::new();
    for (i, v) in spec["volumes"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let name = v["name"].as_str().unwrap_or_default();
        if !is_dns_label(name) {
            out.push(err(
                format!("{path}.volumes[{i}].name"),
                format!("{name:?} must be a DNS-1123 label"),
            ));
        } else if !volume_names.insert(name) {
            out.push(err(
                format!("{path}.volumes[{i}].name"),
                format!("duplicate volume name {name:?}"),
            ));
        }
        let sources = ["emptyDir", "hostPath", "configMap", "secret"]
            .iter()
            .filter(|k| v.get(**k).is_some_and(|x| !x.is_null()))
            .count();
        if sources != 1 {
            out.push(err(
                format!("{path}.volumes[{i}]"),
                "exactly one volume source is required (emptyDir, hostPath, configMap or secret)",
            ));
        }
    }
    for (i, c) in containers.iter().enumerate() {
        for (j, m) in c["volumeMounts"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let mp = format!("{path}.containers[{i}].volumeMounts[{j}]");
            let name = m["name"].as_str().unwrap_or_default();
            if !volume_names.contains(name) {
                out.push(err(
                    format!("{mp}.name"),
                    format!("volume {name:?} is not defined in the pod's volumes"),
                ));
            }
            if !m["mountPath"].as_str().is_some_and(|p| p.starts_with('/')) {
                out.push(err(format!("{mp}.mountPath"), "must be an absolute path"));
            }
            if let Some(sub) = m["subPath"].as_str() {
                if sub.starts_with('/') || sub.split('/').any(|s| s == "..") {
                    out.push(err(
                        format!("{mp}.subPath"),
                        "must be a relative path that does not contain '..'",
                    ));
                }
            }
        }
    }
    if let Some(p) = spec["restartPolicy"].as_str() {
        if !["Always", "OnFailure", "Never"].contains(&p) {
            out.push(err(
                format!("{path}.restartPolicy"),
                format!("{p:?} is not Always, OnFailure or Never"),
            ));
        } else if in_template && p != "Always" {
            out.push(err(
                format!("{path}.restartPolicy"),
                format!("{p:?}: only \"Always\" is allowed in a Deployment or ReplicaSet"),
            ));
        }
    }
    if let Some(g) = spec["terminationGracePeriodSeconds"].as_i64() {
        if g < 0 {
            out.push(err(
                format!("{path}.terminationGracePeriodSeconds"),
                "must be greater than or equal to 0",
            ));
        }
    }
    if let Some(p) = spec["dnsPolicy"].as_str() {
        if !["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"].contains(&p) {
            out.push(err(
                format!("{path}.dnsPolicy"),
                format!("{p:?} is not a DNS policy"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Value {
        json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},
          "spec":{"replicas":2,"selector":{"matchLabels":{"app":"web"}},
            "template":{"metadata":{"labels":{"app":"web"}},
              "spec":{"hostNetwork":true,"containers":[{"name":"web","image":"demo","args":["a"],
                "ports":[{"containerPort":8080}],"env":[{"name":"A","value":"b"}]}]}}}})
    }

    #[test]
    fn a_supported_deployment_passes() {
        validate(&deployment()).unwrap();
    }

    #[test]
    fn unknown_fields_are_named() {
        let mut d = deployment();
        d["spec"]["template"]["spec"]["containers"][0]["bogus"] = json!(1);
        let e = validate(&d).unwrap_err();
        assert_eq!(e[0].field, "spec.template.spec.containers[0].bogus");
        assert!(e[0].message.contains("unknown field"), "{}", e[0]);
    }

    #[test]
    fn unsupported_fields_are_named() {
        let mut d = deployment();
        d["spec"]["template"]["spec"]["containers"][0]["lifecycle"] =
            json!({"preStop":{"exec":{"command":["x"]}}});
        let e = validate(&d).unwrap_err();
        assert_eq!(e[0].field, "spec.template.spec.containers[0].lifecycle");
        assert!(e[0].message.contains("not supported"), "{}", e[0]);
    }

    #[test]
    fn type_errors_name_the_path() {
        let mut d = deployment();
        d["spec"]["replicas"] = json!("three");
        let e = validate(&d).unwrap_err();
        assert_eq!(e[0].field, "spec.replicas", "{:?}", e);
    }

    #[test]
    fn unknown_kinds_and_versions_are_named() {
        let e = validate(&json!({"apiVersion":"v1","kind":"Gizmo","metadata":{"name":"x"}}))
            .unwrap_err();
        assert!(e[0].message.contains("unknown kind \"Gizmo\""), "{}", e[0]);
        let mut d = deployment();
        d["apiVersion"] = json!("extensions/v1beta1");
        let e = validate(&d).unwrap_err();
        assert_eq!(e[0].field, "apiVersion");
    }

    #[test]
    fn selector_must_match_template() {
        let mut d = deployment();
        d["spec"]["template"]["metadata"]["labels"] = json!({"app":"other"});
        let e = validate(&d).unwrap_err();
        assert_eq!(e[0].field, "spec.template.metadata.labels");
    }
}
