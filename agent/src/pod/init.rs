//! Init containers, as kubelet runs them: one at a time, in order, each to successful
//! completion, before any app container starts. Native sidecars (`restartPolicy: Always` on an
//! init container, Kubernetes 1.29+) are started in their turn; the next init container starts
//! once the sidecar has *started* (its postStart hook done and its startup probe passed); they
//! keep running beside the app containers, restarted whenever they exit, whatever the pod's
//! `restartPolicy`, and are stopped last, in reverse order. Pure functions: which init
//! container runs next, which sidecars are restarted or stopped, whether the pod is initialized.

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};

use super::restart::restart_wanted;
use super::{ContainerState, PodState};
use crate::runtime::ExitRecord;

/// What the worker knows of one init container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InitView {
    /// Never started (or its exit is unknown).
    NotRun,
    /// An instance exists (starting, running or stopping) and has not started yet: its
    /// postStart hook or startup probe has not finished.
    Running,
    /// An instance runs and has started.
    Started,
    /// Its last run exited 0: it is not run again while the pod lives.
    Completed,
    /// Its last run failed.
    Failed,
}

impl InitView {
    /// The view of an init container from its instance and last exit.
    pub(crate) fn of(running: bool, started: bool, last_exit: Option<&ExitRecord>) -> InitView {
        match (running, last_exit) {
            (true, _) if started => InitView::Started,
            (true, _) => InitView::Running,
            (false, Some(e)) if e.exit_code == 0 => InitView::Completed,
            (false, Some(_)) => InitView::Failed,
            (false, None) => InitView::NotRun,
        }
    }
}

/// One init container as [`next_step`] sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct InitEntry {
    /// `restartPolicy: Always`: a sidecar.
    pub(crate) sidecar: bool,
    pub(crate) view: InitView,
    /// A sidecar that has started once in this pod's life: its turn has passed, and it is
    /// only restarted when it exits.
    pub(crate) passed: bool,
}

/// Where a pod's initialization stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InitStep {
    /// Every init container completed (every sidecar started): the app containers may start.
    Done,
    /// Init container `i` is to be started (first run, or a restart after a failure — the
    /// crash back-off still applies).
    Start(usize),
    /// Init container `i` runs (a sidecar: has not started yet): wait for it.
    Wait(usize),
    /// Init container `i` failed and `restartPolicy: Never` keeps it so: the pod failed.
    Failed(usize),
}

/// The step, and the sidecars whose turn has passed and that are to be restarted now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct InitPlan {
    pub(crate) step: InitStep,
    pub(crate) restart_sidecars: Vec<usize>,
}

/// The next step of initialization under `restartPolicy` `policy`, given the init containers in
/// order. A failed init container is restarted under Always and OnFailure alike; a sidecar
/// whatever the policy.
pub(crate) fn next_step(policy: &str, entries: &[InitEntry]) -> InitPlan {
    let mut restart_sidecars = Vec::new();
    let plan = |step, restart_sidecars| InitPlan {
        step,
        restart_sidecars,
    };
    for (i, e) in entries.iter().enumerate() {
        let step = match (e.sidecar, e.view) {
            (_, InitView::Completed) if !e.sidecar => continue,
            (true, InitView::Started) => continue,
            (true, InitView::Running) if e.passed => continue,
            (true, InitView::Running) => InitStep::Wait(i),
            (true, _) if e.passed => {
                restart_sidecars.push(i);
                continue;
            }
            (true, _) => InitStep::Start(i),
            (false, InitView::Running | InitView::Started) => InitStep::Wait(i),
            (false, InitView::Failed) if policy == "Never" => InitStep::Failed(i),
            (false, _) => InitStep::Start(i),
        };
        return plan(step, restart_sidecars);
    }
    plan(InitStep::Done, restart_sidecars)
}

/// The sidecar to stop next when the pod ends (its app containers finished, or it is being
/// deleted and they are gone): the last declared one still running — sidecars stop one at a
/// time, in reverse order of declaration. `running` is, per init container, whether it is a
/// sidecar with a running instance.
pub(crate) fn sidecar_to_stop(running: &[bool]) -> Option<usize> {
    running.iter().rposition(|r| *r)
}

/// Whether init container `c` is a sidecar (`restartPolicy: Always`).
pub(crate) fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

impl PodState {
    /// Where the pod's initialization stands under `policy`, and which sidecars to restart.
    /// Once initialized, every sidecar's turn has passed and init containers are done.
    pub(crate) fn init_plan(&self, spec: &PodSpec, policy: &str) -> InitPlan {
        let entries: Vec<InitEntry> = spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| {
                let sidecar = is_sidecar(c);
                let cs = self.containers.get(&c.name);
                let view = match cs {
                    Some(cs) => InitView::of(
                        cs.current.is_some(),
                        cs.current.as_ref().is_some_and(|i| i.started()),
                        cs.last_exit.as_ref().map(|e| &e.0),
                    ),
                    None => InitView::NotRun,
                };
                let view = match view {
                    _ if self.initialized && !sidecar => InitView::Completed,
                    v => v,
                };
                let passed = self.initialized || cs.is_some_and(|cs| cs.started_once);
                InitEntry {
                    sidecar,
                    view,
                    passed,
                }
            })
            .collect();
        next_step(policy, &entries)
    }

    /// Where the pod's initialization stands under `policy`.
    pub(crate) fn init_step(&self, spec: &PodSpec, policy: &str) -> InitStep {
        self.init_plan(spec, policy).step
    }

    /// Whether the pod's app containers have all finished for good under `policy` (a Job's
    /// pod): its sidecars are then stopped, not restarted.
    pub(crate) fn main_finished(&self, spec: &PodSpec, policy: &str) -> bool {
        !spec.containers.is_empty()
            && spec.containers.iter().all(|c| {
                self.containers.get(&c.name).is_some_and(|cs| {
                    cs.current.is_none()
                        && cs
                            .last_exit
                            .as_ref()
                            .is_some_and(|(e, _, _)| !restart_wanted(policy, e))
                })
            })
    }

    /// Whether the pod has ended: its app containers finished, or an init container failed
    /// for good.
    pub(crate) fn ended(&self, spec: &PodSpec, policy: &str) -> bool {
        match self.init_step(spec, policy) {
            InitStep::Failed(_) => true,
            InitStep::Done => self.main_finished(spec, policy),
            InitStep::Start(_) | InitStep::Wait(_) => false,
        }
    }

    /// The name of the sidecar to stop next (see [`sidecar_to_stop`]).
    pub(crate) fn sidecar_to_stop<'a>(&self, spec: &'a PodSpec) -> Option<&'a Container> {
        let inits = spec.init_containers.as_deref().unwrap_or_default();
        let running: Vec<bool> = inits
            .iter()
            .map(|c| {
                is_sidecar(c)
                    && self
                        .containers
                        .get(&c.name)
                        .is_some_and(|cs| cs.current.is_some())
            })
            .collect();
        sidecar_to_stop(&running).map(|i| &inits[i])
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

    fn init(view: InitView) -> InitEntry {
        InitEntry {
            sidecar: false,
            view,
            passed: false,
        }
    }

    fn sidecar(view: InitView, passed: bool) -> InitEntry {
        InitEntry {
            sidecar: true,
            view,
            passed,
        }
    }

    fn step(policy: &str, views: &[InitView]) -> InitStep {
        let entries: Vec<InitEntry> = views.iter().map(|v| init(*v)).collect();
        let plan = next_step(policy, &entries);
        assert!(plan.restart_sidecars.is_empty());
        plan.step
    }

    #[test]
    fn in_order_each_to_completion() {
        assert_eq!(step("Always", &[]), InitStep::Done);
        assert_eq!(step("Always", &[NotRun, NotRun]), InitStep::Start(0));
        assert_eq!(step("Always", &[Running, NotRun]), InitStep::Wait(0));
        assert_eq!(step("Always", &[Completed, NotRun]), InitStep::Start(1));
        assert_eq!(step("Never", &[Completed, Running]), InitStep::Wait(1));
        assert_eq!(step("Never", &[Completed, Completed]), InitStep::Done);
    }

    #[test]
    fn failures_follow_the_restart_policy() {
        assert_eq!(step("Always", &[Failed, NotRun]), InitStep::Start(0));
        assert_eq!(step("OnFailure", &[Completed, Failed]), InitStep::Start(1));
        assert_eq!(step("Never", &[Completed, Failed]), InitStep::Failed(1));
        assert_eq!(step("Never", &[Failed, NotRun]), InitStep::Failed(0));
    }

    #[test]
    fn the_next_init_container_waits_until_the_sidecar_started() {
        let plan = |entries: &[InitEntry]| next_step("Never", entries);
        // Started in its turn; running but not started (startup probe, postStart): wait.
        let e = [sidecar(NotRun, false), init(NotRun)];
        assert_eq!(plan(&e).step, InitStep::Start(0));
        let e = [sidecar(Running, false), init(NotRun)];
        assert_eq!(plan(&e).step, InitStep::Wait(0));
        let e = [sidecar(Started, true), init(NotRun)];
        assert_eq!(plan(&e).step, InitStep::Start(1));
        // Done once the regular ones completed and the sidecars started: sidecars never
        // "complete".
        let e = [
            sidecar(Started, true),
            init(Completed),
            sidecar(Started, true),
        ];
        assert_eq!(plan(&e).step, InitStep::Done);
        let e = [init(Completed), sidecar(Running, false)];
        assert_eq!(plan(&e).step, InitStep::Wait(1));
    }

    #[test]
    fn a_sidecar_that_exits_is_restarted_whatever_the_policy() {
        for policy in ["Never", "OnFailure", "Always"] {
            // Exited after its turn (Completed or Failed alike): restarted, and initialization
            // goes on beside it.
            for exited in [Completed, Failed] {
                let e = [sidecar(exited, true), init(Running)];
                let p = next_step(policy, &e);
                assert_eq!(p.step, InitStep::Wait(1), "{policy}");
                assert_eq!(p.restart_sidecars, [0], "{policy}");
                let e = [
                    sidecar(exited, true),
                    init(Completed),
                    sidecar(NotRun, true),
                ];
                let p = next_step(policy, &e);
                assert_eq!(p.step, InitStep::Done, "{policy}");
                assert_eq!(p.restart_sidecars, [0, 2], "{policy}");
            }
            // Exited before it ever started: its turn again (never Failed for the pod).
            let e = [sidecar(Failed, false), init(NotRun)];
            let p = next_step(policy, &e);
            assert_eq!(p.step, InitStep::Start(0), "{policy}");
            assert!(p.restart_sidecars.is_empty());
        }
        // A restarted sidecar that has not started again does not hold the others back.
        let e = [sidecar(Running, true), init(NotRun)];
        assert_eq!(next_step("Never", &e).step, InitStep::Start(1));
    }

    #[test]
    fn sidecars_stop_last_declared_first() {
        assert_eq!(sidecar_to_stop(&[]), None);
        assert_eq!(sidecar_to_stop(&[false, false]), None);
        assert_eq!(sidecar_to_stop(&[true, false, true]), Some(2));
        assert_eq!(sidecar_to_stop(&[true, false, false]), Some(0));
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
        assert_eq!(InitView::of(false, false, None), NotRun);
        assert_eq!(InitView::of(true, false, Some(&exit(1))), Running);
        assert_eq!(InitView::of(true, true, None), Started);
        assert_eq!(InitView::of(false, false, Some(&exit(0))), Completed);
        assert_eq!(InitView::of(false, false, Some(&exit(2))), Failed);
    }
}
