//! The RBAC kinds' semantics (Role, ClusterRole, RoleBinding, ClusterRoleBinding), as the
//! Kubernetes API server validates them, and what skiff's authorizer does not implement,
//! refused by name.

use serde_json::Value;

use super::{err, FieldError};

/// The API group of the RBAC kinds.
pub const GROUP: &str = "rbac.authorization.k8s.io";

/// Verbs whose meaning is a check skiff does not make (RBAC's own escalation verbs and
/// impersonation): refused, never stored to mean nothing.
const UNSUPPORTED_VERBS: &[&str] = &["bind", "escalate", "impersonate"];

/// An RBAC object's name: a path segment (`system:…` names are valid), as Kubernetes checks.
pub(super) fn name(name: &str, out: &mut Vec<FieldError>) {
    if name == "." || name == ".." || name.contains('/') || name.contains('%') {
        out.push(err(
            "metadata.name",
            format!("{name:?} may not be '.' or '..' and may not contain '/' or '%'"),
        ));
    }
}

pub(super) fn check(obj: &Value, out: &mut Vec<FieldError>) {
    match obj["kind"].as_str().unwrap_or_default() {
        "Role" | "ClusterRole" => rules(&obj["rules"], out),
        kind @ ("RoleBinding" | "ClusterRoleBinding") => binding(obj, kind, out),
        _ => {}
    }
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn rules(rules: &Value, out: &mut Vec<FieldError>) {
    for (i, rule) in rules.as_array().into_iter().flatten().enumerate() {
        let at = |f: &str| format!("rules[{i}].{f}");
        let verbs = strings(&rule["verbs"]);
        if verbs.is_empty() {
            out.push(err(
                at("verbs"),
                "Required value: verbs must contain at least one value",
            ));
        }
        for v in verbs {
            if UNSUPPORTED_VERBS.contains(&v) {
                out.push(err(
                    at("verbs"),
                    format!("the verb {v:?} is not supported by skiff (it does not check RBAC escalation by verb)"),
                ));
            }
        }
        if strings(&rule["apiGroups"]).is_empty() {
            out.push(err(
                at("apiGroups"),
                "Required value: resource rules must supply at least one api group",
            ));
        }
        if strings(&rule["resources"]).is_empty() {
            out.push(err(
                at("resources"),
                "Required value: resource rules must supply at least one resource",
            ));
        }
    }
}

fn binding(obj: &Value, kind: &str, out: &mut Vec<FieldError>) {
    let role = &obj["roleRef"];
    if role["apiGroup"] != GROUP {
        out.push(err(
            "roleRef.apiGroup",
            format!(
                "Unsupported value: {}: supported values: {GROUP:?}",
                role["apiGroup"]
            ),
        ));
    }
    match role["kind"].as_str().unwrap_or_default() {
        "ClusterRole" => {}
        "Role" if kind == "RoleBinding" => {}
        other => out.push(err(
            "roleRef.kind",
            format!(
                "Unsupported value: {other:?}: supported values: {}",
                if kind == "RoleBinding" {
                    "\"Role\", \"ClusterRole\""
                } else {
                    "\"ClusterRole\""
                }
            ),
        )),
    }
    if role["name"].as_str().unwrap_or_default().is_empty() {
        out.push(err("roleRef.name", "Required value"));
    }
    for (i, s) in obj["subjects"].as_array().into_iter().flatten().enumerate() {
        let at = |f: &str| format!("subjects[{i}].{f}");
        if s["name"].as_str().unwrap_or_default().is_empty() {
            out.push(err(at("name"), "Required value"));
        }
        let group = s["apiGroup"].as_str().unwrap_or_default();
        match s["kind"].as_str().unwrap_or_default() {
            "ServiceAccount" => {
                if !group.is_empty() {
                    out.push(err(at("apiGroup"), format!("Unsupported value: {group:?}: supported values: \"\"")));
                }
                if kind == "ClusterRoleBinding" && s["namespace"].as_str().unwrap_or_default().is_empty() {
                    out.push(err(at("namespace"), "Required value"));
                }
            }
            "User" | "Group" => {
                if group != GROUP {
                    out.push(err(at("apiGroup"), format!("Unsupported value: {group:?}: supported values: {GROUP:?}")));
                }
            }
            other => out.push(err(
                at("kind"),
                format!("Unsupported value: {other:?}: supported values: \"ServiceAccount\", \"User\", \"Group\""),
            )),
        }
    }
}

/// A binding's `roleRef` may not change (Kubernetes: delete and recreate the binding).
pub(super) fn update(old: &Value, new: &Value, out: &mut Vec<FieldError>) {
    if matches!(
        new["kind"].as_str(),
        Some("RoleBinding" | "ClusterRoleBinding")
    ) && old["roleRef"] != new["roleRef"]
    {
        out.push(err("roleRef", "Invalid value: cannot change roleRef"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(obj: Value) -> Vec<String> {
        let mut out = Vec::new();
        check(&obj, &mut out);
        out.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn rules_need_verbs_groups_and_resources_and_refuse_escalation_verbs() {
        let ok = json!({"kind":"Role","rules":[{"apiGroups":[""],"resources":["pods"],"verbs":["list"]}]});
        assert!(errors(ok).is_empty());
        let e = errors(
            json!({"kind":"Role","rules":[{"apiGroups":[],"resources":["pods"],"verbs":["bind"]}]}),
        );
        assert!(e.iter().any(|e| e.contains("rules[0].apiGroups")), "{e:?}");
        assert!(
            e.iter().any(|e| e.contains("\"bind\" is not supported")),
            "{e:?}"
        );
    }

    #[test]
    fn bindings_name_a_role_and_known_subjects() {
        let e = errors(json!({"kind":"ClusterRoleBinding",
            "roleRef":{"apiGroup":GROUP,"kind":"Role","name":"x"},
            "subjects":[{"kind":"ServiceAccount","name":"a"},{"kind":"Robot","name":"b"}]}));
        assert!(e.iter().any(|e| e.starts_with("roleRef.kind")), "{e:?}");
        assert!(
            e.iter().any(|e| e.starts_with("subjects[0].namespace")),
            "{e:?}"
        );
        assert!(e.iter().any(|e| e.starts_with("subjects[1].kind")), "{e:?}");
        let ok = json!({"kind":"RoleBinding","roleRef":{"apiGroup":GROUP,"kind":"ClusterRole","name":"view"},
            "subjects":[{"kind":"ServiceAccount","name":"a"}]});
        assert!(errors(ok).is_empty());
    }

    #[test]
    fn role_ref_is_immutable() {
        let a = json!({"kind":"RoleBinding","roleRef":{"kind":"Role","name":"a"}});
        let b = json!({"kind":"RoleBinding","roleRef":{"kind":"Role","name":"b"}});
        let mut out = Vec::new();
        update(&a, &b, &mut out);
        assert_eq!(out[0].field, "roleRef");
    }
}
