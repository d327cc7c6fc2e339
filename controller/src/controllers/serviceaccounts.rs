//! What kube-controller-manager's ServiceAccount controller and root-CA publisher do: every
//! namespace that is not being deleted has the ServiceAccount `default` and the ConfigMap
//! `kube-root-ca.crt` (key `ca.crt`: the CA that signs the API server's certificate), made
//! again when deleted and the CA kept current.

use serde_json::{json, Value};

use crate::client::view::{View, WriteError};
use crate::model::meta;
use crate::model::serviceaccount::ROOT_CA_CONFIGMAP;
use crate::model::store::{ObjectKey, Op};

/// The writes that give every live namespace its `default` account and CA ConfigMap.
pub fn plan(
    namespaces: &[&Value],
    exists: &dyn Fn(&ObjectKey) -> Option<Value>,
    ca_pem: &str,
) -> Vec<Op> {
    let mut ops = Vec::new();
    for ns in namespaces {
        if meta::is_terminating(ns) || ns["status"]["phase"] == "Terminating" {
            continue;
        }
        let name = meta::name(ns);
        let sa = ObjectKey::new("ServiceAccount", name, "default");
        if exists(&sa).is_none() {
            ops.push(Op::Create(
                json!({"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": "default", "namespace": name}}),
            ));
        }
        if ca_pem.is_empty() {
            continue;
        }
        let want = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": ROOT_CA_CONFIGMAP, "namespace": name,
                "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}},
            "data": {"ca.crt": ca_pem}});
        match exists(&ObjectKey::new("ConfigMap", name, ROOT_CA_CONFIGMAP)) {
            None => ops.push(Op::Create(want)),
            Some(have) if have["data"] != want["data"] => {
                let mut updated = have.clone();
                updated["data"] = want["data"].clone();
                ops.push(Op::Update(updated));
            }
            Some(_) => {}
        }
    }
    ops
}

/// One pass over the cached namespaces.
pub async fn reconcile(view: &View) -> Result<(), WriteError> {
    let namespaces = view.list("Namespace", None);
    let refs: Vec<&Value> = namespaces.iter().map(|n| &**n).collect();
    let exists = |k: &ObjectKey| view.get(k).map(|o| (*o).clone());
    let ops = plan(&refs, &exists, &crate::model::serviceaccount::root_ca());
    if !ops.is_empty() {
        view.apply(ops).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_live_namespace_gets_its_default_account_and_ca() {
        let a = json!({"metadata": {"name": "a"}});
        let gone = json!({"metadata": {"name": "b", "deletionTimestamp": "2026-01-01T00:00:00Z"}});
        let ops = plan(&[&a, &gone], &|_| None, "PEM");
        assert_eq!(ops.len(), 2, "{ops:?}");
        let Op::Create(sa) = &ops[0] else { panic!() };
        assert_eq!(
            ObjectKey::of(sa),
            ObjectKey::new("ServiceAccount", "a", "default")
        );
        let Op::Create(cm) = &ops[1] else { panic!() };
        assert_eq!(cm["data"]["ca.crt"], "PEM");
        // Present and current: nothing; a changed CA: updated.
        let have = |k: &ObjectKey| {
            Some(if k.kind == "ConfigMap" {
                json!({"data": {"ca.crt": "OLD"}})
            } else {
                json!({})
            })
        };
        assert!(plan(&[&a], &have, "OLD").is_empty());
        assert!(
            matches!(&plan(&[&a], &have, "NEW")[..], [Op::Update(cm)] if cm["data"]["ca.crt"] == "NEW")
        );
    }
}
