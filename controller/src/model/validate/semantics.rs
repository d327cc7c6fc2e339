//! Layer 3 of validation: what the schema cannot say — names, selectors matching template
//! labels, unique container names, ranges, per-kind rules (Services, Ingresses, pod specs).

use std::collections::HashSet;

use serde_json::Value;

use super::{err, FieldError};

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

pub(super) fn semantics(obj: &Value, namespaced: bool, out: &mut Vec<FieldError>) {
    let kind = obj["kind"].as_str().unwrap_or_default();
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    if name.is_empty() {
        out.push(err("metadata.name", "is required"));
    } else if matches!(
        kind,
        "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding"
    ) {
        super::rbac::name(name, out);
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
        "Namespace" => out.extend(crate::model::podsecurity::validate_labels(
            &obj["metadata"]["labels"],
        )),
        "Service" => service_spec(&obj["spec"], out),
        "Ingress" => ingress_spec(&obj["spec"], out),
        "Pod" => pod_spec(&obj["spec"], "spec", false, out),
        "Node" => super::scheduling::node(obj, out),
        "PriorityClass" => super::scheduling::priority_class(obj, out),
        "PodDisruptionBudget" => super::daemonset::disruption_budget(&obj["spec"], out),
        "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding" => {
            super::rbac::check(obj, out)
        }
        "PersistentVolumeClaim" | "PersistentVolume" | "StorageClass" => {
            super::storage::check(obj, out)
        }
        "Deployment" | "ReplicaSet" => {
            let spec = &obj["spec"];
            workload(spec, out);
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
        "DaemonSet" => {
            workload(&obj["spec"], out);
            super::daemonset::spec(&obj["spec"], out);
            pod_spec(
                &obj["spec"]["template"]["spec"],
                "spec.template.spec",
                true,
                out,
            );
        }
        "StatefulSet" => {
            workload(&obj["spec"], out);
            super::statefulset::spec(&obj["spec"], out);
            // Each claim template is a volume of the pods (the set's pods mount its claim).
            let template = super::statefulset::with_claim_volumes(&obj["spec"]);
            pod_spec(&template, "spec.template.spec", true, out);
        }
        "NetworkPolicy" => super::netpol::check(&obj["spec"], out),
        "Job" => super::job::job(obj, out),
        "CronJob" => super::job::cronjob(obj, out),
        "HelmChart" | "HelmChartConfig" => super::helmchart::check(obj, out),
        _ => {}
    }
}

/// What every workload's spec must say: replicas ≥ 0, a selector that its template's labels
/// match.
fn workload(spec: &Value, out: &mut Vec<FieldError>) {
    if let Some(r) = spec["replicas"].as_i64() {
        if r < 0 {
            out.push(err("spec.replicas", "must be greater than or equal to 0"));
        }
    }
    let sel = &spec["selector"]["matchLabels"];
    if sel.as_object().is_none_or(|m| m.is_empty()) {
        out.push(err("spec.selector", "a non-empty matchLabels is required"));
    } else if !crate::model::meta::labels_match(sel, &spec["template"]["metadata"]["labels"]) {
        out.push(err(
            "spec.template.metadata.labels",
            "must match spec.selector.matchLabels (`selector` does not match template `labels`)",
        ));
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
        if let Some(n) = p["nodePort"].as_i64() {
            if ty == "ClusterIP" {
                out.push(err(
                    format!("spec.ports[{i}].nodePort"),
                    format!("Forbidden: may not be used when `type` is 'ClusterIP' (given {n})"),
                ));
            } else if !(30000..=32767).contains(&n) {
                out.push(err(
                    format!("spec.ports[{i}].nodePort"),
                    format!("Invalid value: {n}: provided port is not in the valid range. The range of valid ports is 30000-32767"),
                ));
            }
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
    session_affinity(spec, out);
    if let Some(ip) = spec.get("loadBalancerIP").filter(|v| !v.is_null()) {
        load_balancer_ip(ty, ip, out);
    }
    source_ranges(ty, &spec["loadBalancerSourceRanges"], out);
}

/// `loadBalancerSourceRanges`: IPv4 CIDRs, for a LoadBalancer only.
fn source_ranges(ty: &str, ranges: &Value, out: &mut Vec<FieldError>) {
    const F: &str = "spec.loadBalancerSourceRanges";
    let ranges = items(ranges);
    if !ranges.is_empty() && ty != "LoadBalancer" {
        out.push(err(
            F,
            "Forbidden: may only be used when `type` is 'LoadBalancer'",
        ));
        return;
    }
    for (i, r) in ranges.iter().enumerate() {
        if r.as_str()
            .and_then(|r| r.trim().parse::<ipnet::Ipv4Net>().ok())
            .is_none()
        {
            out.push(err(
                format!("{F}[{i}]"),
                format!("Invalid value: {r}: must be an IPv4 CIDR (like 192.168.1.0/24; IPv6 is not supported by skiff)"),
            ));
        }
    }
}

/// `sessionAffinity` and its `sessionAffinityConfig`, as Kubernetes' ValidateService words it.
fn session_affinity(spec: &Value, out: &mut Vec<FieldError>) {
    let config = &spec["sessionAffinityConfig"];
    match spec["sessionAffinity"].as_str() {
        None | Some("None") => {
            if !config.is_null() {
                out.push(err(
                    "spec.sessionAffinityConfig",
                    "Invalid value: must not be set when `sessionAffinity` is None",
                ));
            }
        }
        Some("ClientIP") => {
            let t = &config["clientIP"]["timeoutSeconds"];
            if !t.is_null() && !t.as_i64().is_some_and(|t| (1..=86400).contains(&t)) {
                out.push(err(
                    "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                    format!("Invalid value: {t}: must be greater than 0 and less than 86400"),
                ));
            }
        }
        Some(other) => out.push(err(
            "spec.sessionAffinity",
            format!("Unsupported value: {other:?}: supported values: \"ClientIP\", \"None\""),
        )),
    }
}

/// `loadBalancerIP`: the host address a LoadBalancer Service is served on. Whether it is one
/// of this host's is the node's to say (addresses come and go; the Service waits Pending).
fn load_balancer_ip(ty: &str, ip: &Value, out: &mut Vec<FieldError>) {
    const F: &str = "spec.loadBalancerIP";
    if ty != "LoadBalancer" {
        out.push(err(
            F,
            "Forbidden: may only be used when `type` is 'LoadBalancer'",
        ));
        return;
    }
    match ip.as_str().map(str::parse::<std::net::IpAddr>) {
        Some(Ok(std::net::IpAddr::V4(v4)))
            if !(v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast()) => {}
        Some(Ok(std::net::IpAddr::V4(v4))) => out.push(err(
            F,
            format!("Invalid value: {v4:?}: must be a unicast address of this host (not unspecified, multicast or broadcast)"),
        )),
        Some(Ok(std::net::IpAddr::V6(v6))) => out.push(err(
            F,
            format!("Invalid value: {v6:?}: IPv6 is not supported by skiff (an IPv4 address of this host)"),
        )),
        _ => out.push(err(
            F,
            format!("Invalid value: {ip}: must be a valid IP address"),
        )),
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

/// `seccompProfile`: RuntimeDefault, Unconfined, or Localhost with a `localhostProfile`
/// relative to the node's profiles folder (`<data-dir>/seccomp/`) that does not leave it —
/// Kubernetes' rules (`validateLocalDescendingPath`).
fn seccomp_profile(sc: &Value, path: &str, out: &mut Vec<FieldError>) {
    let local = &sc["seccompProfile"]["localhostProfile"];
    let local_path = format!("{path}.seccompProfile.localhostProfile");
    match sc["seccompProfile"]["type"].as_str() {
        None | Some("RuntimeDefault" | "Unconfined") => {
            if !local.is_null() {
                out.push(err(
                    local_path,
                    "Invalid value: can only be set when seccomp type is Localhost",
                ));
            }
        }
        Some("Localhost") => match local.as_str() {
            None | Some("") => out.push(err(
                local_path,
                "Required value: must be set when seccomp type is Localhost",
            )),
            Some(p) if p.starts_with('/') => {
                out.push(err(local_path, format!("Invalid value: {p:?}: must be a relative path")))
            }
            Some(p) if p.split('/').any(|part| part == "..") => out.push(err(
                local_path,
                format!("Invalid value: {p:?}: must not contain '..'"),
            )),
            Some(_) => {}
        },
        Some(t) => out.push(err(
            format!("{path}.seccompProfile.type"),
            format!("Unsupported value: {t:?}: supported values: \"RuntimeDefault\", \"Unconfined\", \"Localhost\""),
        )),
    }
}

/// The pod's `sysctls`: only namespaced ones (they change the pod's namespaces, never the
/// host), and not those of a namespace the pod shares with the host.
fn sysctls(spec: &Value, path: &str, out: &mut Vec<FieldError>) {
    let ipc = ["kernel.shm", "kernel.msg", "kernel.sem", "fs.mqueue."];
    for (i, s) in items(&spec["securityContext"]["sysctls"])
        .iter()
        .enumerate()
    {
        let f = format!("{path}.securityContext.sysctls[{i}].name");
        let name = s["name"].as_str().unwrap_or_default();
        let is_ipc = ipc.iter().any(|p| name.starts_with(p));
        let is_net = name.starts_with("net.");
        if !is_ipc && !is_net {
            out.push(err(f, format!("{name:?} is not a namespaced sysctl (kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*, net.*): it would change the host")));
        } else if is_net && spec["hostNetwork"] == true {
            out.push(err(
                f,
                format!(
                    "{name:?} may not be set with hostNetwork: it would change the host's network"
                ),
            ));
        } else if is_ipc && spec["hostIPC"] == true {
            out.push(err(
                f,
                format!("{name:?} may not be set with hostIPC: it would change the host's IPC"),
            ));
        } else if s["value"].as_str().is_none_or(|v| v.contains('\n')) {
            out.push(err(
                format!("{path}.securityContext.sysctls[{i}].value"),
                "is required (one line)",
            ));
        }
    }
}

pub(super) fn pod_spec(spec: &Value, path: &str, in_template: bool, out: &mut Vec<FieldError>) {
    let containers = items(&spec["containers"]);
    if containers.is_empty() {
        out.push(err(
            format!("{path}.containers"),
            "at least one container is required",
        ));
    }
    let mut seen = HashSet::new();
    let volume_names = volumes(spec, path, out);
    seccomp_profile(
        &spec["securityContext"],
        &format!("{path}.securityContext"),
        out,
    );
    sysctls(spec, path, out);
    for (field, what) in [
        ("hostPID", "the host's process namespace"),
        ("hostIPC", "the host's IPC namespace"),
    ] {
        if spec[field] == true {
            out.push(err(
                format!("{path}.{field}"),
                format!("`true` is not supported by skiff (a pod in {what}); only `false`"),
            ));
        }
    }
    for list in ["initContainers", "containers"] {
        for (i, c) in items(&spec[list]).iter().enumerate() {
            let cp = format!("{path}.{list}[{i}]");
            container_name(c, &cp, &mut seen, out);
            container(c, &cp, out);
            if list == "initContainers" {
                init_container(c, &cp, out);
            }
            volume_mounts(c, &cp, &volume_names, out);
        }
    }
    let restart = one_of(
        spec,
        path,
        "restartPolicy",
        &["Always", "OnFailure", "Never"],
        "is not Always, OnFailure or Never",
        out,
    );
    if in_template && restart.is_some_and(|p| p != "Always") {
        out.push(err(
            format!("{path}.restartPolicy"),
            format!(
                "{:?}: only \"Always\" is allowed in a Deployment, ReplicaSet, StatefulSet or DaemonSet",
                restart.unwrap_or_default()
            ),
        ));
    }
    if let Some(g) = spec["terminationGracePeriodSeconds"].as_i64() {
        if g < 0 {
            out.push(err(
                format!("{path}.terminationGracePeriodSeconds"),
                "must be greater than or equal to 0",
            ));
        }
    }
    for field in ["hostname", "subdomain"] {
        if let Some(v) = spec[field].as_str() {
            if !is_dns_label(v) {
                out.push(err(
                    format!("{path}.{field}"),
                    format!("{v:?} must be a DNS-1123 label"),
                ));
            }
        }
    }
    one_of(
        &spec["securityContext"],
        &format!("{path}.securityContext"),
        "fsGroupChangePolicy",
        &["Always", "OnRootMismatch"],
        "is not Always or OnRootMismatch",
        out,
    );
    super::scheduling::pod_spec(spec, path, out);
    let policy = one_of(
        spec,
        path,
        "dnsPolicy",
        &["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"],
        "is not a DNS policy",
        out,
    );
    dns(spec, path, policy, out);
}

/// `dnsConfig` and `hostAliases`: addresses that parse, names that are DNS names (nothing that
/// could add lines to the pod's resolv.conf or hosts file), Kubernetes' limits.
fn dns(spec: &Value, path: &str, policy: Option<&str>, out: &mut Vec<FieldError>) {
    let cfg = &spec["dnsConfig"];
    let nameservers = items(&cfg["nameservers"]);
    if policy == Some("None") && nameservers.is_empty() {
        out.push(err(
            format!("{path}.dnsConfig.nameservers"),
            "must provide at least one DNS nameserver when `dnsPolicy` is None",
        ));
    }
    if nameservers.len() > 3 {
        out.push(err(
            format!("{path}.dnsConfig.nameservers"),
            "must not have more than 3 nameservers",
        ));
    }
    let is_ip = |v: &Value| {
        v.as_str()
            .is_some_and(|s| s.parse::<std::net::IpAddr>().is_ok())
    };
    for (i, n) in nameservers.iter().enumerate() {
        if !is_ip(n) {
            out.push(err(
                format!("{path}.dnsConfig.nameservers[{i}]"),
                format!("{n} must be a valid IP address"),
            ));
        }
    }
    let searches = items(&cfg["searches"]);
    if searches.len() > 32 {
        out.push(err(
            format!("{path}.dnsConfig.searches"),
            "must not have more than 32 search paths",
        ));
    }
    let is_name = |v: &Value| {
        v.as_str()
            .is_some_and(|s| is_dns_subdomain(s.strip_suffix('.').unwrap_or(s)))
    };
    for (i, s) in searches.iter().enumerate() {
        if !is_name(s) {
            out.push(err(
                format!("{path}.dnsConfig.searches[{i}]"),
                format!("{s} must be a DNS subdomain"),
            ));
        }
    }
    for (i, o) in items(&cfg["options"]).iter().enumerate() {
        let word = |v: &Value| {
            v.as_str()
                .is_some_and(|s| !s.is_empty() && !s.contains(char::is_whitespace))
        };
        if !word(&o["name"]) {
            out.push(err(
                format!("{path}.dnsConfig.options[{i}].name"),
                "is required (one word)",
            ));
        }
        if !o["value"].is_null() && !word(&o["value"]) {
            out.push(err(
                format!("{path}.dnsConfig.options[{i}].value"),
                "must be one word",
            ));
        }
    }
    for (i, a) in items(&spec["hostAliases"]).iter().enumerate() {
        if !is_ip(&a["ip"]) {
            out.push(err(
                format!("{path}.hostAliases[{i}].ip"),
                format!("{} must be a valid IP address", a["ip"]),
            ));
        }
        for (j, h) in items(&a["hostnames"]).iter().enumerate() {
            if !is_name(h) {
                out.push(err(
                    format!("{path}.hostAliases[{i}].hostnames[{j}]"),
                    format!("{h} must be a DNS subdomain"),
                ));
            }
        }
    }
}

/// A container's name: a DNS label, unique among the pod's init and app containers.
fn container_name<'a>(
    c: &'a Value,
    cp: &str,
    seen: &mut HashSet<&'a str>,
    out: &mut Vec<FieldError>,
) {
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
}

/// What an init container may have: `restartPolicy` only `Always` (a sidecar, Kubernetes
/// 1.29+); probes and `lifecycle` only on a sidecar (the others run to completion), in
/// Kubernetes' words.
fn init_container(c: &Value, cp: &str, out: &mut Vec<FieldError>) {
    let sidecar = match &c["restartPolicy"] {
        Value::Null => false,
        Value::String(p) if p == "Always" => true,
        other => {
            out.push(err(
                format!("{cp}.restartPolicy"),
                format!("Unsupported value: {other}: supported values: \"Always\""),
            ));
            false
        }
    };
    if sidecar {
        return;
    }
    for probe in [
        "livenessProbe",
        "readinessProbe",
        "startupProbe",
        "lifecycle",
    ] {
        if !c[probe].is_null() {
            out.push(err(
                format!("{cp}.{probe}"),
                "Forbidden: may not be set for init containers without restartPolicy=Always",
            ));
        }
    }
}

/// The elements of a list field (none when absent).
pub(super) fn items(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

/// Checks that `obj.field`, when given, is one of `allowed`; returns it if it is.
pub(super) fn one_of<'a>(
    obj: &'a Value,
    path: &str,
    field: &str,
    allowed: &[&str],
    message: &str,
    out: &mut Vec<FieldError>,
) -> Option<&'a str> {
    let v = obj[field].as_str()?;
    if allowed.contains(&v) {
        return Some(v);
    }
    out.push(err(format!("{path}.{field}"), format!("{v:?} {message}")));
    None
}

/// One container's image, pull policy, ports, probes and environment.
fn container(c: &Value, cp: &str, out: &mut Vec<FieldError>) {
    if c["image"].as_str().is_none_or(|s| s.trim().is_empty()) {
        out.push(err(format!("{cp}.image"), "is required"));
    }
    one_of(
        c,
        cp,
        "imagePullPolicy",
        &["Always", "IfNotPresent", "Never"],
        "is not Always, IfNotPresent or Never",
        out,
    );
    for (j, p) in items(&c["ports"]).iter().enumerate() {
        let port = p["containerPort"].as_i64().unwrap_or(0);
        if !(1..=65535).contains(&port) {
            out.push(err(
                format!("{cp}.ports[{j}].containerPort"),
                format!("{port} is not between 1 and 65535"),
            ));
        }
        if let Some(h) = p["hostPort"].as_i64().filter(|h| !(0..=65535).contains(h)) {
            out.push(err(
                format!("{cp}.ports[{j}].hostPort"),
                format!("{h} is not between 1 and 65535"),
            ));
        }
        one_of(
            p,
            &format!("{cp}.ports[{j}]"),
            "protocol",
            &["TCP", "UDP", "SCTP"],
            "is not TCP, UDP or SCTP",
            out,
        );
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        let p = &c[probe];
        if p.is_null() {
            continue;
        }
        let handlers = ["httpGet", "tcpSocket", "exec", "grpc"]
            .iter()
            .filter(|h| !p[**h].is_null())
            .count();
        if handlers != 1 {
            out.push(err(
                format!("{cp}.{probe}"),
                "exactly one handler is required (httpGet, tcpSocket, exec or grpc)",
            ));
        }
        if let Some(port) = p["grpc"]["port"].as_i64() {
            if !(1..=65535).contains(&port) {
                out.push(err(
                    format!("{cp}.{probe}.grpc.port"),
                    format!("{port} is not between 1 and 65535"),
                ));
            }
        }
        http_get(&p["httpGet"], &format!("{cp}.{probe}.httpGet"), out);
    }
    for hook in ["postStart", "preStop"] {
        let h = &c["lifecycle"][hook];
        if h.is_null() {
            continue;
        }
        let hp = format!("{cp}.lifecycle.{hook}");
        let handlers = ["exec", "httpGet", "sleep"]
            .iter()
            .filter(|k| !h[**k].is_null())
            .count();
        if handlers != 1 {
            out.push(err(
                hp.clone(),
                "exactly one handler is required (exec, httpGet or sleep)",
            ));
        }
        // The node makes the request: only to the pod's own address.
        if h["httpGet"]["host"].as_str().is_some_and(|s| !s.is_empty()) {
            out.push(err(
                format!("{hp}.httpGet.host"),
                "is not supported by skiff: a hook's request goes to the pod's own address (leave host empty)",
            ));
        }
        http_get(&h["httpGet"], &format!("{hp}.httpGet"), out);
        if h["sleep"]["seconds"].as_i64().is_some_and(|s| s < 0) {
            out.push(err(
                format!("{hp}.sleep.seconds"),
                "must be greater than or equal to 0",
            ));
        }
    }
    one_of(
        &c["securityContext"],
        &format!("{cp}.securityContext"),
        "procMount",
        &["Default", "Unmasked"],
        "is not Default or Unmasked",
        out,
    );
    seccomp_profile(&c["securityContext"], &format!("{cp}.securityContext"), out);
    for (j, e) in items(&c["env"]).iter().enumerate() {
        if e["name"].as_str().is_none_or(str::is_empty) {
            out.push(err(format!("{cp}.env[{j}].name"), "is required"));
        }
    }
}

/// An `httpGet` action of a probe or hook: HTTP only, and no CR or LF in the path or headers
/// (they would smuggle lines into the request the node sends).
fn http_get(h: &Value, path: &str, out: &mut Vec<FieldError>) {
    if h.is_null() {
        return;
    }
    one_of(
        h,
        path,
        "scheme",
        &["HTTP"],
        "is not supported by skiff (HTTP)",
        out,
    );
    let has_newline = |v: &Value| v.as_str().is_some_and(|s| s.contains(['\r', '\n']));
    if has_newline(&h["path"]) {
        out.push(err(format!("{path}.path"), "must not contain CR or LF"));
    }
    for (i, hdr) in items(&h["httpHeaders"]).iter().enumerate() {
        for field in ["name", "value"] {
            if has_newline(&hdr[field]) {
                out.push(err(
                    format!("{path}.httpHeaders[{i}].{field}"),
                    "must not contain CR or LF",
                ));
            }
        }
    }
}

/// The volume sources skiff implements.
const SOURCES: &[&str] = &[
    "emptyDir",
    "hostPath",
    "configMap",
    "secret",
    "persistentVolumeClaim",
    "projected",
];

/// The sources of a `projected` volume skiff implements (each item names exactly one).
const PROJECTED: &[&str] = &["serviceAccountToken", "configMap", "secret", "downwardAPI"];

/// A projected volume's sources: one kind each, a token at least 10 minutes long, downward
/// API fields the node can read.
fn projected(v: &Value, at: &str, out: &mut Vec<FieldError>) {
    for (j, src) in items(&v["sources"]).iter().enumerate() {
        let sp = format!("{at}.sources[{j}]");
        let n = PROJECTED.iter().filter(|k| src[**k].is_object()).count();
        if n != 1 {
            out.push(err(
                &sp,
                "exactly one of serviceAccountToken, configMap, secret or downwardAPI is required",
            ));
        }
        let token = &src["serviceAccountToken"];
        if token.is_object() {
            if token["path"].as_str().unwrap_or_default().is_empty() {
                out.push(err(
                    format!("{sp}.serviceAccountToken.path"),
                    "Required value",
                ));
            }
            if token["expirationSeconds"].as_i64().is_some_and(|s| s < 600) {
                out.push(err(
                    format!("{sp}.serviceAccountToken.expirationSeconds"),
                    "Invalid value: may not specify a duration less than 10 minutes",
                ));
            }
        }
        for (k, item) in items(&src["downwardAPI"]["items"]).iter().enumerate() {
            let field = item["fieldRef"]["fieldPath"].as_str().unwrap_or_default();
            let known = matches!(
                field,
                "metadata.name" | "metadata.namespace" | "metadata.uid"
            ) || field.starts_with("metadata.labels['")
                || field.starts_with("metadata.annotations['");
            if !known {
                out.push(err(
                    format!("{sp}.downwardAPI.items[{k}].fieldRef.fieldPath"),
                    format!("{field:?} is not supported by skiff in a volume (metadata.name, metadata.namespace, metadata.uid, metadata.labels['…'], metadata.annotations['…'])"),
                ));
            }
        }
    }
}

/// The pod's volumes: names unique DNS labels, exactly one source each. Returns the names.
fn volumes<'a>(spec: &'a Value, path: &str, out: &mut Vec<FieldError>) -> HashSet<&'a str> {
    let mut names = HashSet::new();
    for (i, v) in items(&spec["volumes"]).iter().enumerate() {
        let name = v["name"].as_str().unwrap_or_default();
        if !is_dns_label(name) {
            out.push(err(
                format!("{path}.volumes[{i}].name"),
                format!("{name:?} must be a DNS-1123 label"),
            ));
        } else if !names.insert(name) {
            out.push(err(
                format!("{path}.volumes[{i}].name"),
                format!("duplicate volume name {name:?}"),
            ));
        }
        let sources = SOURCES
            .iter()
            .filter(|k| v.get(**k).is_some_and(|x| !x.is_null()))
            .count();
        if sources != 1 {
            out.push(err(
                format!("{path}.volumes[{i}]"),
                "exactly one volume source is required (emptyDir, hostPath, configMap, secret, persistentVolumeClaim or projected)",
            ));
        }
        if v["projected"].is_object() {
            projected(
                &v["projected"],
                &format!("{path}.volumes[{i}].projected"),
                out,
            );
        }
        let claim = &v["persistentVolumeClaim"];
        if claim.is_object() && !claim["claimName"].as_str().is_some_and(is_dns_subdomain) {
            out.push(err(
                format!("{path}.volumes[{i}].persistentVolumeClaim.claimName"),
                "Required value: a claim's name",
            ));
        }
    }
    names
}

/// A container's mounts: of a defined volume, at an absolute path, a `subPath` that stays in.
fn volume_mounts(c: &Value, cp: &str, volumes: &HashSet<&str>, out: &mut Vec<FieldError>) {
    for (j, m) in items(&c["volumeMounts"]).iter().enumerate() {
        let mp = format!("{cp}.volumeMounts[{j}]");
        let name = m["name"].as_str().unwrap_or_default();
        if !volumes.contains(name) {
            out.push(err(
                format!("{mp}.name"),
                format!("volume {name:?} is not defined in the pod's volumes"),
            ));
        }
        if !m["mountPath"].as_str().is_some_and(|p| p.starts_with('/')) {
            out.push(err(format!("{mp}.mountPath"), "must be an absolute path"));
        }
        for field in ["subPath", "subPathExpr"] {
            if let Some(sub) = m[field].as_str() {
                if sub.starts_with('/') || sub.split('/').any(|s| s == "..") {
                    out.push(err(
                        format!("{mp}.{field}"),
                        "must be a relative path that does not contain '..'",
                    ));
                }
            }
        }
        if m["subPath"].as_str().is_some_and(|s| !s.is_empty())
            && m["subPathExpr"].as_str().is_some_and(|s| !s.is_empty())
        {
            out.push(err(
                format!("{mp}.subPathExpr"),
                "Invalid value: subPathExpr and subPath are mutually exclusive",
            ));
        }
    }
}
