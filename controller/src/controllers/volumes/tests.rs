use std::path::Path;
use std::sync::Arc;

use serde_json::{json, Value};

use super::plan::{plan, provisioned_dir, Action, Inputs};
use super::{capacity_note, make_dir, remove_dir};
use crate::controllers::plan::Write;

const DIR: &str = "/data/volumes";

fn class(name: &str, mode: &str, reclaim: &str) -> Arc<Value> {
    Arc::new(
        json!({"apiVersion":"storage.k8s.io/v1","kind":"StorageClass",
        "metadata":{"name":name,"uid":format!("uid-{name}")},
        "provisioner":"rancher.io/local-path","reclaimPolicy":reclaim,"volumeBindingMode":mode}),
    )
}

fn claim(name: &str, class: &str) -> Arc<Value> {
    Arc::new(json!({"apiVersion":"v1","kind":"PersistentVolumeClaim",
        "metadata":{"name":name,"namespace":"apps","uid":format!("c-{name}"),"resourceVersion":"7",
            "finalizers":["kubernetes.io/pvc-protection"]},
        "spec":{"accessModes":["ReadWriteOnce"],"resources":{"requests":{"storage":"1Gi"}},
            "storageClassName":class,"volumeMode":"Filesystem"}}))
}

fn pod(name: &str, claim: &str, phase: &str) -> Arc<Value> {
    Arc::new(json!({"apiVersion":"v1","kind":"Pod",
        "metadata":{"name":name,"namespace":"apps","uid":format!("p-{name}")},
        "spec":{"containers":[{"name":"c","image":"x"}],
            "volumes":[{"name":"data","persistentVolumeClaim":{"claimName":claim}}]},
        "status":{"phase":phase}}))
}

fn static_pv(name: &str, size: &str, class: &str) -> Arc<Value> {
    Arc::new(json!({"apiVersion":"v1","kind":"PersistentVolume",
        "metadata":{"name":name,"uid":format!("v-{name}"),"finalizers":["kubernetes.io/pv-protection"]},
        "spec":{"capacity":{"storage":size},"accessModes":["ReadWriteOnce","ReadWriteMany"],
            "persistentVolumeReclaimPolicy":"Retain","storageClassName":class,
            "hostPath":{"path":format!("/srv/{name}")}}}))
}

fn with(o: &Arc<Value>, f: impl FnOnce(&mut Value)) -> Arc<Value> {
    let mut v = (**o).clone();
    f(&mut v);
    Arc::new(v)
}

struct World {
    claims: Vec<Arc<Value>>,
    volumes: Vec<Arc<Value>>,
    classes: Vec<Arc<Value>>,
    pods: Vec<Arc<Value>>,
}

impl World {
    fn new() -> Self {
        World {
            claims: vec![],
            volumes: vec![],
            classes: vec![
                class("local-path", "WaitForFirstConsumer", "Delete"),
                class("fast", "Immediate", "Retain"),
            ],
            pods: vec![],
        }
    }

    fn plan(&self) -> Vec<Action> {
        plan(&Inputs {
            claims: &self.claims,
            volumes: &self.volumes,
            classes: &self.classes,
            pods: &self.pods,
            node: "node1",
            volumes_dir: Path::new(DIR),
            capacity_note: "ext4 without prjquota",
            now: "2026-01-01T00:00:00Z",
        })
    }
}

/// The actions, one line each.
fn describe(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .map(|a| match a {
            Action::Provision { dir, volume } => format!(
                "provision {} at {}",
                volume["metadata"]["name"].as_str().unwrap(),
                dir.display()
            ),
            Action::Reclaim { volume, dir, .. } => {
                format!("reclaim {volume} at {}", dir.display())
            }
            Action::Write(w) => {
                crate::controllers::plan::describe(std::slice::from_ref(w)).remove(0)
            }
        })
        .collect()
}

fn written<'a>(actions: &'a [Action], what: &str) -> Vec<&'a Value> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Write(Write::Update(o)) if what == "update" => Some(o),
            Action::Write(Write::UpdateStatus(_, s)) if what == "status" => Some(s),
            Action::Provision { volume, .. } if what == "provision" => Some(volume),
            _ => None,
        })
        .collect()
}

#[test]
fn wait_for_first_consumer_provisions_only_once_a_pod_uses_the_claim() {
    let mut w = World::new();
    w.claims.push(claim("data", "local-path"));
    let a = w.plan();
    assert_eq!(
        describe(&a),
        [
            "status PersistentVolumeClaim apps/data",
            "event WaitForFirstConsumer: waiting for first consumer to be created before binding"
        ]
    );
    assert_eq!(written(&a, "status")[0]["phase"], "Pending");
    // A pod that has finished does not count; a pending one does.
    w.pods.push(pod("done", "data", "Succeeded"));
    assert!(written(&w.plan(), "provision").is_empty());
    w.pods.push(pod("web", "data", "Pending"));
    let a = w.plan();
    let d = describe(&a);
    assert_eq!(
        d[2],
        "provision pvc-c-data at /data/volumes/pvc-c-data_apps_data"
    );
    assert!(d[3].starts_with("event ProvisioningSucceeded"), "{d:?}");
    let pv = written(&a, "provision")[0];
    assert_eq!(
        pv["spec"]["hostPath"]["path"],
        "/data/volumes/pvc-c-data_apps_data"
    );
    assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Delete");
    assert_eq!(pv["spec"]["claimRef"]["uid"], "c-data");
    assert_eq!(pv["spec"]["capacity"]["storage"], "1Gi");
    assert_eq!(pv["spec"]["storageClassName"], "local-path");
}

#[test]
fn immediate_provisions_at_once() {
    let mut w = World::new();
    w.claims.push(claim("db", "fast"));
    let pv = written(&w.plan(), "provision")[0].clone();
    assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Retain");
}

#[test]
fn a_provisioned_volume_binds_its_claim_and_both_say_bound() {
    let mut w = World::new();
    w.claims.push(claim("db", "fast"));
    let pv = written(&w.plan(), "provision")[0].clone();
    w.volumes.push(Arc::new(pv));
    let a = w.plan();
    let updates = written(&a, "update");
    assert_eq!(updates.len(), 1, "{:?}", describe(&a));
    let c = updates[0];
    assert_eq!(c["spec"]["volumeName"], "pvc-c-db");
    assert_eq!(
        c["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"],
        "yes"
    );
    let statuses = written(&a, "status");
    let claim_status = statuses[0];
    assert_eq!(claim_status["phase"], "Bound");
    assert_eq!(claim_status["capacity"]["storage"], "1Gi");
    assert_eq!(
        claim_status["conditions"][0]["message"],
        "capacity not enforced: ext4 without prjquota"
    );
    assert!(describe(&a)
        .iter()
        .any(|l| l == "event CapacityNotEnforced: capacity not enforced: ext4 without prjquota"));
    // Once bound on both sides: the volume is Bound, the claim's status kept, no new event.
    w.claims[0] = with(&w.claims[0], |c| {
        c["spec"]["volumeName"] = json!("pvc-c-db");
        c["metadata"]["annotations"] = json!({"pv.kubernetes.io/bind-completed":"yes"});
        c["status"] = claim_status.clone();
    });
    let a = w.plan();
    assert!(written(&a, "update").is_empty());
    assert!(
        !describe(&a).iter().any(|l| l.starts_with("event")),
        "{:?}",
        describe(&a)
    );
    assert_eq!(written(&a, "status")[1]["phase"], "Bound");
}

#[test]
fn a_static_volume_binds_the_smallest_that_fits() {
    let mut w = World::new();
    w.claims.push(claim("media", ""));
    w.volumes.push(static_pv("big", "10Gi", ""));
    w.volumes.push(static_pv("small", "2Gi", ""));
    w.volumes.push(static_pv("tiny", "100Mi", ""));
    w.volumes.push(static_pv("other-class", "2Gi", "fast"));
    let a = w.plan();
    let updates = written(&a, "update");
    assert_eq!(updates[0]["metadata"]["name"], "small");
    assert_eq!(updates[0]["spec"]["claimRef"]["name"], "media");
    assert_eq!(updates[1]["spec"]["volumeName"], "small");
    assert_eq!(
        updates[1]["metadata"]["annotations"]["pv.kubernetes.io/bound-by-controller"],
        "yes"
    );
    // Access modes are matched too.
    w.claims[0] = with(&w.claims[0], |c| {
        c["spec"]["accessModes"] = json!(["ReadOnlyMany"])
    });
    let d = describe(&w.plan());
    assert!(
        d.iter()
            .any(|l| l.contains("no persistent volumes available")),
        "{d:?}"
    );
}

#[test]
fn claims_wait_for_missing_classes_and_other_provisioners() {
    let mut w = World::new();
    w.claims.push(claim("a", "nope"));
    w.classes
        .push(with(&class("nfs", "Immediate", "Delete"), |c| {
            c["provisioner"] = json!("nfs.csi.k8s.io")
        }));
    w.claims.push(claim("b", "nfs"));
    let d = describe(&w.plan());
    assert!(
        d.contains(
            &"event ProvisioningFailed: storageclass.storage.k8s.io \"nope\" not found".to_string()
        ),
        "{d:?}"
    );
    assert!(d.iter().any(|l| l.starts_with("event ExternalProvisioning: Waiting for a volume to be created either by the external provisioner 'nfs.csi.k8s.io'")), "{d:?}");
}

#[test]
fn a_claim_in_use_keeps_its_finalizer_until_the_pod_is_gone() {
    let mut w = World::new();
    w.claims.push(with(&claim("data", "local-path"), |c| {
        c["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z")
    }));
    w.pods.push(with(&pod("web", "data", "Running"), |p| {
        p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z")
    }));
    assert!(describe(&w.plan()).is_empty());
    // A pod held back for want of the claim does not hold it.
    w.pods[0] = with(&pod("web", "data", "Pending"), |p| {
        p["status"]["conditions"] =
            json!([{"type":"PodScheduled","status":"False","reason":"Unschedulable"}])
    });
    assert_eq!(written(&w.plan(), "update").len(), 1);
    w.pods.clear();
    let a = w.plan();
    let u = written(&a, "update");
    assert_eq!(u.len(), 1);
    assert_eq!(u[0]["metadata"]["finalizers"], json!([]));
}

fn released(policy: &str, path: &str, provisioned: bool) -> World {
    let mut w = World::new();
    w.volumes
        .push(with(&static_pv("pvc-c-gone", "1Gi", "local-path"), |v| {
            v["spec"]["persistentVolumeReclaimPolicy"] = json!(policy);
            v["spec"]["hostPath"]["path"] = json!(path);
            v["spec"]["claimRef"] = json!({"namespace":"apps","name":"gone","uid":"c-gone"});
            v["status"] = json!({"phase":"Bound"});
            if provisioned {
                v["metadata"]["annotations"] =
                    json!({"pv.kubernetes.io/provisioned-by":"rancher.io/local-path"});
            }
        }));
    w
}

#[test]
fn a_released_volume_is_reclaimed_by_its_policy() {
    let dir = "/data/volumes/pvc-c-gone_apps_gone";
    // Delete: the directory is removed, then the volume.
    let d = describe(&released("Delete", dir, true).plan());
    assert_eq!(d, [format!("reclaim PersistentVolume pvc-c-gone at {dir}")]);
    // Retain: Released, kept.
    let a = released("Retain", dir, true).plan();
    assert_eq!(written(&a, "status")[0]["phase"], "Released");
    assert!(!describe(&a).iter().any(|l| l.starts_with("reclaim")));
    // Delete of a directory skiff did not make (a hostPath volume, or a path outside the
    // volumes folder): Failed, nothing removed.
    for (path, provisioned) in [
        ("/srv/media", false),
        ("/srv/media", true),
        ("/data/volumes/../x", true),
    ] {
        let a = released("Delete", path, provisioned).plan();
        assert_eq!(written(&a, "status")[0]["phase"], "Failed", "{path}");
        assert!(
            !describe(&a).iter().any(|l| l.starts_with("reclaim")),
            "{path}"
        );
    }
}

#[test]
fn a_volume_being_deleted_waits_for_its_claim() {
    let mut w = World::new();
    w.claims.push(with(&claim("data", ""), |c| {
        c["spec"]["volumeName"] = json!("pv1")
    }));
    w.volumes.push(with(&static_pv("pv1", "1Gi", ""), |v| {
        v["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        v["spec"]["claimRef"] = json!({"namespace":"apps","name":"data","uid":"c-data"});
    }));
    assert!(!written(&w.plan(), "update")
        .iter()
        .any(|o| o["kind"] == "PersistentVolume"));
    w.claims.clear();
    let a = w.plan();
    let u = written(&a, "update");
    assert_eq!(u[0]["kind"], "PersistentVolume");
    assert_eq!(u[0]["metadata"]["finalizers"], json!([]));
}

#[test]
fn pre_bound_claims_and_lost_volumes() {
    let mut w = World::new();
    // A claim naming a volume reserved for another claim waits.
    w.claims.push(with(&claim("data", ""), |c| {
        c["spec"]["volumeName"] = json!("pv1")
    }));
    w.volumes.push(with(&static_pv("pv1", "1Gi", ""), |v| {
        v["spec"]["claimRef"] = json!({"namespace":"apps","name":"other"})
    }));
    let d = describe(&w.plan());
    assert!(
        d.iter()
            .any(|l| l.contains("already bound to a different claim")),
        "{d:?}"
    );
    // A bound claim whose volume is gone is Lost.
    w.volumes.clear();
    w.claims[0] = with(&w.claims[0], |c| {
        c["metadata"]["annotations"] = json!({"pv.kubernetes.io/bind-completed":"yes"})
    });
    let a = w.plan();
    assert_eq!(written(&a, "status")[0]["phase"], "Lost");
}

#[test]
fn node_affinity_is_matched_against_this_node() {
    let mut w = World::new();
    w.claims.push(claim("data", ""));
    let pinned = |host: &str| {
        with(&static_pv("local", "1Gi", ""), |v| {
            v["spec"]["nodeAffinity"] = json!({"required":{"nodeSelectorTerms":[{"matchExpressions":[
                {"key":"kubernetes.io/hostname","operator":"In","values":[host]}]}]}})
        })
    };
    w.volumes.push(pinned("elsewhere"));
    assert!(written(&w.plan(), "update").is_empty());
    w.volumes[0] = pinned("node1");
    assert_eq!(written(&w.plan(), "update").len(), 2);
}

#[test]
fn only_provisioned_directories_inside_the_volumes_folder_are_ours() {
    let ours = json!({"metadata":{"annotations":{"pv.kubernetes.io/provisioned-by":"rancher.io/local-path"}},
        "spec":{"hostPath":{"path":"/data/volumes/pvc-1_a_b"}}});
    assert!(provisioned_dir(Path::new(DIR), &ours).is_some());
    let mut deeper = ours.clone();
    deeper["spec"]["hostPath"]["path"] = json!("/data/volumes/pvc-1_a_b/x");
    assert!(provisioned_dir(Path::new(DIR), &deeper).is_none());
    let mut unannotated = ours.clone();
    unannotated["metadata"] = json!({});
    assert!(provisioned_dir(Path::new(DIR), &unannotated).is_none());
}

#[test]
fn directories_are_made_and_removed_without_following_symlinks() {
    let tmp = tempfile::tempdir().unwrap();
    let volumes = tmp.path().join("volumes");
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("keep"), "x").unwrap();
    let dir = volumes.join("pvc-1_a_b");
    make_dir(&volumes, &dir).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("link")).unwrap();
    remove_dir(&volumes, &dir).unwrap();
    assert!(!dir.exists());
    assert!(outside.join("keep").exists());
    // A symlink in place of the directory is refused, and its target kept.
    std::os::unix::fs::symlink(&outside, &dir).unwrap();
    assert!(remove_dir(&volumes, &dir).is_err());
    assert!(make_dir(&volumes, &dir).is_err());
    assert!(outside.join("keep").exists());
    // Nothing outside the volumes folder.
    assert!(remove_dir(&volumes, &outside).is_err());
}

#[test]
fn the_capacity_note_names_the_filesystem() {
    let info = "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard\n\
                40 27 0:50 / /var/lib/skiff rw - xfs /dev/sdb1 rw,prjquota\n";
    let n = capacity_note(info, Path::new("/var/lib/skiff"));
    assert!(n.contains("xfs (/dev/sdb1 mounted at /var/lib/skiff) with project quotas, but skiff does not set them"), "{n}");
    let n = capacity_note(info, Path::new("/srv/data"));
    assert!(
        n.contains("ext4 (/dev/vda mounted at /) without project quotas"),
        "{n}"
    );
}
