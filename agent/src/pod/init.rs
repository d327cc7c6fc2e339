//! Init containers, as kubelet runs them: one at a time, in order, each to successful
//! completion, before any app container starts. Pure functions: which init container runs
//! next, and whether the pod is initialized or failed.

use k8s_openapi::api::core::v1::{Pod, PodSpec};

use super::{ContainerState, PodState};
use crate::runtime::ExitRecord;

/// What the worker knows of one init container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InitView {
    /// Never started (or its exit is unknown).
    NotRun,
    /// An instance exists (starting, running or stopping).
    Running,
    /// Its last run exited 0: it is not run again while the pod lives.
    Completed,
    /// Its last run failed.
    Failed,
}

impl InitView {
    /// The view of an init container from its instance and last exit.
    pub(crate) fn of(running: bool, last_exit: Option<&ExitRecord>) -> InitView {
        match (running, last_exit) {
            (true, _) => InitView::Running,
            (false, Some(e)) if e.exit_code == 0 => InitView::Completed,
            (false, Some(_)) => InitView::Failed,
            (false, None) => InitView::NotRun,
        }
    }
}

/// Where a pod's initialization stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InitStep {
    /// Every init container completed: the app containers may start.
    Done,
    /// Init container `i` is to be started (first run, or a restart after a failure — the
    /// crash back-off still applies).
    Start(usize),
    /// Init container `i` runs: wait for it.
    Wait(usize),
    /// Init container `i` failed and `restartPolicy: Never` keeps it so: the pod failed.
    Failed(usize),
}

/// The next step of initialization under `restartPolicy` `policy`, given the init containers'
/// views in order. A failed init container is restarted under Always and OnFailure alike.
pub(crate) fn next_step(policy: &str, views: &[InitView]) -> InitStep {
    for (i, v) in views.iter().enumerate() {
        match v {
            InitView::Completed => continue,
            InitView::Running => return InitStep::Wait(i),
            InitView::Failed if policy == "Never" => return InitStep::Failed(i),
            InitView::Failed | InitView::NotRun => return InitStep::Start(i),
        }
    }
    InitStep::Done
}

impl PodState {
    /// Where the pod's initialization stands under `policy`.
    pub(crate) fn init_step(&self, spec: &PodSpec, policy: &str) -> InitStep {
        if self.initialized {
            return InitStep::Done;
        }
        let views: Vec<InitView> = spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| match self.containers.get(&c.name) {
                Some(cs) => InitView::of(cs.current.is_some(), cs.last_exit.as_ref().map(|e| &e.0)),
                None => InitView::NotRun,
            })
            .collect();
        next_step(policy, &views)
    }

    /// What the stored status says of an initialization done by an earlier daemon (whose
    /// instances are gone): the Initialized condition, and the init containers that completed
    /// (their exits recorded again, so that they are not run twice). Also: an app container
    /// that runs or ran means the pod was initialized.
    pub(crate) fn recall_init(&mut self, pod: &Pod) {
        let spec = pod.spec.as_ref();
        let app_started = spec.into_iter().flat_map(|s| &s.containers).any(|c| {
            self.containers
                .get(&c.name)
                .is_some_and(|cs| cs.current.is_some() || cs.last_exit.is_some())
        });
        let status = pod.status.as_ref();
        let initialized = status
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .any(|c| c.type_ == "Initialized" && c.status == "True");
        let has_init =
            spec.is_some_and(|s| s.init_containers.as_ref().is_some_and(|i| !i.is_empty()));
        if has_init && (app_started || initialized) {
            self.initialized = true;
        }
        for st in status
            .and_then(|s| s.init_container_statuses.as_ref())
            .into_iter()
            .flatten()
        {
            let Some(t) = st.state.as_ref().and_then(|s| s.terminated.as_ref()) else {
                continue;
            };
            if t.exit_code != 0 {
                continue;
            }
            let cs = self.containers.entry(st.name.clone()).or_default();
            if cs.current.is_some() || cs.last_exit.is_some() {
                continue;
            }
            let exit = ExitRecord {
                exit_code: 0,
                signal: None,
                reason: t.reason.clone().unwrap_or_else(|| "Completed".into()),
                message: t.message.clone(),
                started_at: t.started_at.as_ref().map(|t| t.0.to_string()),
                finished_at: t
                    .finished_at
                    .as_ref()
                    .map(|t| t.0.to_string())
                    .unwrap_or_default(),
            };
            let id = st.container_id.clone().unwrap_or_default();
            let id = id.trim_start_matches("skiff://").to_string();
            cs.restart_count = st.restart_count.max(0) as u32;
            cs.last_exit = Some((exit, id, st.image_id.clone()));
        }
    }
}

impl ContainerState {
    /// A completed init container waits for nothing (its last exit may have followed failures
    /// and left a back-off).
    pub(crate) fn completed_init(&mut self) {
        self.waiting = None;
        self.not_before = None;
    }
}

#[cfg(test)]
mod tests {
    use super::InitView::*;
    use super::*;

    #[test]
    fn in_order_each_to_completion() {
        assert_eq!(next_step("Always", &[]), InitStep::Done);
        assert_eq!(next_step("Always", &[NotRun, NotRun]), InitStep::Start(0));
        assert_eq!(next_step("Always", &[Running, NotRun]), InitStep::Wait(0));
        assert_eq!(
            next_step("Always", &[Completed, NotRun]),
            InitStep::Start(1)
        );
        assert_eq!(next_step("Never", &[Completed, Running]), InitStep::Wait(1));
        assert_eq!(next_step("Never", &[Completed, Completed]), InitStep::Done);
    }

    #[test]
    fn failures_follow_the_restart_policy() {
        assert_eq!(next_step("Always", &[Failed, NotRun]), InitStep::Start(0));
        assert_eq!(
            next_step("OnFailure", &[Completed, Failed]),
            InitStep::Start(1)
        );
        assert_eq!(
            next_step("Never", &[Completed, Failed]),
            InitStep::Failed(1)
        );
        assert_eq!(next_step("Never", &[Failed, NotRun]), InitStep::Failed(0));
    }

    #[test]
    fn views() {
        let exit = |code| ExitRecord {
            exit_code: code,
            signal: None,
            reason: "x".into(),
            message: None,
            started_at: None,
            finished_at: "2024-01-01T00:00:00Z".into(),
        };
        assert_eq!(InitView::of(false, None), NotRun);
        assert_eq!(InitView::of(true, Some(&exit(1))), Running);
        assert_eq!(InitView::of(false, Some(&exit(0))), Completed);
        assert_eq!(InitView::of(false, Some(&exit(2))), Failed);
    }
}
