//! RBAC for ServiceAccount tokens, evaluated as Kubernetes' RBAC authorizer does: a request
//! (verb, API group, resource with subresource, name, namespace) is allowed when a rule of a
//! Role or ClusterRole bound to the account allows it — a RoleBinding only in its own
//! namespace, a ClusterRoleBinding everywhere. Nothing is allowed without a binding.
//!
//! One departure, for the namespace-token story (`docs/security.md`): through a RoleBinding,
//! the Namespace object itself may only be read (`get`/`list`/`watch` of that namespace),
//! never changed or deleted, so a namespace token — which may write RoleBindings in its
//! namespace — cannot hand an account more than it has itself.

use serde_json::Value;

use crate::model::store::{ObjectKey, Store};

/// What a request asks, in RBAC's terms.
#[derive(Clone, Debug)]
pub struct Attributes<'a> {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`.
    pub verb: &'a str,
    /// The API group (`""` for the core group).
    pub group: &'a str,
    /// The resource (plural).
    pub resource: &'a str,
    /// The subresource (`log`, `status`, `exec`…).
    pub subresource: Option<&'a str>,
    /// The object's name, if the request names one.
    pub name: Option<&'a str>,
    /// The request's namespace (for a Namespace object: its own name).
    pub namespace: Option<&'a str>,
}

/// Who asks: a ServiceAccount.
#[derive(Clone, Debug)]
pub struct Account<'a> {
    /// Its namespace.
    pub namespace: &'a str,
    /// Its name.
    pub name: &'a str,
}

impl Account<'_> {
    fn user(&self) -> String {
        format!("system:serviceaccount:{}:{}", self.namespace, self.name)
    }

    fn groups(&self) -> [String; 3] {
        [
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{}", self.namespace),
            "system:authenticated".into(),
        ]
    }
}

fn strings(v: &Value) -> impl Iterator<Item = &str> {
    v.as_array().into_iter().flatten().filter_map(Value::as_str)
}

fn rule_allows(rule: &Value, a: &Attributes) -> bool {
    let verb = strings(&rule["verbs"]).any(|v| v == "*" || v == a.verb);
    let group = strings(&rule["apiGroups"]).any(|g| g == "*" || g == a.group);
    let combined = match a.subresource {
        Some(s) => format!("{}/{s}", a.resource),
        None => a.resource.to_string(),
    };
    let resource = strings(&rule["resources"]).any(|r| {
        r == "*"
            || r == combined
            || a.subresource
                .is_some_and(|s| r.strip_prefix("*/").is_some_and(|rs| rs == s))
    });
    let names: Vec<&str> = strings(&rule["resourceNames"]).collect();
    let name = names.is_empty() || a.name.is_some_and(|n| names.contains(&n));
    verb && group && resource && name
}

fn subject_matches(s: &Value, binding_ns: &str, who: &Account) -> bool {
    let name = s["name"].as_str().unwrap_or_default();
    match s["kind"].as_str().unwrap_or_default() {
        "ServiceAccount" => {
            let ns = s["namespace"]
                .as_str()
                .filter(|n| !n.is_empty())
                .unwrap_or(binding_ns);
            ns == who.namespace && name == who.name
        }
        "User" => name == who.user(),
        "Group" => who.groups().iter().any(|g| g == name),
        _ => false,
    }
}

fn role_rules(store: &Store, binding: &Value, ns: &str) -> Vec<Value> {
    let r = &binding["roleRef"];
    let name = r["name"].as_str().unwrap_or_default();
    let key = match r["kind"].as_str() {
        Some("Role") => ObjectKey::new("Role", ns, name),
        _ => ObjectKey::new("ClusterRole", "", name),
    };
    store
        .get(&key)
        .and_then(|role| role["rules"].as_array().cloned())
        .unwrap_or_default()
}

/// The rules of every role bound to `who` that apply in `namespace`: its ClusterRoleBindings',
/// and — in a namespace — that namespace's RoleBindings' (`from_role_binding` true).
pub fn bound_rules(store: &Store, who: &Account, namespace: Option<&str>) -> Vec<(Value, bool)> {
    let bound = |b: &Value, ns: &str| strings_subjects(b).any(|s| subject_matches(s, ns, who));
    let mut rules: Vec<(Value, bool)> = store
        .list("ClusterRoleBinding", None)
        .iter()
        .filter(|crb| bound(crb, ""))
        .flat_map(|crb| role_rules(store, crb, ""))
        .map(|r| (r, false))
        .collect();
    if let Some(ns) = namespace {
        rules.extend(
            store
                .list("RoleBinding", Some(ns))
                .iter()
                .filter(|rb| bound(rb, ns))
                .flat_map(|rb| role_rules(store, rb, ns))
                .map(|r| (r, true)),
        );
    }
    rules
}

/// Whether `who` may do `a`.
pub fn allows(store: &Store, who: &Account, a: &Attributes) -> bool {
    // Through a RoleBinding, a Namespace may only be read.
    let namespace_write = a.resource == "namespaces" && !matches!(a.verb, "get" | "list" | "watch");
    bound_rules(store, who, a.namespace)
        .iter()
        .any(|(r, from_role_binding)| !(*from_role_binding && namespace_write) && rule_allows(r, a))
}

fn strings_subjects(b: &Value) -> impl Iterator<Item = &Value> {
    b["subjects"].as_array().into_iter().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        for ns in ["a", "b"] {
            s.create(json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name":ns}}))
                .unwrap();
        }
        for r in crate::model::builtin::cluster_roles() {
            s.create(r).unwrap();
        }
        (dir, s)
    }

    fn req<'a>(verb: &'a str, resource: &'a str, ns: Option<&'a str>) -> Attributes<'a> {
        Attributes {
            verb,
            group: "",
            resource,
            subresource: None,
            name: None,
            namespace: ns,
        }
    }

    const ROBOT: Account = Account {
        namespace: "a",
        name: "robot",
    };

    fn binding(kind: &str, ns: &str, role_kind: &str, role: &str, subject: Value) -> Value {
        json!({"apiVersion":"rbac.authorization.k8s.io/v1","kind":kind,
            "metadata":{"name":format!("{role}-b"),"namespace":ns},
            "roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":role_kind,"name":role},
            "subjects":[subject]})
    }

    #[test]
    fn nothing_without_a_binding_and_a_role_binding_only_in_its_namespace() {
        let (_d, s) = store();
        assert!(!allows(&s, &ROBOT, &req("list", "pods", Some("a"))));
        s.create(json!({"apiVersion":"rbac.authorization.k8s.io/v1","kind":"Role",
            "metadata":{"name":"pods","namespace":"a"},
            "rules":[{"apiGroups":[""],"resources":["pods","pods/log"],"verbs":["get","list"]},
                     {"apiGroups":[""],"resources":["configmaps"],"resourceNames":["one"],"verbs":["get"]}]}))
            .unwrap();
        s.create(binding(
            "RoleBinding",
            "a",
            "Role",
            "pods",
            json!({"kind":"ServiceAccount","name":"robot"}),
        ))
        .unwrap();
        assert!(allows(&s, &ROBOT, &req("list", "pods", Some("a"))));
        assert!(!allows(&s, &ROBOT, &req("list", "pods", Some("b"))));
        assert!(!allows(&s, &ROBOT, &req("list", "pods", None)));
        assert!(!allows(&s, &ROBOT, &req("delete", "pods", Some("a"))));
        let other = Account {
            namespace: "b",
            name: "robot",
        };
        assert!(!allows(&s, &other, &req("list", "pods", Some("a"))));
        // Subresources are resources of their own.
        let mut log = req("get", "pods", Some("a"));
        log.subresource = Some("log");
        assert!(allows(&s, &ROBOT, &log));
        log.subresource = Some("exec");
        assert!(!allows(&s, &ROBOT, &log));
        // resourceNames: only that name, never a list.
        let mut cm = req("get", "configmaps", Some("a"));
        assert!(!allows(&s, &ROBOT, &cm));
        cm.name = Some("one");
        assert!(allows(&s, &ROBOT, &cm));
        cm.name = Some("two");
        assert!(!allows(&s, &ROBOT, &cm));
    }

    #[test]
    fn cluster_roles_through_role_bindings_stay_in_the_namespace_and_never_change_it() {
        let (_d, s) = store();
        s.create(binding("RoleBinding", "a", "ClusterRole", "cluster-admin",
            json!({"kind":"Group","apiGroup":"rbac.authorization.k8s.io","name":"system:serviceaccounts:a"})))
            .unwrap();
        assert!(allows(&s, &ROBOT, &req("delete", "secrets", Some("a"))));
        assert!(!allows(&s, &ROBOT, &req("get", "secrets", Some("b"))));
        assert!(allows(&s, &ROBOT, &req("get", "namespaces", Some("a"))));
        assert!(!allows(&s, &ROBOT, &req("delete", "namespaces", Some("a"))));
        assert!(!allows(&s, &ROBOT, &req("update", "namespaces", Some("a"))));
        assert!(!allows(&s, &ROBOT, &req("list", "persistentvolumes", None)));
    }

    #[test]
    fn cluster_role_bindings_grant_everywhere_and_view_reads_no_secrets() {
        let (_d, s) = store();
        s.create(binding(
            "ClusterRoleBinding",
            "",
            "ClusterRole",
            "view",
            json!({"kind":"ServiceAccount","name":"robot","namespace":"a"}),
        ))
        .unwrap();
        assert!(allows(&s, &ROBOT, &req("list", "pods", Some("b"))));
        assert!(allows(&s, &ROBOT, &req("list", "pods", None)));
        assert!(!allows(&s, &ROBOT, &req("get", "secrets", Some("a"))));
        assert!(!allows(&s, &ROBOT, &req("create", "pods", Some("a"))));
        let mut deploy = req("list", "deployments", Some("b"));
        deploy.group = "apps";
        assert!(allows(&s, &ROBOT, &deploy));
    }
}
