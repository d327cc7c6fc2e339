//! A pod's status as Kubernetes reports it, from what the pod worker knows: phase, conditions,
//! and per container its state (waiting / running / terminated with exit code and reason),
//! last state, readiness and restart count. Timestamps come from the shim's records, and
//! conditions keep their transition time while unchanged, so an unchanged pod gives an
//! identical status (and the store is not written).

use k8s_openapi::api::core::v1::{
    ContainerState as KState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodSpec, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::init::{is_sidecar, InitStep};
use super::restart::restart_wanted;
use super::{ContainerState, PodState};
use crate::runtime::ExitRecord;

/// A timestamp at the seconds precision Kubernetes objects use.
fn time(s: &str) -> Option<Time> {
    let t = s.parse::<jiff::Timestamp>().ok()?;
    jiff::Timestamp::from_second(t.as_second()).ok().map(Time)
}

fn terminated(exit: &ExitRecord, id: &str) -> ContainerStateTerminated {
    ContainerStateTerminated {
        exit_code: exit.exit_code,
        signal: exit.signal,
        reason: Some(exit.reason.clone()),
        message: exit.message.clone(),
        started_at: exit.started_at.as_deref().and_then(time),
        finished_at: time(&exit.finished_at),
        container_id: Some(format!("skiff://{id}")),
    }
}

/// `waiting` is the reason of a container not created yet: `ContainerCreating`, or
/// `PodInitializing` in a pod with init containers (as kubelet has it).
fn terminated_state(exit: &ExitRecord, id: &str) -> KState {
    KState {
        terminated: Some(terminated(exit, id)),
        ..Default::default()
    }
}

fn container_status(
    name: &str,
    image: &str,
    cs: Option<&ContainerState>,
    waiting: &str,
) -> ContainerStatus {
    let mut status = ContainerStatus {
        name: name.to_string(),
        image: image.to_string(),
        image_id: String::new(),
        ready: false,
        started: Some(false),
        restart_count: 0,
        state: Some(KState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(waiting.into()),
                message: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let Some(cs) = cs else { return status };
    status.restart_count = cs.restart_count as i32;
    if let Some((exit, id, image_id)) = &cs.last_exit {
        status.image_id = image_id.clone();
        status.container_id = Some(format!("skiff://{id}"));
        status.state = Some(terminated_state(exit, id));
    }
    if let Some(inst) = &cs.current {
        status.image_id = inst.image_id.clone();
        status.container_id = Some(format!("skiff://{}", inst.id));
        if let Some(started) = inst.started_at.as_deref() {
            // Started once its startup probe passed; ready once started (and its readiness
            // probe says so).
            status.ready = inst.started() && inst.ready.unwrap_or(true);
            status.started = Some(inst.started());
            status.state = Some(KState {
                running: Some(ContainerStateRunning {
                    started_at: time(started),
                }),
                ..Default::default()
            });
        } else {
            status.state = Some(KState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(waiting.into()),
                    message: None,
                }),
                ..Default::default()
            });
        }
        if let Some((exit, id, _)) = &cs.last_exit {
            status.last_state = Some(terminated_state(exit, id));
        }
    } else if let Some((reason, message)) = &cs.waiting {
        if let Some((exit, id, _)) = &cs.last_exit {
            status.last_state = Some(terminated_state(exit, id));
        }
        // Being created (its image pulled): `PodInitializing` in a pod with init containers.
        let reason = if reason == "ContainerCreating" {
            waiting
        } else {
            reason
        };
        status.state = Some(KState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.to_string()),
                message: Some(message.clone()),
            }),
            ..Default::default()
        });
    } else if cs.last_exit.is_some() {
        if let Some(prev) = &cs.previous_exit {
            let id = status.container_id.clone().unwrap_or_default();
            status.last_state = Some(terminated_state(prev, id.trim_start_matches("skiff://")));
        }
    }
    status
}

/// Whether a pod with this status has finished for good (Succeeded or Failed, evicted
/// included): nothing of it runs again, and its address is released.
pub fn finished(status: &PodStatus) -> bool {
    matches!(status.phase.as_deref(), Some("Succeeded" | "Failed"))
}

/// The pod's phase: Succeeded or Failed once every container has exited for good (by the
/// restart policy) and no sidecar runs, Running while one runs or will restart, Pending before.
fn phase(
    spec: &PodSpec,
    policy: &str,
    state: &PodState,
    statuses: &[ContainerStatus],
) -> &'static str {
    let running = statuses
        .iter()
        .any(|s| s.state.as_ref().is_some_and(|st| st.running.is_some()));
    let finished: Vec<&ExitRecord> = spec
        .containers
        .iter()
        .filter_map(|c| state.containers.get(&c.name))
        .filter(|cs| cs.current.is_none())
        .filter_map(|cs| cs.last_exit.as_ref().map(|(e, _, _)| e))
        .filter(|e| !restart_wanted(policy, e))
        .collect();
    let restarting = spec
        .containers
        .iter()
        .filter_map(|c| state.containers.get(&c.name))
        .any(|cs| {
            cs.current.is_none()
                && cs
                    .last_exit
                    .as_ref()
                    .is_some_and(|(e, _, _)| restart_wanted(policy, e))
        });
    // A sidecar still running (being stopped once the app containers finished) keeps the pod
    // Running, as kubelet's getPhase counts it.
    let sidecar_running = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| is_sidecar(c))
        .any(|c| {
            state
                .containers
                .get(&c.name)
                .is_some_and(|cs| cs.current.is_some())
        });
    if finished.len() == spec.containers.len() && !spec.containers.is_empty() && sidecar_running {
        "Running"
    } else if finished.len() == spec.containers.len() && !spec.containers.is_empty() {
        if finished.iter().all(|e| e.exit_code == 0) {
            "Succeeded"
        } else {
            "Failed"
        }
    } else if running || restarting {
        "Running"
    } else {
        "Pending"
    }
}

/// The statuses of the app and the init containers. (Init containers are never ready, but
/// sidecars are, as app containers.)
fn statuses(spec: &PodSpec, state: &PodState) -> (Vec<ContainerStatus>, Vec<ContainerStatus>) {
    let inits = spec.init_containers.as_deref().unwrap_or_default();
    let not_created = if inits.is_empty() {
        "ContainerCreating"
    } else {
        "PodInitializing"
    };
    let status_of = |c: &k8s_openapi::api::core::v1::Container| {
        let image = c.image.as_deref().unwrap_or_default();
        container_status(&c.name, image, state.containers.get(&c.name), not_created)
    };
    let init_statuses = inits
        .iter()
        .map(|c| {
            let status = status_of(c);
            ContainerStatus {
                ready: status.ready && is_sidecar(c),
                ..status
            }
        })
        .collect();
    (
        spec.containers.iter().map(status_of).collect(),
        init_statuses,
    )
}

/// The status of `pod` given what the worker knows, on the node at `host_ip`.
pub(crate) fn pod_status(pod: &Pod, state: &PodState, host_ip: std::net::Ipv4Addr) -> PodStatus {
    let spec = pod.spec.clone().unwrap_or_default();
    let policy = spec
        .restart_policy
        .clone()
        .unwrap_or_else(|| "Always".into());
    let (statuses, init_statuses) = statuses(&spec, state);
    // Sidecars count toward readiness as app containers do.
    let sidecars_ready = spec
        .init_containers
        .iter()
        .flatten()
        .zip(&init_statuses)
        .all(|(c, s)| !is_sidecar(c) || s.ready);
    let all_ready = !statuses.is_empty() && statuses.iter().all(|s| s.ready) && sidecars_ready;
    let step = state.init_step(&spec, &policy);
    let phase = match step {
        _ if state.evicted.is_some() => "Failed",
        InitStep::Done => phase(&spec, &policy, state, &statuses),
        InitStep::Failed(_) => "Failed",
        InitStep::Start(_) | InitStep::Wait(_) => "Pending",
    };
    let old = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let now = crate::runtime::now_rfc3339();
    let condition = |t: &str, ok: bool, reason: Option<&str>| {
        let value = if ok { "True" } else { "False" };
        let since = old
            .iter()
            .find(|c| c.type_ == t && c.status == value)
            .and_then(|c| c.last_transition_time.clone())
            .or_else(|| time(&now));
        PodCondition {
            type_: t.to_string(),
            status: value.to_string(),
            last_transition_time: since,
            reason: reason.filter(|_| !ok).map(String::from),
            ..Default::default()
        }
    };
    let not_ready_reason = if phase == "Succeeded" || phase == "Failed" {
        "PodCompleted"
    } else {
        "ContainersNotReady"
    };
    let host_ip = host_ip.to_string();
    // A hostNetwork pod has the node's address, as on Kubernetes (its `hostIP`: 127.0.0.1
    // only when the node has no other address).
    let pod_ip = if state.host_network {
        Some(host_ip.clone())
    } else {
        state.pod_ip.map(|ip| ip.to_string())
    };
    let mut conditions = vec![
        condition("PodScheduled", true, None),
        condition(
            "Initialized",
            step == InitStep::Done,
            Some("ContainersNotInitialized"),
        ),
        condition("ContainersReady", all_ready, Some(not_ready_reason)),
        condition("Ready", all_ready, Some(not_ready_reason)),
    ];
    // kubelet's eviction: the pod's reason and message, and the DisruptionTarget condition.
    if let Some(message) = &state.evicted {
        conditions.push(PodCondition {
            type_: "DisruptionTarget".into(),
            status: "True".into(),
            reason: Some("TerminationByKubelet".into()),
            message: Some(message.trim_end().to_string()),
            ..condition("DisruptionTarget", true, None)
        });
    }
    PodStatus {
        phase: Some(phase.to_string()),
        reason: state
            .evicted
            .as_ref()
            .map(|_| super::eviction::REASON.to_string()),
        message: state.evicted.clone(),
        conditions: Some(conditions),
        container_statuses: Some(statuses),
        init_container_statuses: (!init_statuses.is_empty()).then_some(init_statuses),
        start_time: time(&state.start_time),
        host_ips: Some(vec![HostIP {
            ip: host_ip.clone(),
        }]),
        host_ip: Some(host_ip),
        pod_ips: pod_ip.clone().map(|ip| vec![PodIP { ip }]),
        pod_ip,
        qos_class: Some(qos_class(&spec).into()),
        ..Default::default()
    }
}

/// The events a status change means, as kubelet reports them: (reason, warning, message).
pub(crate) fn events(
    old: Option<&PodStatus>,
    new: &PodStatus,
) -> Vec<(&'static str, bool, String)> {
    let mut out = Vec::new();
    let old_statuses = old
        .and_then(|s| s.container_statuses.clone())
        .unwrap_or_default();
    let old_statuses: Vec<ContainerStatus> = old_statuses
        .into_iter()
        .chain(
            old.and_then(|s| s.init_container_statuses.clone())
                .into_iter()
                .flatten(),
        )
        .collect();
    let new_statuses = new.container_statuses.iter().flatten();
    for c in new_statuses.chain(new.init_container_statuses.iter().flatten()) {
        let before = old_statuses.iter().find(|o| o.name == c.name);
        let state = c.state.clone().unwrap_or_default();
        let old_state = before.and_then(|b| b.state.clone()).unwrap_or_default();
        if let Some(running) = &state.running {
            if old_state.running.as_ref().map(|r| &r.started_at) != Some(&running.started_at) {
                out.push(("Created", false, format!("Created container {}", c.name)));
                out.push(("Started", false, format!("Started container {}", c.name)));
            }
        }
        if let Some(w) = &state.waiting {
            let reason = w.reason.as_deref().unwrap_or_default();
            let changed =
                old_state.waiting.as_ref().and_then(|o| o.reason.as_deref()) != Some(reason);
            if changed && reason == "CrashLoopBackOff" {
                out.push((
                    "BackOff",
                    true,
                    format!("Back-off restarting failed container {}", c.name),
                ));
            } else if changed && reason != "ContainerCreating" && reason != "PodInitializing" {
                out.push((
                    "Failed",
                    true,
                    format!("Error: {reason}: {}", w.message.clone().unwrap_or_default()),
                ));
            }
        }
    }
    out
}

/// The pod's QoS class as Kubernetes computes it (`GetPodQOS`) over cpu and memory of every
/// container, init containers included: BestEffort with no request or limit at all;
/// Guaranteed when every container limits both and every request equals its limit (a missing
/// request defaults to the limit, as the API server's defaulting sets it); else Burstable.
pub(crate) fn qos_class(spec: &PodSpec) -> &'static str {
    use std::collections::BTreeMap;
    const SUPPORTED: [&str; 2] = ["cpu", "memory"];
    // Millicores and bytes, in thousandths: equal quantities compare equal.
    let amount = |q: &k8s_openapi::apimachinery::pkg::api::resource::Quantity| {
        crate::runtime::oci::parse_quantity(&q.0, 1000.0).unwrap_or(0)
    };
    let mut requests: BTreeMap<&str, i64> = BTreeMap::new();
    let mut limits: BTreeMap<&str, i64> = BTreeMap::new();
    let mut guaranteed = true;
    let all = spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter());
    for c in all {
        let res = c.resources.as_ref();
        let lim = res.and_then(|r| r.limits.as_ref());
        let req = res.and_then(|r| r.requests.as_ref());
        let mut found = 0;
        for name in SUPPORTED {
            let l = lim.and_then(|m| m.get(name)).map(amount).filter(|v| *v > 0);
            // A request not given is the limit (Kubernetes defaults it so).
            let r = req
                .and_then(|m| m.get(name))
                .map(amount)
                .or(l)
                .filter(|v| *v > 0);
            if let Some(r) = r {
                *requests.entry(name).or_default() += r;
            }
            if let Some(l) = l {
                found += 1;
                *limits.entry(name).or_default() += l;
            }
        }
        if found < SUPPORTED.len() {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    if guaranteed
        && requests.len() == limits.len()
        && requests.iter().all(|(n, r)| limits.get(n) == Some(r))
    {
        return "Guaranteed";
    }
    "Burstable"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(resources: &[serde_json::Value]) -> PodSpec {
        let containers: Vec<serde_json::Value> = resources
            .iter()
            .enumerate()
            .map(
                |(i, r)| serde_json::json!({"name": format!("c{i}"), "image": "i", "resources": r}),
            )
            .collect();
        serde_json::from_value(serde_json::json!({"containers": containers})).unwrap()
    }

    #[test]
    fn qos_classes_as_kubernetes_computes_them() {
        use serde_json::json;
        assert_eq!(qos_class(&spec(&[json!({})])), "BestEffort");
        let both = json!({"limits": {"cpu": "500m", "memory": "128Mi"}});
        assert_eq!(qos_class(&spec(std::slice::from_ref(&both))), "Guaranteed");
        let equal = json!({"limits": {"cpu": "0.5", "memory": "128Mi"},
                           "requests": {"cpu": "500m", "memory": "134217728"}});
        assert_eq!(qos_class(&spec(&[equal, both.clone()])), "Guaranteed");
        let lower = json!({"limits": {"cpu": "1", "memory": "128Mi"}, "requests": {"cpu": "100m"}});
        assert_eq!(qos_class(&spec(&[lower])), "Burstable");
        let only_requests = json!({"requests": {"memory": "64Mi"}});
        assert_eq!(qos_class(&spec(&[only_requests])), "Burstable");
        // One container without limits makes the pod Burstable.
        assert_eq!(qos_class(&spec(&[both, json!({})])), "Burstable");
        // Other resources do not count.
        let storage = json!({"limits": {"ephemeral-storage": "1Gi"}});
        assert_eq!(qos_class(&spec(&[storage])), "BestEffort");
    }

    #[test]
    fn addresses_are_the_nodes_and_the_pods() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u"},
            "spec": {"containers": [{"name": "c", "image": "i"}]}}))
        .unwrap();
        let r = crate::pod::PodRef::of(&pod);
        let node: std::net::Ipv4Addr = "192.0.2.10".parse().unwrap();
        let mut state = PodState::new(r.clone(), false, "2026-01-01T12:00:00Z".into());
        state.pod_ip = Some("10.244.0.7".parse().unwrap());
        let s = pod_status(&pod, &state, node);
        assert_eq!(s.host_ip.as_deref(), Some("192.0.2.10"));
        assert_eq!(
            s.host_ips,
            Some(vec![HostIP {
                ip: "192.0.2.10".into()
            }])
        );
        assert_eq!(s.pod_ip.as_deref(), Some("10.244.0.7"));
        assert_eq!(
            s.pod_ips,
            Some(vec![PodIP {
                ip: "10.244.0.7".into()
            }])
        );
        assert_eq!(s.start_time, time("2026-01-01T12:00:00Z"));
        // hostNetwork: the node's address.
        let state = PodState::new(r, true, "2026-01-01T12:00:00Z".into());
        let s = pod_status(&pod, &state, node);
        assert_eq!(s.host_ip.as_deref(), Some("192.0.2.10"));
        assert_eq!(s.pod_ip.as_deref(), Some("192.0.2.10"));
        assert_eq!(
            s.pod_ips,
            Some(vec![PodIP {
                ip: "192.0.2.10".into()
            }])
        );
    }
}
