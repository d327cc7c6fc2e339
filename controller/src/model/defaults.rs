//! Kubernetes' defaults, applied to declared objects before they are stored, so that stored
//! objects read as they would on a real cluster (`kubectl describe` shows a strategy, a pull
//! policy, a grace period) and so that comparing declared with stored is stable.

use serde_json::{json, Value};

fn set_default(obj: &mut Value, key: &str, value: Value) {
    if let Some(map) = obj.as_object_mut() {
        let slot = map.entry(key).or_insert(Value::Null);
        // Go's defaulting tests a string field against "" (its zero value): an empty string
        // is defaulted as an absent one (Bitnami's `podManagementPolicy: ""`).
        if slot.is_null() || (value.is_string() && slot.as_str() == Some("")) {
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
            // Bound to the node by the scheduler (controllers/scheduler.rs), if it fits.
        }
        "Deployment" => deployment(obj),
        "ReplicaSet" => {
            let spec = &mut obj["spec"];
            set_default(spec, "replicas", json!(1));
            set_default(spec, "minReadySeconds", json!(0));
            pod_spec(&mut spec["template"]["spec"]);
        }
        "StatefulSet" => statefulset(&mut obj["spec"]),
        "Job" => job_spec(&mut obj["spec"]),
        "CronJob" => {
            let spec = &mut obj["spec"];
            set_default(spec, "concurrencyPolicy", json!("Allow"));
            set_default(spec, "suspend", json!(false));
            set_default(spec, "successfulJobsHistoryLimit", json!(3));
            set_default(spec, "failedJobsHistoryLimit", json!(1));
            // Kubernetes defaults the job template's pod spec, not the Job fields.
            pod_spec(&mut spec["jobTemplate"]["spec"]["template"]["spec"]);
        }
        "DaemonSet" => daemonset(&mut obj["spec"]),
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
        "Namespace" => {
            // Set (and kept) by the API server since Kubernetes 1.21; NetworkPolicies select
            // namespaces by it.
            let name = obj["metadata"]["name"].clone();
            let meta = &mut obj["metadata"];
            if !meta["labels"].is_object() {
                meta["labels"] = json!({});
            }
            meta["labels"]["kubernetes.io/metadata.name"] = name;
        }
        "NetworkPolicy" => {
            let spec = &mut obj["spec"];
            let mut types = vec![json!("Ingress")];
            if !spec["egress"].is_null() {
                types.push(json!("Egress"));
            }
            set_default(spec, "policyTypes", json!(types));
        }
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
    if spec["sessionAffinity"] == "ClientIP" {
        // As Kubernetes' SetDefaults_Service: three hours.
        set_default(spec, "sessionAffinityConfig", json!({}));
        set_default(&mut spec["sessionAffinityConfig"], "clientIP", json!({}));
        set_default(
            &mut spec["sessionAffinityConfig"]["clientIP"],
            "timeoutSeconds",
            json!(10800),
        );
    }
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

/// Why an admission plugin refused an object (Kubernetes says `<kind> "name" is forbidden: …`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

/// The Priority admission plugin: a pod's `priorityClassName` (or the `globalDefault` class)
/// resolves to `spec.priority` and `spec.preemptionPolicy`; an unknown class is refused.
fn priority(obj: &mut Value, store: &crate::model::store::Store) -> Result<(), Refused> {
    let spec = &mut obj["spec"];
    let class = match spec["priorityClassName"].as_str() {
        Some(name) => {
            let key = crate::model::store::ObjectKey::new("PriorityClass", "", name);
            match store.get(&key) {
                Some(c) => Some(c),
                None => {
                    return Err(Refused(format!(
                        "no PriorityClass with name {name} was found"
                    )))
                }
            }
        }
        None => store
            .list("PriorityClass", None)
            .into_iter()
            .find(|c| c["globalDefault"] == true),
    };
    let value = class
        .as_ref()
        .map_or(0, |c| c["value"].as_i64().unwrap_or(0));
    if let Some(given) = spec["priority"].as_i64() {
        if given != value {
            return Err(Refused(format!(
                "the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {value} from the given PriorityClass name"
            )));
        }
    }
    if let Some(c) = &class {
        spec["priorityClassName"] = json!(crate::model::meta::name(c));
        let policy = c["preemptionPolicy"]
            .as_str()
            .unwrap_or("PreemptLowerPriority");
        spec["preemptionPolicy"] = json!(policy);
    }
    spec["priority"] = json!(value);
    Ok(())
}

/// What the admission plugins do to an object being created, beyond defaults: a claim
/// without `storageClassName` gets the default class (DefaultStorageClass), claims and
/// volumes get their deletion-protection finalizers (StorageObjectInUseProtection), a pod
/// its ServiceAccount's (`model/serviceaccount.rs`) and its priority (Priority) — or the
/// refusal (why the object is forbidden).
pub fn on_create(
    obj: &mut Value,
    store: &crate::model::store::Store,
    declared: &[&Value],
) -> Result<(), Refused> {
    use crate::model::validate::storage::{PVC_PROTECTION, PV_PROTECTION};
    let finalizer = match obj["kind"].as_str().unwrap_or_default() {
        "Pod" => {
            crate::model::serviceaccount::admit_pod(obj, store, declared).map_err(Refused)?;
            return priority(obj, store);
        }
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

/// A Job's spec, as Kubernetes defaults it: one pod to completion unless `parallelism` alone
/// is given (a work queue: `completions` stays unset), back-off limit 6, NonIndexed.
fn job_spec(spec: &mut Value) {
    if spec["completions"].is_null() && spec["parallelism"].is_null() {
        set_default(spec, "completions", json!(1));
    }
    set_default(spec, "parallelism", json!(1));
    set_default(spec, "backoffLimit", json!(6));
    set_default(spec, "completionMode", json!("NonIndexed"));
    set_default(spec, "suspend", json!(false));
    pod_spec(&mut spec["template"]["spec"]);
}

/// The label a Job's generated selector matches: its uid.
pub const JOB_CONTROLLER_UID: &str = "batch.kubernetes.io/controller-uid";
/// The label with the Job's name on its pods.
pub const JOB_NAME: &str = "batch.kubernetes.io/job-name";

/// The selector Kubernetes generates for a Job (`manualSelector` is not supported).
pub fn job_selector(uid: &str) -> Value {
    json!({"matchLabels": {JOB_CONTROLLER_UID: uid}})
}

/// What the API server adds to a Job once it has its identity: the generated selector, and
/// the labels it matches on the pod template (with the legacy `controller-uid`/`job-name`
/// pair Kubernetes still writes). Called by the store as it mints the uid; a selector sent
/// along (a Job read elsewhere and created again) is replaced, as it names another uid.
pub fn on_identity(obj: &mut Value) {
    if obj["kind"] != "Job" {
        return;
    }
    let uid = crate::model::meta::uid(obj).to_string();
    let name = crate::model::meta::name(obj).to_string();
    obj["spec"]["selector"] = job_selector(&uid);
    let template = &mut obj["spec"]["template"];
    set_default(template, "metadata", json!({}));
    set_default(&mut template["metadata"], "labels", json!({}));
    let labels = &mut template["metadata"]["labels"];
    for (k, v) in [
        (JOB_CONTROLLER_UID, &uid),
        (JOB_NAME, &name),
        ("controller-uid", &uid),
        ("job-name", &name),
    ] {
        labels[k] = json!(v);
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

/// A DaemonSet's spec, as Kubernetes defaults it.
fn daemonset(spec: &mut Value) {
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(spec, "minReadySeconds", json!(0));
    set_default(spec, "updateStrategy", json!({}));
    let strategy = &mut spec["updateStrategy"];
    set_default(strategy, "type", json!("RollingUpdate"));
    if strategy["type"] == "RollingUpdate" {
        set_default(strategy, "rollingUpdate", json!({}));
        set_default(&mut strategy["rollingUpdate"], "maxUnavailable", json!(1));
        set_default(&mut strategy["rollingUpdate"], "maxSurge", json!(0));
    }
    pod_spec(&mut spec["template"]["spec"]);
}

fn pod_spec(spec: &mut Value) {
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    for list in ["initContainers", "containers"] {
        let Some(containers) = spec[list].as_array_mut() else {
            continue;
        };
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
    fn priority_comes_from_the_class_and_an_unknown_class_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::model::store::Store::open(dir.path()).unwrap();
        crate::model::builtin::ensure(&store).unwrap();
        let pod = |spec: Value| json!({"kind": "Pod", "metadata": {"name": "p"}, "spec": spec});
        let mut p = pod(json!({"priorityClassName": "system-node-critical"}));
        on_create(&mut p, &store, &[]).unwrap();
        assert_eq!(p["spec"]["priority"], 2_000_001_000);
        assert_eq!(p["spec"]["preemptionPolicy"], "PreemptLowerPriority");
        let mut p = pod(json!({}));
        on_create(&mut p, &store, &[]).unwrap();
        assert_eq!(p["spec"]["priority"], 0);
        let mut p = pod(json!({"priorityClassName": "nope"}));
        assert_eq!(
            on_create(&mut p, &store, &[]),
            Err(Refused("no PriorityClass with name nope was found".into()))
        );
        let mut p = pod(json!({"priorityClassName": "system-node-critical", "priority": 5}));
        assert!(on_create(&mut p, &store, &[]).is_err());
        // A globalDefault class applies to pods that name none.
        store
            .create(
                json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                "metadata": {"name": "normal"}, "value": 100, "globalDefault": true}),
            )
            .unwrap();
        let mut p = pod(json!({}));
        on_create(&mut p, &store, &[]).unwrap();
        assert_eq!(p["spec"]["priorityClassName"], "normal");
        assert_eq!(p["spec"]["priority"], 100);
    }

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
        let mut empty = json!({"podManagementPolicy": ""});
        statefulset(&mut empty);
        assert_eq!(
            empty["podManagementPolicy"], "OrderedReady",
            "\"\" is Go's unset"
        );
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

    #[test]
    fn init_containers_are_defaulted_as_containers() {
        let mut p = json!({"kind":"Pod","spec":{"initContainers":[{"name":"i","image":"busybox"},
            {"name":"j","image":"busybox:1.36"}],"containers":[{"name":"a","image":"x:1"}]}});
        apply(&mut p);
        let i = &p["spec"]["initContainers"];
        assert_eq!(i[0]["imagePullPolicy"], "Always");
        assert_eq!(i[1]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(i[0]["terminationMessagePath"], "/dev/termination-log");
    }
}
