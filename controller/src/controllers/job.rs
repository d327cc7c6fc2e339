//! The Job reconciler (`batch/v1`): runs pods from the template until `completions` of them
//! succeeded (NonIndexed), or one per index `0..completions` (Indexed, the index in the pod's
//! `batch.kubernetes.io/job-completion-index` annotation and label and `JOB_COMPLETION_INDEX`),
//! at most `parallelism` at a time; failed pods are replaced after an exponential back-off
//! (10 s doubling, 6 min at most) until more than `backoffLimit` failed (or, under
//! `restartPolicy: OnFailure`, the containers restarted `backoffLimit` times); an
//! `activeDeadlineSeconds` fails it; `suspend` deletes its running pods and creates none;
//! `ttlSecondsAfterFinished` deletes it once finished. Conditions as Kubernetes 1.32 writes
//! them: `SuccessCriteriaMet` then `Complete`, `FailureTarget` then `Failed`, `Suspended`.
//!
//! The counts come from the pods the Job owns (Kubernetes keeps them with a finalizer until
//! counted; skiff's pods stay until the Job is deleted, so counting them is the same — except
//! that a finished pod deleted by hand is no longer counted, and is run again).

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{json, Value};

use super::plan::{execute_all, Event, Write};
use super::replicaset::{owned_pods, pod_ready};
use crate::client::events::{Source, Type};
use crate::client::view::{View, WriteError};
use crate::model::meta;
use crate::model::store::ObjectKey;

/// The annotation (and label) with an Indexed Job's pod's index.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";

const BACKOFF_BASE: i64 = 10;
const BACKOFF_MAX: i64 = 360;

fn phase(pod: &Value) -> &str {
    pod["status"]["phase"].as_str().unwrap_or("Pending")
}

fn pod_active(pod: &Value) -> bool {
    !meta::is_terminating(pod) && !matches!(phase(pod), "Succeeded" | "Failed")
}

/// Whether the Job carries condition `ty` with status True.
pub fn has_condition(job: &Value, ty: &str) -> bool {
    job["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == ty && c["status"] == "True"))
}

/// Whether the Job is finished (Complete or Failed).
pub fn finished(job: &Value) -> bool {
    has_condition(job, "Complete") || has_condition(job, "Failed")
}

/// When a finished Job finished: `completionTime`, or its Failed condition's transition.
pub fn finish_time(job: &Value) -> Option<jiff::Timestamp> {
    let failed = job["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Failed"))
        .and_then(|c| c["lastTransitionTime"].as_str());
    job["status"]["completionTime"]
        .as_str()
        .or(failed)
        .and_then(|t| t.parse().ok())
}

fn index_of(pod: &Value) -> Option<i64> {
    meta::annotation(pod, COMPLETION_INDEX).and_then(|i| i.parse().ok())
}

/// `[0, 1, 2, 4]` as Kubernetes writes `completedIndexes`: `0-2,4`.
pub fn compress_indexes(indexes: &BTreeSet<i64>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut iter = indexes.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end = iter.next().unwrap_or(end);
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    parts.join(",")
}

/// When a failed pod failed: its containers' latest `finishedAt`, or its creation.
fn failed_at(pod: &Value) -> Option<jiff::Timestamp> {
    let statuses = pod["status"]["containerStatuses"].as_array();
    statuses
        .into_iter()
        .flatten()
        .filter_map(|c| c["state"]["terminated"]["finishedAt"].as_str())
        .max()
        .or(pod["metadata"]["creationTimestamp"].as_str())
        .and_then(|t| t.parse().ok())
}

/// Container restarts of the active pods (init containers included), which count against
/// `backoffLimit` under `restartPolicy: OnFailure`.
fn restarts(pods: &[&Arc<Value>]) -> i64 {
    pods.iter()
        .flat_map(|p| {
            ["containerStatuses", "initContainerStatuses"]
                .into_iter()
                .flat_map(|l| p["status"][l].as_array().cloned().unwrap_or_default())
        })
        .map(|c| c["restartCount"].as_i64().unwrap_or(0))
        .sum()
}

/// A new pod of the Job from its template, bound to `node`; Indexed: with its index.
fn new_pod(job: &Value, index: Option<i64>, suffix: &str, node: &str) -> Value {
    let template = &job["spec"]["template"];
    let job_name = meta::name(job);
    let name = match index {
        Some(i) => format!("{job_name}-{i}-{suffix}"),
        None => format!("{job_name}-{suffix}"),
    };
    let mut labels = template["metadata"]["labels"].clone();
    let mut annotations = template["metadata"]["annotations"].clone();
    let mut spec = template["spec"].clone();
    if let Some(i) = index {
        labels[COMPLETION_INDEX] = json!(i.to_string());
        annotations[COMPLETION_INDEX] = json!(i.to_string());
        if spec["hostname"].is_null() {
            spec["hostname"] = json!(format!("{job_name}-{i}"));
        }
        let env = json!({"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
            "fieldPath": format!("metadata.annotations['{COMPLETION_INDEX}']")}}});
        for list in ["initContainers", "containers"] {
            for c in spec[list].as_array_mut().into_iter().flatten() {
                match c["env"].as_array_mut() {
                    Some(e) => e.push(env.clone()),
                    None => c["env"] = json!([env.clone()]),
                }
            }
        }
    }
    let mut metadata = json!({
        "name": name,
        "namespace": meta::namespace(job),
        "labels": labels,
        "ownerReferences": [{
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": job_name,
            "uid": meta::uid(job),
            "controller": true,
            "blockOwnerDeletion": true,
        }],
    });
    if annotations.is_object() {
        metadata["annotations"] = annotations;
    }
    // One node: the pod is bound to it at once (what the scheduler would do).
    spec["nodeName"] = json!(node);
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec})
}

/// `conditions` with `ty` set to `status` (its transition time moved only on a change).
fn set_condition(
    conditions: &mut Vec<Value>,
    ty: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: &str,
) {
    let new = json!({"type": ty, "status": status, "reason": reason, "message": message,
        "lastProbeTime": now, "lastTransitionTime": now});
    match conditions.iter_mut().find(|c| c["type"] == ty) {
        Some(c) if c["status"] == status => {}
        Some(c) => *c = new,
        None => conditions.push(new),
    }
}

/// One pass over a Job, from the pods it owns (as cached) and the time: the pods to create
/// (named `<job>-<suffix()>`, Indexed `<job>-<index>-<suffix()>`, bound to `node`) or delete,
/// each with its Event, then the status; or, for a finished Job past its TTL, its deletion.
pub fn plan(
    job: &Value,
    pods: &[Arc<Value>],
    now: jiff::Timestamp,
    node: &str,
    mut suffix: impl FnMut() -> String,
) -> Vec<Write> {
    if meta::is_terminating(job) {
        return Vec::new();
    }
    let spec = &job["spec"];
    let event = |kind, reason, message| {
        Write::Event(Event {
            about: job.clone(),
            kind,
            reason,
            message,
            source: Source::JobController,
        })
    };
    let mut active: Vec<&Arc<Value>> = pods.iter().filter(|p| pod_active(p)).collect();
    let mut writes = Vec::new();
    let delete = |pods: &[&Arc<Value>], writes: &mut Vec<Write>| {
        for p in pods {
            writes.push(Write::Delete(ObjectKey::of(p)));
            writes.push(event(
                Type::Normal,
                "SuccessfulDelete",
                format!("Deleted pod: {}", meta::name(p)),
            ));
        }
    };
    if finished(job) {
        let ttl = spec["ttlSecondsAfterFinished"].as_i64();
        if let (Some(ttl), Some(at)) = (ttl, finish_time(job)) {
            if at.as_second() + ttl <= now.as_second() {
                return vec![Write::Delete(ObjectKey::of(job))];
            }
        }
        delete(&active, &mut writes);
        return writes;
    }
    let now_s = now.to_string();
    let indexed = spec["completionMode"] == "Indexed";
    let completions = spec["completions"].as_i64();
    let parallelism = spec["parallelism"].as_i64().unwrap_or(1).max(0);
    let backoff_limit = spec["backoffLimit"].as_i64().unwrap_or(6);
    let suspended = spec["suspend"] == true;
    let succeeded_pods: Vec<&Arc<Value>> =
        pods.iter().filter(|p| phase(p) == "Succeeded").collect();
    let failed_pods: Vec<&Arc<Value>> = pods.iter().filter(|p| phase(p) == "Failed").collect();
    let done_indexes: BTreeSet<i64> = succeeded_pods
        .iter()
        .filter_map(|p| index_of(p))
        .filter(|i| completions.is_some_and(|c| *i < c))
        .collect();
    let succeeded = if indexed {
        done_indexes.len() as i64
    } else {
        succeeded_pods.len() as i64
    };
    let failed = failed_pods.len() as i64;
    let mut status = job["status"].clone();
    if !status.is_object() {
        status = json!({});
    }
    let mut conditions: Vec<Value> = status["conditions"].as_array().cloned().unwrap_or_default();
    let was_suspended = has_condition(job, "Suspended");
    if !suspended && (status["startTime"].is_null() || was_suspended) {
        // Started, or resumed: the deadline counts from now.
        status["startTime"] = json!(now_s);
    }
    let start: Option<jiff::Timestamp> = status["startTime"].as_str().and_then(|t| t.parse().ok());

    let complete = match (indexed, completions) {
        (true, Some(c)) => done_indexes.len() as i64 >= c,
        (_, Some(c)) => succeeded >= c,
        // A work queue: done once one succeeded and none runs.
        (_, None) => succeeded > 0 && active.is_empty(),
    };
    let on_failure = spec["template"]["spec"]["restartPolicy"] == "OnFailure";
    let restarted = restarts(&active);
    let failure = if failed > backoff_limit
        || (on_failure
            && (if backoff_limit == 0 {
                restarted > 0
            } else {
                restarted >= backoff_limit
            })) {
        Some((
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        ))
    } else if let (Some(limit), Some(start), false) =
        (spec["activeDeadlineSeconds"].as_i64(), start, suspended)
    {
        (start.as_second() + limit <= now.as_second()).then_some((
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
        ))
    } else {
        None
    };

    let mut active_after = active.len() as i64;
    if complete || failure.is_some() {
        delete(&active, &mut writes);
        active_after = 0;
        match failure.filter(|_| !complete) {
            Some((reason, message)) => {
                set_condition(
                    &mut conditions,
                    "FailureTarget",
                    "True",
                    reason,
                    message,
                    &now_s,
                );
                set_condition(&mut conditions, "Failed", "True", reason, message, &now_s);
                writes.push(event(Type::Warning, reason, message.to_string()));
            }
            None => {
                let (reason, message) = (
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                );
                set_condition(
                    &mut conditions,
                    "SuccessCriteriaMet",
                    "True",
                    reason,
                    message,
                    &now_s,
                );
                set_condition(&mut conditions, "Complete", "True", reason, message, &now_s);
                status["completionTime"] = json!(now_s);
                writes.push(event(Type::Normal, "Completed", "Job completed".into()));
            }
        }
    } else if suspended {
        delete(&active, &mut writes);
        active_after = 0;
        if !was_suspended {
            set_condition(
                &mut conditions,
                "Suspended",
                "True",
                "JobSuspended",
                "Job suspended",
                &now_s,
            );
            writes.push(event(Type::Normal, "Suspended", "Job suspended".into()));
        }
    } else {
        if was_suspended {
            set_condition(
                &mut conditions,
                "Suspended",
                "False",
                "JobResumed",
                "Job resumed",
                &now_s,
            );
            writes.push(event(Type::Normal, "Resumed", "Job resumed".into()));
        }
        // Which pods should run: the indexes not done and not running, or a count.
        let running_indexes: BTreeSet<i64> = active.iter().filter_map(|p| index_of(p)).collect();
        let mut todo: Vec<Option<i64>> = match (indexed, completions) {
            (true, Some(c)) => (0..c)
                .filter(|i| !done_indexes.contains(i) && !running_indexes.contains(i))
                .map(Some)
                .collect(),
            (_, Some(c)) => vec![None; (c - succeeded - active.len() as i64).max(0) as usize],
            (_, None) if succeeded > 0 => Vec::new(),
            (_, None) => vec![None; parallelism as usize],
        };
        let remaining = todo.len() as i64 + active.len() as i64;
        let want_active = parallelism.min(remaining);
        if (active.len() as i64) > want_active {
            // Fewer at a time (parallelism lowered): the newest go.
            active.sort_by_key(|p| {
                std::cmp::Reverse(
                    p["metadata"]["creationTimestamp"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                )
            });
            let surplus = active.len() - want_active as usize;
            delete(&active[..surplus], &mut writes);
            active_after = want_active;
        } else if (active.len() as i64) < want_active {
            let last_failure = failed_pods.iter().filter_map(|p| failed_at(p)).max();
            let delay = if failed == 0 {
                0
            } else {
                (BACKOFF_BASE << (failed - 1).min(6)).min(BACKOFF_MAX)
            };
            let backing_off = last_failure.is_some_and(|t| now.as_second() < t.as_second() + delay);
            if !backing_off {
                todo.truncate((want_active - active.len() as i64) as usize);
                for index in todo {
                    let pod = new_pod(job, index, &suffix(), node);
                    let message = format!("Created pod: {}", meta::name(&pod));
                    writes.push(Write::Create(pod));
                    writes.push(event(Type::Normal, "SuccessfulCreate", message));
                    active_after += 1;
                }
            }
        }
    }
    let put = |status: &mut Value, key: &str, n: i64| {
        if n > 0 {
            status[key] = json!(n);
        } else if let Some(m) = status.as_object_mut() {
            m.remove(key);
        }
    };
    put(&mut status, "active", active_after);
    put(&mut status, "succeeded", succeeded);
    put(&mut status, "failed", failed);
    let ready = if active_after == 0 {
        0
    } else {
        active.iter().filter(|p| pod_ready(p)).count()
    };
    status["ready"] = json!(ready);
    status["uncountedTerminatedPods"] = json!({});
    if indexed && !done_indexes.is_empty() {
        status["completedIndexes"] = json!(compress_indexes(&done_indexes));
    }
    if !conditions.is_empty() {
        status["conditions"] = json!(conditions);
    }
    writes.push(Write::UpdateStatus(ObjectKey::of(job), status));
    writes
}

/// Reconciles one Job: performs its plan, in order.
pub async fn reconcile(view: &View, job: &Value) -> Result<(), WriteError> {
    let pods = owned_pods(view, meta::namespace(job), meta::uid(job));
    let writes = plan(
        job,
        &pods,
        jiff::Timestamp::now(),
        crate::model::node::name(),
        meta::random_suffix,
    );
    execute_all(view, writes).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::plan::describe;

    const NOW: &str = "2026-01-01T12:00:00Z";

    fn now() -> jiff::Timestamp {
        NOW.parse().unwrap()
    }

    fn job(completions: i64, parallelism: i64) -> Value {
        let mut j = json!({"apiVersion": "batch/v1", "kind": "Job",
          "metadata": {"name": "pi", "namespace": "default", "uid": "job-uid"},
          "spec": {"completions": completions, "parallelism": parallelism, "backoffLimit": 1,
            "template": {"metadata": {"labels": {"batch.kubernetes.io/job-name": "pi"}},
              "spec": {"restartPolicy": "Never",
                "containers": [{"name": "pi", "image": "demo:1", "env": [{"name": "A", "value": "b"}]}]}}}});
        crate::model::defaults::apply(&mut j);
        j
    }

    fn indexed(completions: i64, parallelism: i64) -> Value {
        let mut j = job(completions, parallelism);
        j["spec"]["completionMode"] = json!("Indexed");
        j
    }

    fn pod(name: &str, phase: &str, index: Option<i64>) -> Arc<Value> {
        let mut p = json!({"apiVersion": "v1", "kind": "Pod",
          "metadata": {"name": name, "namespace": "default",
            "creationTimestamp": "2026-01-01T11:00:00Z",
            "ownerReferences": [{"kind": "Job", "name": "pi", "uid": "job-uid", "controller": true}]},
          "status": {"phase": phase, "containerStatuses": [{"name": "pi", "restartCount": 0,
            "state": {"terminated": {"finishedAt": "2026-01-01T11:59:55Z"}}}]}});
        if let Some(i) = index {
            p["metadata"]["annotations"] = json!({COMPLETION_INDEX: i.to_string()});
        }
        Arc::new(p)
    }

    fn suffixes() -> impl FnMut() -> String {
        let mut next = b'a';
        move || {
            let s = (next as char).to_string().repeat(5);
            next += 1;
            s
        }
    }

    fn status(writes: &[Write]) -> &Value {
        match writes.last() {
            Some(Write::UpdateStatus(_, s)) => s,
            other => panic!("no status last: {other:?}"),
        }
    }

    fn with_status(mut j: Value, s: &Value) -> Value {
        j["status"] = s.clone();
        j
    }

    #[test]
    fn a_new_job_starts_parallelism_pods_and_records_its_start() {
        let writes = plan(&job(3, 2), &[], now(), "node-1", suffixes());
        assert_eq!(
            describe(&writes),
            [
                "create Pod default/pi-aaaaa",
                "event SuccessfulCreate: Created pod: pi-aaaaa",
                "create Pod default/pi-bbbbb",
                "event SuccessfulCreate: Created pod: pi-bbbbb",
                "status Job default/pi",
            ]
        );
        let Write::Create(p) = &writes[0] else {
            unreachable!()
        };
        assert_eq!(p["spec"]["nodeName"], "node-1");
        assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "Job");
        assert_eq!(
            p["metadata"]["labels"]["batch.kubernetes.io/job-name"],
            "pi"
        );
        assert!(p["metadata"]["annotations"].is_null());
        let s = status(&writes);
        assert_eq!(s["active"], 2);
        assert_eq!(s["startTime"], NOW);
        assert!(s.get("succeeded").is_none());
    }

    #[test]
    fn only_the_completions_left_are_started() {
        let pods = [
            pod("pi-a", "Succeeded", None),
            pod("pi-b", "Succeeded", None),
            pod("pi-c", "Running", None),
        ];
        let writes = plan(&job(3, 2), &pods, now(), "node-1", suffixes());
        assert_eq!(describe(&writes), ["status Job default/pi"]);
        assert_eq!(status(&writes)["succeeded"], 2);
        assert_eq!(status(&writes)["active"], 1);
    }

    #[test]
    fn the_last_success_completes_the_job_with_kubernetes_conditions() {
        let pods = [
            pod("pi-a", "Succeeded", None),
            pod("pi-b", "Succeeded", None),
            pod("pi-c", "Succeeded", None),
        ];
        let j = with_status(job(3, 2), &json!({"startTime": "2026-01-01T11:59:00Z"}));
        let writes = plan(&j, &pods, now(), "node-1", suffixes());
        assert_eq!(
            describe(&writes),
            ["event Completed: Job completed", "status Job default/pi"]
        );
        let s = status(&writes);
        let types: Vec<&str> = s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["SuccessCriteriaMet", "Complete"]);
        assert_eq!(s["completionTime"], NOW);
        assert_eq!(s["startTime"], "2026-01-01T11:59:00Z");
        assert_eq!(s["succeeded"], 3);
        // Done: the next pass writes nothing (no TTL).
        let done = with_status(j, s);
        assert!(plan(&done, &pods, now(), "node-1", suffixes()).is_empty());
    }

    #[test]
    fn indexed_jobs_run_each_missing_index_once_with_its_env() {
        let pods = [
            pod("pi-0-x", "Succeeded", Some(0)),
            pod("pi-2-y", "Running", Some(2)),
        ];
        let writes = plan(&indexed(4, 2), &pods, now(), "node-1", suffixes());
        assert_eq!(
            describe(&writes),
            [
                "create Pod default/pi-1-aaaaa",
                "event SuccessfulCreate: Created pod: pi-1-aaaaa",
                "status Job default/pi",
            ]
        );
        let Write::Create(p) = &writes[0] else {
            unreachable!()
        };
        assert_eq!(p["metadata"]["annotations"][COMPLETION_INDEX], "1");
        assert_eq!(p["metadata"]["labels"][COMPLETION_INDEX], "1");
        assert_eq!(p["spec"]["hostname"], "pi-1");
        let env = &p["spec"]["containers"][0]["env"];
        assert_eq!(env[0]["name"], "A");
        assert_eq!(env[1]["name"], "JOB_COMPLETION_INDEX");
        assert_eq!(
            env[1]["valueFrom"]["fieldRef"]["fieldPath"],
            "metadata.annotations['batch.kubernetes.io/job-completion-index']"
        );
        assert_eq!(status(&writes)["completedIndexes"], "0");
        // A second success of the same index does not count twice.
        let pods = [
            pod("pi-0-x", "Succeeded", Some(0)),
            pod("pi-0-z", "Succeeded", Some(0)),
            pod("pi-1-a", "Succeeded", Some(1)),
            pod("pi-3-a", "Succeeded", Some(3)),
        ];
        let writes = plan(&indexed(4, 2), &pods, now(), "node-1", suffixes());
        assert_eq!(status(&writes)["succeeded"], 3);
        assert_eq!(status(&writes)["completedIndexes"], "0-1,3");
        assert_eq!(describe(&writes)[0], "create Pod default/pi-2-aaaaa");
    }

    #[test]
    fn failures_back_off_then_past_the_limit_fail_the_job() {
        // One failure (limit 1): replaced, but only 10 s after it failed.
        let pods = [pod("pi-a", "Failed", None)];
        let writes = plan(&job(1, 1), &pods, now(), "node-1", suffixes());
        assert_eq!(describe(&writes), ["status Job default/pi"]);
        let later: jiff::Timestamp = "2026-01-01T12:00:06Z".parse().unwrap();
        let writes = plan(&job(1, 1), &pods, later, "node-1", suffixes());
        assert_eq!(describe(&writes)[0], "create Pod default/pi-aaaaa");
        assert_eq!(status(&writes)["failed"], 1);
        // Two failures: more than backoffLimit.
        let pods = [
            pod("pi-a", "Failed", None),
            pod("pi-b", "Failed", None),
            pod("pi-c", "Running", None),
        ];
        let writes = plan(&job(1, 1), &pods, now(), "node-1", suffixes());
        assert_eq!(
            describe(&writes),
            [
                "delete Pod default/pi-c",
                "event SuccessfulDelete: Deleted pod: pi-c",
                "event BackoffLimitExceeded: Job has reached the specified backoff limit",
                "status Job default/pi",
            ]
        );
        let s = status(&writes);
        assert_eq!(s["conditions"][0]["type"], "FailureTarget");
        assert_eq!(s["conditions"][1]["type"], "Failed");
        assert_eq!(s["conditions"][1]["reason"], "BackoffLimitExceeded");
        assert!(s.get("completionTime").is_none());
        assert!(s.get("active").is_none());
    }

    #[test]
    fn on_failure_restarts_count_against_the_limit() {
        let mut j = job(1, 1);
        j["spec"]["template"]["spec"]["restartPolicy"] = json!("OnFailure");
        let mut p = (*pod("pi-a", "Running", None)).clone();
        p["status"]["containerStatuses"][0]["restartCount"] = json!(1);
        let writes = plan(&j, &[Arc::new(p)], now(), "node-1", suffixes());
        assert_eq!(
            status(&writes)["conditions"][1]["reason"],
            "BackoffLimitExceeded"
        );
    }

    #[test]
    fn the_active_deadline_fails_the_job() {
        let mut j = with_status(job(2, 1), &json!({"startTime": "2026-01-01T11:59:00Z"}));
        j["spec"]["activeDeadlineSeconds"] = json!(60);
        let pods = [pod("pi-a", "Running", None)];
        let writes = plan(&j, &pods, now(), "node-1", suffixes());
        assert_eq!(describe(&writes)[0], "delete Pod default/pi-a");
        assert_eq!(
            status(&writes)["conditions"][1]["reason"],
            "DeadlineExceeded"
        );
        j["spec"]["activeDeadlineSeconds"] = json!(61);
        let writes = plan(&j, &pods, now(), "node-1", suffixes());
        assert_eq!(describe(&writes), ["status Job default/pi"]);
    }

    #[test]
    fn suspend_stops_the_pods_and_resume_restarts_the_clock() {
        let mut j = with_status(job(2, 2), &json!({"startTime": "2026-01-01T11:00:00Z"}));
        j["spec"]["suspend"] = json!(true);
        let pods = [pod("pi-a", "Running", None)];
        let writes = plan(&j, &pods, now(), "node-1", suffixes());
        assert_eq!(
            describe(&writes),
            [
                "delete Pod default/pi-a",
                "event SuccessfulDelete: Deleted pod: pi-a",
                "event Suspended: Job suspended",
                "status Job default/pi",
            ]
        );
        let suspended = with_status(j.clone(), status(&writes));
        assert_eq!(suspended["status"]["conditions"][0]["type"], "Suspended");
        let mut resumed = suspended;
        resumed["spec"]["suspend"] = json!(false);
        let writes = plan(&resumed, &[], now(), "node-1", suffixes());
        assert_eq!(describe(&writes)[0], "event Resumed: Job resumed");
        assert_eq!(describe(&writes)[1], "create Pod default/pi-aaaaa");
        let s = status(&writes);
        assert_eq!(s["startTime"], NOW);
        assert_eq!(s["conditions"][0]["status"], "False");
    }

    #[test]
    fn a_finished_job_is_deleted_after_its_ttl() {
        let mut j = with_status(
            job(1, 1),
            &json!({"completionTime": "2026-01-01T11:59:50Z",
            "conditions": [{"type": "Complete", "status": "True"}]}),
        );
        j["spec"]["ttlSecondsAfterFinished"] = json!(10);
        assert_eq!(
            describe(&plan(&j, &[], now(), "n", suffixes())),
            ["delete Job default/pi"]
        );
        j["spec"]["ttlSecondsAfterFinished"] = json!(11);
        assert!(plan(&j, &[], now(), "n", suffixes()).is_empty());
    }

    #[test]
    fn a_work_queue_is_done_when_one_succeeded_and_none_runs() {
        let mut j = job(1, 3);
        j["spec"].as_object_mut().unwrap().remove("completions");
        let writes = plan(&j, &[], now(), "n", suffixes());
        assert_eq!(status(&writes)["active"], 3);
        let pods = [pod("pi-a", "Succeeded", None), pod("pi-b", "Running", None)];
        let writes = plan(&j, &pods, now(), "n", suffixes());
        assert_eq!(describe(&writes), ["status Job default/pi"]);
        let pods = [
            pod("pi-a", "Succeeded", None),
            pod("pi-b", "Succeeded", None),
        ];
        let writes = plan(&j, &pods, now(), "n", suffixes());
        assert_eq!(describe(&writes)[0], "event Completed: Job completed");
    }

    #[test]
    fn indexes_compress_as_kubernetes_writes_them() {
        let set = |v: &[i64]| v.iter().copied().collect::<BTreeSet<i64>>();
        assert_eq!(compress_indexes(&set(&[0, 1, 2, 4, 6, 7])), "0-2,4,6-7");
        assert_eq!(compress_indexes(&set(&[])), "");
    }
}
