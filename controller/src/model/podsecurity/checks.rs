//! The Pod Security Standards' checks, one pure function each, as the upstream
//! `pod-security-admission` "policy" package defines them (same ids, levels, the version each
//! appeared in, the checks a restricted one overrides, and the same reason and detail
//! wording). They read the pod's metadata and spec as JSON, as skiff keeps objects.

use std::collections::BTreeSet;

use serde_json::Value;

use super::Level;

/// A failed check: the reason (`host namespaces`) and its detail (`hostNetwork=true`).
pub type Violation = (String, String);

/// One check of the table.
pub struct Check {
    /// Upstream's id.
    pub id: &'static str,
    /// The level that applies it (restricted applies the baseline ones too).
    pub level: Level,
    /// The Kubernetes minor version (1.x) it appeared in.
    pub since: u32,
    /// Baseline checks this (restricted) one replaces, from `since` on.
    pub overrides: &'static [&'static str],
    /// The check itself: pod metadata, pod spec, the version evaluated (minor).
    pub run: fn(&Value, &Value, u32) -> Option<Violation>,
}

/// Every check, in upstream's order (its files' order).
pub const CHECKS: &[Check] = &[
    Check {
        id: "allowPrivilegeEscalation",
        level: Level::Restricted,
        since: 8,
        overrides: &[],
        run: allow_privilege_escalation,
    },
    Check {
        id: "appArmorProfile",
        level: Level::Baseline,
        since: 0,
        overrides: &[],
        run: app_armor,
    },
    Check {
        id: "capabilities_baseline",
        level: Level::Baseline,
        since: 0,
        overrides: &[],
        run: capabilities_baseline,
    },
    Check {
        id: "capabilities_restricted",
        level: Level::Restricted,
        since: 22,
        overrides: &["capabilities_baseline"],
        run: capabilities_restricted,
    },
    Check {
        id: "hostNamespaces",
        level: Level::Baseline,
        since: 0,
        overrides: &[],
        run: host_namespaces,
    },
    Check {
        id: "hostPathVolumes",
        level: Level::Baseline,
        since: 0,
        overrides: &[],
        run: host_path_volumes,
    },
    Check {
        id: "hostPorts",
        level: Level::Baseline,
        since: 0,
        overrides: &[],
        run: host_ports,
    },
    Check {
        id: "hostProbesAndHostLifecycle",
        level: Level::Baseline,
        since: 34,
        overrides: &[],
        run: host_probes,
    },
    Check {
        id: "privileged",
        level: Level::Baseline,
        since: 0,
        overrides: &[],
        run: privileged,
    },
    Check {
        id: "procMount",
        level: Level::Baseline,
        since: 0,
        overrides: &[],
        run: proc_mount,
    },
    Check {
        id: "procMount_restricted",
        level: Level::Restricted,
        since: 35,
        overrides: &["procMount"],
        run: proc_mount,
    },
    Check {
        id: "restrictedVolumes",
        level: Level::Restricted,
        since: 0,
        overrides: &["hostPathVolumes"],
        run: restricted_volumes,
    },
    Check {
        id: "runAsNonRoot",
        level: Level::Restricted,
        since: 0,
        overrides: &[],
        run: run_as_non_root,
    },
    Check {
        id: "runAsUser",
        level: Level::Restricted,
        since: 23,
        overrides: &[],
        run: run_as_user,
    },
    Check {
        id: "seLinuxOptions",
        level: Level::Baseline,
        since: 0,
        overrides: &[],
        run: se_linux_options,
    },
    Check {
        id: "seccompProfile_baseline",
        level: Level::Baseline,
        since: 0,
        overrides: &[],
        run: seccomp_baseline,
    },
    Check {
        id: "seccompProfile_restricted",
        level: Level::Restricted,
        since: 19,
        overrides: &["seccompProfile_baseline"],
        run: seccomp_restricted,
    },
    Check {
        id: "sysctls",
        level: Level::Baseline,
        since: 0,
        overrides: &[],
        run: sysctls,
    },
    Check {
        id: "windowsHostProcess",
        level: Level::Baseline,
        since: 0,
        overrides: &[],
        run: windows_host_process,
    },
];

fn join_quote<S: AsRef<str>>(items: &[S]) -> String {
    items
        .iter()
        .map(|s| format!("\"{}\"", s.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn pluralize<'a>(one: &'a str, many: &'a str, n: usize) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// `container "a"` / `containers "a", "b"`.
fn containers_named(names: &[String]) -> String {
    format!(
        "{} {}",
        pluralize("container", "containers", names.len()),
        join_quote(names)
    )
}

/// Init, app and ephemeral containers, as upstream's visitor.
fn containers(spec: &Value) -> impl Iterator<Item = &Value> {
    ["initContainers", "containers", "ephemeralContainers"]
        .into_iter()
        .flat_map(move |k| spec[k].as_array().into_iter().flatten())
}

fn name(c: &Value) -> String {
    c["name"].as_str().unwrap_or_default().to_string()
}

fn is_true(v: &Value) -> bool {
    v.as_bool() == Some(true)
}

/// Names of the containers for which `bad` holds.
fn bad_containers(spec: &Value, bad: impl Fn(&Value) -> bool) -> Vec<String> {
    containers(spec).filter(|c| bad(c)).map(name).collect()
}

fn violation(reason: impl Into<String>, detail: impl Into<String>) -> Option<Violation> {
    Some((reason.into(), detail.into()))
}

fn allow_privilege_escalation(_: &Value, spec: &Value, _: u32) -> Option<Violation> {
    let bad = bad_containers(spec, |c| {
        c["securityContext"]["allowPrivilegeEscalation"].as_bool() != Some(false)
    });
    if bad.is_empty() {
        return None;
    }
    violation(
        "allowPrivilegeEscalation != false",
        format!(
            "{} must set securityContext.allowPrivilegeEscalation=false",
            containers_named(&bad)
        ),
    )
}

fn app_armor(meta: &Value, spec: &Value, _: u32) -> Option<Violation> {
    let allowed = |t: &Value| matches!(t.as_str(), Some("RuntimeDefault" | "Localhost"));
    let mut setters = Vec::new();
    let mut values = BTreeSet::new();
    let pod = &spec["securityContext"]["appArmorProfile"];
    if pod.is_object() && !allowed(&pod["type"]) {
        setters.push("pod".to_string());
        values.insert(pod["type"].as_str().unwrap_or_default().to_string());
    }
    let bad = bad_containers(spec, |c| {
        let p = &c["securityContext"]["appArmorProfile"];
        p.is_object() && !allowed(&p["type"])
    });
    for c in containers(spec) {
        let p = &c["securityContext"]["appArmorProfile"];
        if p.is_object() && !allowed(&p["type"]) {
            values.insert(p["type"].as_str().unwrap_or_default().to_string());
        }
    }
    if !bad.is_empty() {
        setters.push(containers_named(&bad));
    }
    let mut values: Vec<String> = values.into_iter().collect();
    let mut annotations: Vec<String> = meta["annotations"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.starts_with("container.apparmor.security.beta.kubernetes.io/"))
        .filter_map(|(k, v)| {
            let v = v.as_str().unwrap_or_default();
            let ok = v.is_empty() || v == "runtime/default" || v.starts_with("localhost/");
            (!ok).then(|| format!("{k}={v:?}"))
        })
        .collect();
    if !annotations.is_empty() {
        annotations.sort();
        setters.push(pluralize("annotation", "annotations", annotations.len()).to_string());
        values.extend(annotations);
    }
    if setters.is_empty() {
        return None;
    }
    violation(
        pluralize(
            "forbidden AppArmor profile",
            "forbidden AppArmor profiles",
            values.len(),
        ),
        format!(
            "{} must not set AppArmor profile type to {}",
            setters.join(" and "),
            join_quote(&values)
        ),
    )
}

const BASELINE_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

fn added(c: &Value) -> impl Iterator<Item = &str> {
    c["securityContext"]["capabilities"]["add"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

/// Containers adding a capability outside `allowed`, and those capabilities.
fn adding_beyond(spec: &Value, allowed: &[&str]) -> (Vec<String>, Vec<String>) {
    let mut caps = BTreeSet::new();
    let mut bad = Vec::new();
    for c in containers(spec) {
        let beyond: Vec<&str> = added(c).filter(|a| !allowed.contains(a)).collect();
        if !beyond.is_empty() {
            bad.push(name(c));
            caps.extend(beyond.into_iter().map(String::from));
        }
    }
    (bad, caps.into_iter().collect())
}

fn capabilities_baseline(_: &Value, spec: &Value, _: u32) -> Option<Violation> {
    let (bad, caps) = adding_beyond(spec, BASELINE_CAPABILITIES);
    if bad.is_empty() {
        return None;
    }
    violation(
        "non-default capabilities",
        format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_named(&bad),
            join_quote(&caps)
        ),
    )
}

fn capabilities_restricted(_: &Value, spec: &Value, _: u32) -> Option<Violation> {
    let missing_drop_all = bad_containers(spec, |c| {
        !c["securityContext"]["capabilities"]["drop"]
            .as_array()
            .is_some_and(|d| d.iter().any(|x| x == "ALL"))
    });
    let (adding, caps) = adding_beyond(spec, &["NET_BIND_SERVICE"]);
    let mut details = Vec::new();
    if !missing_drop_all.is_empty() {
        details.push(format!(
            "{} must set securityContext.capabilities.drop=[\"ALL\"]",
            containers_named(&missing_drop_all)
        ));
    }
    if !adding.is_empty() {
        details.push(format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_named(&adding),
            join_quote(&caps)
        ));
    }
    if details.is_empty() {
        return None;
    }
    violation("unrestricted capabilities", details.join("; "))
}

fn host_namespaces(_: &Value, spec: &Value, _: u32) -> Option<Violation> {
    let on: Vec<String> = ["hostNetwork", "hostPID", "hostIPC"]
        .into_iter()
        .filter(|k| is_true(&spec[*k]))
        .map(|k| format!("{k}=true"))
        .collect();
    if on.is_empty() {
        return None;
    }
    violation("host namespaces", on.join(", "))
}

fn host_path_volumes(_: &Value, spec: &Value, _: u32) -> Option<Violation> {
    let bad: Vec<String> = spec["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["hostPath"].is_object())
        .map(name)
        .collect();
    if bad.is_empty() {
        return None;
    }
    violation(
        "hostPath volumes",
        format!(
            "{} {}",
            pluralize("volume", "volumes", bad.len()),
            join_quote(&bad)
        ),
    )
}

fn host_ports(_: &Value, spec: &Value, _: u32) -> Option<Violation> {
    let mut ports = BTreeSet::new();
    let mut bad = Vec::new();
    for c in containers(spec) {
        let used: Vec<String> = c["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["hostPort"].as_i64().filter(|h| *h != 0))
            .map(|h| h.to_string())
            .collect();
        if !used.is_empty() {
            bad.push(name(c));
            ports.extend(used);
        }
    }
    if bad.is_empty() {
        return None;
    }
    let ports: Vec<String> = ports.into_iter().collect();
    violation(
        "hostPort",
        format!(
            "{} {} {} {}",
            containers_named(&bad),
            pluralize("uses", "use", bad.len()),
            pluralize("hostPort", "hostPorts", ports.len()),
            ports.join(", ")
        ),
    )
}

fn host_probes(_: &Value, spec: &Value, _: u32) -> Option<Violation> {
    let mut bad = BTreeSet::new();
    let mut hosts = BTreeSet::new();
    for c in containers(spec) {
        let handlers = ["livenessProbe", "readinessProbe", "startupProbe"]
            .iter()
            .map(|p| &c[*p])
            .chain(["postStart", "preStop"].iter().map(|h| &c["lifecycle"][*h]));
        for h in handlers {
            for kind in ["httpGet", "tcpSocket"] {
                if let Some(host) = h[kind]["host"].as_str().filter(|s| !s.is_empty()) {
                    bad.insert(name(c));
                    hosts.insert(host.to_string());
                }
            }
        }
    }
    if bad.is_empty() {
        return None;
    }
    let bad: Vec<String> = bad.into_iter().collect();
    let hosts: Vec<String> = hosts.into_iter().collect();
    violation(
        "probe or lifecycle host",
        format!(
            "{} {} {} {}",
            containers_named(&bad),
            pluralize("uses", "use", bad.len()),
            pluralize(
                "probe or lifecycle host",
                "probe or lifecycle hosts",
                hosts.len()
            ),
            join_quote(&hosts)
        ),
    )
}

fn privileged(_: &Value, spec: &Value, _: u32) -> Option<Violation> {
    let bad = bad_containers(spec, |c| is_true(&c["securityContext"]["privileged"]));
    if bad.is_empty() {
        return None;
    }
    violation(
        "privileged",
        format!(
            "{} must not set securityContext.privileged=true",
            containers_named(&bad)
        ),
    )
}

fn proc_mount(_: &Value, spec: &Value, _: u32) -> Option<Violation> {
    let mut types = BTreeSet::new();
    let bad = bad_containers(spec, |c| {
        c["securityContext"]["procMount"]
            .as_str()
            .is_some_and(|t| t != "Default")
    });
    for c in containers(spec) {
        if let Some(t) = c["securityContext"]["procMount"]
            .as_str()
            .filter(|t| *t != "Default")
        {
            types.insert(t.to_string());
        }
    }
    if bad.is_empty() {
        return None;
    }
    let types: Vec<String> = types.into_iter().collect();
    violation(
        "procMount",
        format!(
            "{} must not set securityContext.procMount to {}",
            containers_named(&bad),
            join_quote(&types)
        ),
    )
}

/// The volume sources the restricted level allows.
const RESTRICTED_VOLUMES_OK: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "image",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

fn restricted_volumes(_: &Value, spec: &Value, _: u32) -> Option<Violation> {
    let mut bad = Vec::new();
    let mut types = BTreeSet::new();
    for v in spec["volumes"].as_array().into_iter().flatten() {
        let sources: Vec<&String> = v
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, val)| *k != "name" && !val.is_null())
            .map(|(k, _)| k)
            .collect();
        if sources
            .iter()
            .any(|s| RESTRICTED_VOLUMES_OK.contains(&s.as_str()))
        {
            continue;
        }
        bad.push(name(v));
        types.insert(
            sources
                .first()
                .map_or("unknown".to_string(), |s| s.to_string()),
        );
    }
    if bad.is_empty() {
        return None;
    }
    let types: Vec<String> = types.into_iter().collect();
    violation(
        "restricted volume types",
        format!(
            "{} {} {} {} {}",
            pluralize("volume", "volumes", bad.len()),
            join_quote(&bad),
            pluralize("uses", "use", bad.len()),
            pluralize(
                "restricted volume type",
                "restricted volume types",
                types.len()
            ),
            join_quote(&types)
        ),
    )
}

/// Setters (`pod`, `containers "a"`) for which `field` of the securityContext is `bad`.
fn explicit_setters(spec: &Value, field: &str, bad: impl Fn(&Value) -> bool) -> Vec<String> {
    let mut setters = Vec::new();
    if bad(&spec["securityContext"][field]) {
        setters.push("pod".to_string());
    }
    let containers = bad_containers(spec, |c| bad(&c["securityContext"][field]));
    if !containers.is_empty() {
        setters.push(containers_named(&containers));
    }
    setters
}

fn run_as_non_root(_: &Value, spec: &Value, _: u32) -> Option<Violation> {
    let reason = "runAsNonRoot != true";
    let setters = explicit_setters(spec, "runAsNonRoot", |v| v.as_bool() == Some(false));
    if !setters.is_empty() {
        return violation(
            reason,
            format!(
                "{} must not set securityContext.runAsNonRoot=false",
                setters.join(" and ")
            ),
        );
    }
    if is_true(&spec["securityContext"]["runAsNonRoot"]) {
        return None;
    }
    let implicit = bad_containers(spec, |c| c["securityContext"]["runAsNonRoot"].is_null());
    if implicit.is_empty() {
        return None;
    }
    violation(
        reason,
        format!(
            "pod or {} must set securityContext.runAsNonRoot=true",
            containers_named(&implicit)
        ),
    )
}

fn run_as_user(_: &Value, spec: &Value, _: u32) -> Option<Violation> {
    let setters = explicit_setters(spec, "runAsUser", |v| v.as_i64() == Some(0));
    if setters.is_empty() {
        return None;
    }
    violation(
        "runAsUser=0",
        format!("{} must not set runAsUser=0", setters.join(" and ")),
    )
}

fn se_linux_options(_: &Value, spec: &Value, minor: u32) -> Option<Violation> {
    let mut allowed = vec!["", "container_t", "container_init_t", "container_kvm_t"];
    if minor >= 31 {
        allowed.push("container_engine_t");
    }
    let mut types = BTreeSet::new();
    let (mut user, mut role) = (false, false);
    let mut check = |o: &Value| {
        if !o.is_object() {
            return false;
        }
        let t = o["type"].as_str().unwrap_or_default();
        let mut ok = true;
        if !allowed.contains(&t) {
            ok = false;
            types.insert(t.to_string());
        }
        if o["user"].as_str().is_some_and(|s| !s.is_empty()) {
            ok = false;
            user = true;
        }
        if o["role"].as_str().is_some_and(|s| !s.is_empty()) {
            ok = false;
            role = true;
        }
        !ok
    };
    let mut setters = Vec::new();
    if check(&spec["securityContext"]["seLinuxOptions"]) {
        setters.push("pod".to_string());
    }
    let mut bad = Vec::new();
    for c in containers(spec) {
        if check(&c["securityContext"]["seLinuxOptions"]) {
            bad.push(name(c));
        }
    }
    if !bad.is_empty() {
        setters.push(containers_named(&bad));
    }
    if setters.is_empty() {
        return None;
    }
    let types: Vec<String> = types.into_iter().collect();
    let mut data = Vec::new();
    if !types.is_empty() {
        data.push(format!(
            "{} {}",
            pluralize("type", "types", types.len()),
            join_quote(&types)
        ));
    }
    if user {
        data.push("user may not be set".to_string());
    }
    if role {
        data.push("role may not be set".to_string());
    }
    violation(
        "seLinuxOptions",
        format!(
            "{} set forbidden securityContext.seLinuxOptions: {}",
            setters.join(" and "),
            data.join("; ")
        ),
    )
}

fn seccomp_type_ok(t: &Value) -> bool {
    matches!(t.as_str(), Some("RuntimeDefault" | "Localhost"))
}

/// Explicitly bad seccomp setters and their values.
fn seccomp_explicit(spec: &Value) -> (Vec<String>, Vec<String>) {
    let profile_bad = |p: &Value| p.is_object() && !seccomp_type_ok(&p["type"]);
    let setters = explicit_setters(spec, "seccompProfile", profile_bad);
    let mut values = BTreeSet::new();
    let pod = &spec["securityContext"]["seccompProfile"];
    for p in std::iter::once(pod)
        .chain(containers(spec).map(|c| &c["securityContext"]["seccompProfile"]))
    {
        if profile_bad(p) {
            values.insert(p["type"].as_str().unwrap_or_default().to_string());
        }
    }
    (setters, values.into_iter().collect())
}

fn seccomp_baseline(_: &Value, spec: &Value, _: u32) -> Option<Violation> {
    let (setters, values) = seccomp_explicit(spec);
    if setters.is_empty() {
        return None;
    }
    violation(
        "seccompProfile",
        format!(
            "{} must not set securityContext.seccompProfile.type to {}",
            setters.join(" and "),
            join_quote(&values)
        ),
    )
}

fn seccomp_restricted(meta: &Value, spec: &Value, minor: u32) -> Option<Violation> {
    if let Some(v) = seccomp_baseline(meta, spec, minor) {
        return Some(v);
    }
    if seccomp_type_ok(&spec["securityContext"]["seccompProfile"]["type"]) {
        return None;
    }
    let implicit = bad_containers(spec, |c| {
        !c["securityContext"]["seccompProfile"].is_object()
    });
    if implicit.is_empty() {
        return None;
    }
    violation(
        "seccompProfile",
        format!(
            "pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
            containers_named(&implicit)
        ),
    )
}

/// The sysctls the baseline level allows at version 1.`minor` (namespaced, and safe).
pub fn safe_sysctls(minor: u32) -> Vec<&'static str> {
    let mut s = vec![
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_unprivileged_port_start",
    ];
    if minor >= 27 {
        s.push("net.ipv4.ip_local_reserved_ports");
    }
    if minor >= 29 {
        s.extend([
            "net.ipv4.tcp_keepalive_time",
            "net.ipv4.tcp_fin_timeout",
            "net.ipv4.tcp_keepalive_intvl",
            "net.ipv4.tcp_keepalive_probes",
        ]);
    }
    if minor >= 32 {
        s.extend(["net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"]);
    }
    if minor >= 37 {
        s.extend([
            "net.ipv4.tcp_slow_start_after_idle",
            "net.ipv4.tcp_notsent_lowat",
        ]);
    }
    s
}

fn sysctls(_: &Value, spec: &Value, minor: u32) -> Option<Violation> {
    let safe = safe_sysctls(minor);
    let bad: Vec<&str> = spec["securityContext"]["sysctls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["name"].as_str())
        .filter(|n| !safe.contains(n))
        .collect();
    if bad.is_empty() {
        return None;
    }
    violation("forbidden sysctls", bad.join(", "))
}

fn windows_host_process(_: &Value, spec: &Value, _: u32) -> Option<Violation> {
    let setters = explicit_setters(spec, "windowsOptions", |w| is_true(&w["hostProcess"]));
    if setters.is_empty() {
        return None;
    }
    violation(
        "hostProcess",
        format!(
            "{} must not set securityContext.windowsOptions.hostProcess=true",
            setters.join(" and ")
        ),
    )
}
