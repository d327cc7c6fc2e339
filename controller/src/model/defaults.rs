//! Kubernetes' defaults, applied to declared objects before they are stored, so that stored
//! objects read as they would on a real cluster (`kubectl describe` shows a strategy, a pull
//! policy, a grace period) and so that comparing declared with stored is stable.

use serde_json::{json, Value};

fn set_default(obj: &mut Value, key: &str, value: Value) {
    if let Some(map) = obj.as_object_mut() {
        let slot = map.entry(key).or_insert(Value::Null);
        if slot.is_null() {
            *slot = value;
        }
    }
}

/// Removes `null` fields everywhere: in Kubernetes a null field is an absent one, and stored
/// objects never carry them.
fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// Applies defaults in place. Objects must have passed validation.
pub fn apply(obj: &mut Value) {
    fill(obj);
    strip_nulls(obj);
}

fn fill(obj: &mut Value) {
    match obj["kind"].as_str().unwrap_or_default() {
        "Pod" => {
            pod_spec(&mut obj["spec"]);
            // `serviceAccount` is the deprecated name of `serviceAccountName`: either given
            // sets both, as Kubernetes' defaulting and conversion do.
            let spec = &mut obj["spec"];
            let sa = spec["serviceAccountName"]
                .as_str()
                .or(spec["serviceAccount"].as_str())
                .filter(|s| !s.is_empty())
                .unwrap_or("default")
                .to_string();
            spec["serviceAccountName"] = json!(sa);
            spec["serviceAccount"] = json!(sa);
            // One node: every pod is bound to it (what the scheduler would do).
            set_default(
                &mut obj["spec"],
                "nodeName",
                json!(crate::model::node::name()),
            );
        }
        "Deployment" => deployment(obj),
        "ReplicaSet" => {
            let spec = &mut obj["spec"];
            set_default(spec, "replicas", json!(1));
            set_default(spec, "minReadySeconds", json!(0));
            pod_spec(&mut spec["template"]["spec"]);
        }
        "StatefulSet" => statefulset(&mut obj["spec"]),
        "Service" => service(obj),
        "Ingress" => ingress(obj),
        "PersistentVolumeClaim" => {
            set_default(&mut obj["spec"], "volumeMode", json!("Filesystem"));
        }
        "PersistentVolume" => {
            let spec = &mut obj["spec"];
            set_default(spec, "volumeMode", json!("Filesystem"));
            set_default(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
        }
        "StorageClass" => {
            set_default(obj, "reclaimPolicy", json!("Delete"));
            set_default(obj, "volumeBindingMode", json!("Immediate"));
        }
        "Secret" => secret(obj),
        _ => {}
    }
}

/// A Deployment's defaults: one replica, RollingUpdate 25 %/25 %, history 10, progress deadline 600 s.
fn deployment(obj: &mut Value) {
    let spec = &mut obj["spec"];
    set_default(spec, "replicas", json!(1));
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(spec, "progressDeadlineSeconds", json!(600));
    set_default(spec, "minReadySeconds", json!(0));
    set_default(spec, "strategy", json!({}));
    let strategy = &mut spec["strategy"];
    set_default(strategy, "type", json!("RollingUpdate"));
    if strategy["type"] == "RollingUpdate" {
        set_default(strategy, "rollingUpdate", json!({}));
        let ru = &mut strategy["rollingUpdate"];
        set_default(ru, "maxSurge", json!("25%"));
        set_default(ru, "maxUnavailable", json!("25%"));
    }
    pod_spec(&mut spec["template"]["spec"]);
}

/// A Service's defaults: ClusterIP, IPv4 single stack, TCP ports targeting themselves.
fn service(obj: &mut Value) {
    let spec = &mut obj["spec"];
    set_default(spec, "type", json!("ClusterIP"));
    set_default(spec, "sessionAffinity", json!("None"));
    set_default(spec, "internalTrafficPolicy", json!("Cluster"));
    set_default(spec, "ipFamilies", json!(["IPv4"]));
    set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
    if spec["type"] != "ClusterIP" {
        set_default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if let Some(ports) = spec["ports"].as_array_mut() {
        for p in ports {
            set_default(p, "protocol", json!("TCP"));
            let port = p["port"].clone();
            set_default(p, "targetPort", port);
        }
    }
}

/// An Ingress's defaults: paths default to `/`.
fn ingress(obj: &mut Value) {
    if let Some(rules) = obj["spec"]["rules"].as_array_mut() {
        for r in rules {
            if let Some(paths) = r["http"]["paths"].as_array_mut() {
                for p in paths {
                    set_default(p, "path", json!("/"));
                }
            }
        }
    }
}

/// A Secret's defaults: Opaque; `stringData` merged into `data` (base64) and not stored, as the
/// API server does.
fn secret(obj: &mut Value) {
    set_default(obj, "type", json!("Opaque"));
    // As the API server does: stringData is merged into data (base64) and not stored.
    if let Some(Value::Object(strings)) = obj.as_object_mut().and_then(|m| m.remove("stringData")) {
        set_default(obj, "data", json!({}));
        for (k, v) in strings {
            let bytes = k8s_openapi::ByteString(v.as_str().unwrap_or_default().as_bytes().to_vec());
            obj["data"][k] = serde_json::to_value(bytes).expect("bytes serialize");
        }
    }
}

/// The annotation that marks a StorageClass as the default one.
pub const DEFAULT_CLASS_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";

/// The default StorageClass among `classes`, as the DefaultStorageClass admission picks it:
/// the newest of those annotated as the default.
pub fn default_storage_class(classes: &[std::sync::Arc<Value>]) -> Option<&str> {
    classes
        .iter()
        .filter(|c| crate::model::meta::annotation(c, DEFAULT_CLASS_ANNOTATION) == Some("true"))
        .max_by(|a, b| {
            let t = |c: &Value| {
                c["metadata"]["creationTimestamp"]
                    .as_str()
                    .map(String::from)
            };
            t(a).cmp(&t(b))
                .then_with(|| crate::model::meta::name(b).cmp(crate::model::meta::name(a)))
        })
        .map(|c| crate::model::meta::name(c))
}

/// What the admission plugins do to an object being created, beyond defaults: a claim
/// without `storageClassName` gets the default class (DefaultStorageClass), claims and
/// volumes get their deletion-protection finalizers (StorageObjectInUseProtection), a pod
/// its ServiceAccount's (`model/serviceaccount.rs`; the error: why the pod is forbidden).
pub fn on_create(
    obj: &mut Value,
    store: &crate::model::store::Store,
    declared: &[&Value],
) -> Result<(), String> {
    use crate::model::validate::storage::{PVC_PROTECTION, PV_PROTECTION};
    let finalizer = match obj["kind"].as_str().unwrap_or_default() {
        "Pod" => return crate::model::serviceaccount::admit_pod(obj, store, declared),
        "PersistentVolumeClaim" => {
            if obj["spec"]["storageClassName"].is_null() {
                let classes = store.list("StorageClass", None);
                if let Some(c) = default_storage_class(&classes) {
                    obj["spec"]["storageClassName"] = json!(c);
                }
            }
            PVC_PROTECTION
        }
        "PersistentVolume" => PV_PROTECTION,
        _ => return Ok(()),
    };
    let m = crate::model::meta::metadata_mut(obj);
    let list = m.entry("finalizers").or_insert_with(|| json!([]));
    if let Some(list) = list.as_array_mut() {
        if !list.iter().any(|f| f == finalizer) {
            list.push(json!(finalizer));
        }
    }
    Ok(())
}

/// Whether an image reference names the `latest` tag (explicitly or by having no tag or digest).
pub fn is_latest(image: &str) -> bool {
    if image.contains('@') {
        return false;
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((_, tag)) => tag == "latest",
        None => true,
    }
}

/// A StatefulSet's spec, as Kubernetes defaults it.
fn statefulset(spec: &mut Value) {
    set_default(spec, "replicas", json!(1));
    set_default(spec, "podManagementPolicy", json!("OrderedReady"));
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(spec, "updateStrategy", json!({}));
    let strategy = &mut spec["updateStrategy"];
    set_default(strategy, "type", json!("RollingUpdate"));
    if strategy["type"] == "RollingUpdate" {
        set_default(strategy, "rollingUpdate", json!({}));
        set_default(&mut strategy["rollingUpdate"], "partition", json!(0));
    }
    set_default(spec, "persistentVolumeClaimRetentionPolicy", json!({}));
    let policy = &mut spec["persistentVolumeClaimRetentionPolicy"];
    set_default(policy, "whenDeleted", json!("Retain"));
    set_default(policy, "whenScaled", json!("Retain"));
    if let Some(claims) = spec["volumeClaimTemplates"].as_array_mut() {
        for c in claims {
            set_default(&mut c["spec"], "volumeMode", json!("Filesystem"));
        }
    }
    pod_spec(&mut spec["template"]["spec"]);
}

fn pod_spec(spec: &mut Value) {
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    if let Some(containers) = spec["containers"].as_array_mut() {
        for c in containers {
            let image = c["image"].as_str().unwrap_or_default().to_string();
            let policy = if is_latest(&image) {
                "Always"
            } else {
                "IfNotPresent"
            };
            set_default(c, "imagePullPolicy", json!(policy));
            set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
            set_default(c, "terminationMessagePolicy", json!("File"));
            if let Some(ports) = c["ports"].as_array_mut() {
                for p in ports {
                    set_default(p, "protocol", json!("TCP"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_string_data_becomes_data() {
        let mut s = json!({"kind":"Secret","stringData":{"a":"hello"},"data":{"b":"eA=="}});
        apply(&mut s);
        assert_eq!(s["data"]["a"], "aGVsbG8=");
        assert_eq!(s["data"]["b"], "eA==");
        assert!(s.get("stringData").is_none());
        assert_eq!(s["type"], "Opaque");
    }

    #[test]
    fn statefulset_defaults_follow_kubernetes() {
        let mut s = json!({"kind":"StatefulSet","spec":{"template":{"spec":{"containers":[
            {"name":"a","image":"x:1"}]}}}});
        apply(&mut s);
        let spec = &s["spec"];
        assert_eq!(spec["replicas"], 1);
        assert_eq!(spec["podManagementPolicy"], "OrderedReady");
        assert_eq!(spec["revisionHistoryLimit"], 10);
        assert_eq!(
            spec["updateStrategy"],
            json!({"type":"RollingUpdate","rollingUpdate":{"partition":0}})
        );
        assert_eq!(
            spec["persistentVolumeClaimRetentionPolicy"],
            json!({"whenDeleted":"Retain","whenScaled":"Retain"})
        );
        assert_eq!(spec["template"]["spec"]["restartPolicy"], "Always");
    }

    #[test]
    fn latest_detection_follows_kubernetes() {
        assert!(is_latest("nginx"));
        assert!(is_latest("nginx:latest"));
        assert!(is_latest("registry.lan:5000/app"));
        assert!(!is_latest("registry.lan:5000/app:1"));
        assert!(!is_latest("nginx@sha256:abc"));
    }

    #[test]
    fn defaults_are_filled_and_given_values_kept() {
        let mut d = json!({"kind":"Deployment","spec":{"replicas":3,"template":{"spec":{"containers":[
            {"name":"a","image":"x:1","ports":[{"containerPort":80}]}]}}}});
        apply(&mut d);
        assert_eq!(d["spec"]["replicas"], 3);
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["imagePullPolicy"], "IfNotPresent");
        assert_eq!(c["ports"][0]["protocol"], "TCP");
        assert_eq!(d["spec"]["template"]["spec"]["restartPolicy"], "Always");
    }
}
