use serde_json::{json, Value};

use super::*;

const BASELINE: LevelVersion = LevelVersion::latest(Level::Baseline);
const RESTRICTED: LevelVersion = LevelVersion::latest(Level::Restricted);

fn spec(v: Value) -> Value {
    let mut s = json!({"containers": [{"name": "app", "image": "x"}]});
    if let (Some(s), Some(extra)) = (s.as_object_mut(), v.as_object()) {
        s.extend(extra.clone());
    }
    s
}

fn baseline(spec: &Value) -> String {
    describe(&evaluate(&BASELINE, &json!({}), spec))
}

fn restricted(spec: &Value) -> String {
    describe(&evaluate(&RESTRICTED, &json!({}), spec))
}

/// A container that passes restricted.
fn hardened() -> Value {
    json!({"name": "app", "image": "x", "securityContext": {
        "allowPrivilegeEscalation": false, "runAsNonRoot": true,
        "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}})
}

#[test]
fn a_plain_pod_passes_baseline_and_privileged_passes_everything() {
    assert_eq!(baseline(&spec(json!({}))), "");
    let wild = spec(json!({"hostNetwork": true, "hostPID": true}));
    assert!(evaluate(&LevelVersion::latest(Level::Privileged), &json!({}), &wild).is_empty());
}

#[test]
fn baseline_names_each_violation_in_upstream_words_and_order() {
    let s = spec(json!({
        "hostNetwork": true, "hostIPC": true,
        "volumes": [{"name": "root", "hostPath": {"path": "/"}}],
        "containers": [{"name": "app", "image": "x",
            "ports": [{"containerPort": 80, "hostPort": 6443}],
            "securityContext": {"privileged": true, "capabilities": {"add": ["NET_ADMIN", "CHOWN", "SYS_ADMIN"]}}}]
    }));
    assert_eq!(
        baseline(&s),
        "non-default capabilities (container \"app\" must not include \"NET_ADMIN\", \"SYS_ADMIN\" in securityContext.capabilities.add), \
         host namespaces (hostNetwork=true, hostIPC=true), \
         hostPath volumes (volume \"root\"), \
         hostPort (container \"app\" uses hostPort 6443), \
         privileged (container \"app\" must not set securityContext.privileged=true)"
    );
}

#[test]
fn baseline_sysctls_proc_mount_seccomp_apparmor_selinux_probes() {
    let s = spec(json!({
        "securityContext": {
            "sysctls": [{"name": "net.ipv4.tcp_syncookies", "value": "1"}, {"name": "kernel.msgmax", "value": "1"}],
            "seccompProfile": {"type": "Unconfined"},
            "seLinuxOptions": {"type": "spc_t"}},
        "initContainers": [{"name": "init", "image": "x", "securityContext": {"procMount": "Unmasked"}}],
        "containers": [{"name": "app", "image": "x",
            "readinessProbe": {"httpGet": {"host": "10.0.0.1", "port": 80}},
            "securityContext": {"appArmorProfile": {"type": "Unconfined"}}}]
    }));
    assert_eq!(
        baseline(&s),
        "forbidden AppArmor profile (container \"app\" must not set AppArmor profile type to \"Unconfined\"), \
         probe or lifecycle host (container \"app\" uses probe or lifecycle host \"10.0.0.1\"), \
         procMount (container \"init\" must not set securityContext.procMount to \"Unmasked\"), \
         seLinuxOptions (pod set forbidden securityContext.seLinuxOptions: type \"spc_t\"), \
         seccompProfile (pod must not set securityContext.seccompProfile.type to \"Unconfined\"), \
         forbidden sysctls (kernel.msgmax)"
    );
    // The safe sysctls grow with the version.
    let keepalive = spec(
        json!({"securityContext": {"sysctls": [{"name": "net.ipv4.tcp_keepalive_time", "value": "60"}]}}),
    );
    assert_eq!(baseline(&keepalive), "");
    let old = LevelVersion {
        level: Level::Baseline,
        version: Some(28),
    };
    assert_eq!(
        describe(&evaluate(&old, &json!({}), &keepalive)),
        "forbidden sysctls (net.ipv4.tcp_keepalive_time)"
    );
}

#[test]
fn restricted_asks_for_hardened_containers() {
    let s = spec(json!({}));
    assert_eq!(
        restricted(&s),
        "allowPrivilegeEscalation != false (container \"app\" must set securityContext.allowPrivilegeEscalation=false), \
         unrestricted capabilities (container \"app\" must set securityContext.capabilities.drop=[\"ALL\"]), \
         runAsNonRoot != true (pod or container \"app\" must set securityContext.runAsNonRoot=true), \
         seccompProfile (pod or container \"app\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
    );
    let ok = spec(json!({"containers": [hardened()], "volumes": [{"name": "d", "emptyDir": {}}]}));
    assert_eq!(restricted(&ok), "");
    let mut root = ok.clone();
    root["securityContext"] = json!({"runAsUser": 0});
    root["volumes"] = json!([{"name": "h", "hostPath": {"path": "/"}}]);
    root["containers"][0]["securityContext"]["capabilities"]["add"] = json!(["NET_RAW"]);
    assert_eq!(
        restricted(&root),
        "unrestricted capabilities (container \"app\" must not include \"NET_RAW\" in securityContext.capabilities.add), \
         restricted volume types (volume \"h\" uses restricted volume type \"hostPath\"), \
         runAsUser=0 (pod must not set runAsUser=0)"
    );
    // Overridden baseline checks do not speak twice (hostPath, capabilities).
    assert_eq!(restricted(&root).matches("hostPath").count(), 1);
}

#[test]
fn labels_choose_the_policy_and_bad_values_are_named() {
    let default = LevelVersion::latest(Level::Baseline);
    let (p, e) = policy(&json!({}), default);
    assert!(e.is_empty());
    assert_eq!(p.enforce.to_string(), "baseline:latest");
    assert_eq!(p.warn.level, Level::Privileged);
    let (p, _) = policy(
        &json!({"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "v1.30"}),
        default,
    );
    assert_eq!(p.enforce.to_string(), "restricted:v1.30");
    // Warn follows a stricter enforce.
    assert_eq!(p.warn.to_string(), "restricted:v1.30");
    let (p, _) = policy(
        &json!({"pod-security.kubernetes.io/enforce": "privileged", "pod-security.kubernetes.io/warn": "baseline"}),
        default,
    );
    assert_eq!(
        (p.enforce.level, p.warn.level),
        (Level::Privileged, Level::Baseline)
    );
    let (p, e) = policy(
        &json!({"pod-security.kubernetes.io/enforce": "lax", "pod-security.kubernetes.io/audit-version": "2"}),
        default,
    );
    assert_eq!(p.enforce.level, Level::Restricted, "enforce fails closed");
    assert_eq!(e.len(), 2);
    assert_eq!(
        e[0].field,
        "metadata.labels[pod-security.kubernetes.io/enforce]"
    );
}

#[test]
fn every_kind_with_a_pod_template_is_found() {
    let d = json!({"kind": "Deployment", "spec": {"template": {"metadata": {"labels": {"a": "b"}}, "spec": {"hostPID": true}}}});
    let (meta, spec) = pod_of(&d).unwrap();
    assert_eq!(meta["labels"]["a"], "b");
    assert_eq!(baseline(spec), "host namespaces (hostPID=true)");
    let cj = json!({"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {"spec": {"hostIPC": true}}}}}});
    assert!(pod_of(&cj).is_some_and(|(_, s)| s["hostIPC"] == true));
    let pod = json!({"kind": "Pod", "metadata": {"name": "p"}, "spec": {"hostNetwork": true}});
    assert!(pod_of(&pod).is_some_and(|(m, s)| m["name"] == "p" && s["hostNetwork"] == true));
    assert!(pod_of(&json!({"kind": "Service"})).is_none());
}
