//! Restart policy and crash back-off, as kubelet has them: pure functions, and how a
//! container's state records an exit with them.

use std::time::{Duration, Instant};

use super::ContainerState;
use crate::runtime::ExitRecord;

/// Back-off before the second restart; doubles after each, up to [`MAX_BACKOFF`].
pub(crate) const BASE_BACKOFF: Duration = Duration::from_secs(10);
/// Kubernetes' cap on crash back-off.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// A container that ran this long has its back-off reset.
pub(crate) const BACKOFF_RESET: Duration = Duration::from_secs(600);

/// Whether `restartPolicy` (`Always` when unset or unknown) restarts a container after `exit`.
pub(crate) fn restart_wanted(policy: &str, exit: &ExitRecord) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => exit.exit_code != 0,
        _ => true,
    }
}

/// The crash back-off after an exit: given the back-off in force and how long the instance
/// ran, returns how long to wait before this restart and the back-off for the next one.
/// The first restart is at once; then 10 s, doubling to 5 min; a run of 10 min resets it.
pub(crate) fn crash_backoff(current: Duration, ran_for: Duration) -> (Duration, Duration) {
    let delay = if ran_for >= BACKOFF_RESET {
        Duration::ZERO
    } else {
        current
    };
    let next = if delay.is_zero() {
        BASE_BACKOFF
    } else {
        (delay * 2).min(MAX_BACKOFF)
    };
    (delay, next)
}

/// The waiting reason and message of a container in back-off (none for a restart at once).
fn backoff_waiting(delay: Duration, name: &str, pod: &str) -> Option<(String, String)> {
    (!delay.is_zero()).then(|| {
        (
            "CrashLoopBackOff".to_string(),
            format!(
                "back-off {}s restarting failed container={name} pod={pod}",
                delay.as_secs()
            ),
        )
    })
}

impl ContainerState {
    /// Records an exit and decides when a restart may happen (see [`crash_backoff`]).
    /// A replacement (spec change) is not a crash and waits for nothing.
    pub(super) fn record_exit(
        &mut self,
        exit: ExitRecord,
        id: String,
        image_id: String,
        ran_for: Duration,
        name: &str,
        pod: &str,
    ) {
        let now = Instant::now();
        if let Some((prev, _, _)) = self.last_exit.take() {
            self.previous_exit = Some(prev);
        }
        self.last_exit = Some((exit, id, image_id));
        if self.replace {
            self.not_before = Some(now);
            self.waiting = None;
            return;
        }
        let (delay, next) = crash_backoff(self.backoff, ran_for);
        self.backoff = next;
        self.not_before = Some(now + delay);
        self.waiting = backoff_waiting(delay, name, pod);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit(code: i32) -> ExitRecord {
        ExitRecord {
            exit_code: code,
            signal: None,
            reason: if code == 0 { "Completed" } else { "Error" }.into(),
            message: None,
            started_at: None,
            finished_at: "2024-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn restart_policy() {
        for policy in ["Always", "", "anything"] {
            assert!(restart_wanted(policy, &exit(0)), "{policy}");
            assert!(restart_wanted(policy, &exit(1)), "{policy}");
        }
        assert!(!restart_wanted("OnFailure", &exit(0)));
        assert!(restart_wanted("OnFailure", &exit(1)));
        assert!(restart_wanted("OnFailure", &exit(137)));
        assert!(!restart_wanted("Never", &exit(0)));
        assert!(!restart_wanted("Never", &exit(1)));
    }

    #[test]
    fn backoff_sequence() {
        let short = Duration::from_secs(1);
        let mut current = Duration::ZERO;
        let mut delays = Vec::new();
        for _ in 0..9 {
            let (delay, next) = crash_backoff(current, short);
            delays.push(delay.as_secs());
            current = next;
        }
        assert_eq!(delays, [0, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(current, MAX_BACKOFF);
    }

    #[test]
    fn backoff_resets_after_ten_minutes_of_running() {
        let (delay, next) = crash_backoff(MAX_BACKOFF, Duration::from_secs(600));
        assert_eq!((delay, next), (Duration::ZERO, BASE_BACKOFF));
        let (delay, next) = crash_backoff(MAX_BACKOFF, Duration::from_secs(599));
        assert_eq!((delay, next), (MAX_BACKOFF, MAX_BACKOFF));
        let (delay, next) = crash_backoff(Duration::from_secs(40), Duration::from_secs(599));
        assert_eq!(
            (delay, next),
            (Duration::from_secs(40), Duration::from_secs(80))
        );
    }

    /// `not_before` is `now + delay`, taken during the call.
    fn assert_not_before(cs: &ContainerState, before: Instant, delay: Duration) {
        let t = cs.not_before.expect("a restart time");
        assert!(t >= before + delay && t <= Instant::now() + delay, "{t:?}");
    }

    #[test]
    fn record_exit_waits_and_reports_back_off() {
        let now = Instant::now();
        let mut cs = ContainerState::default();
        cs.record_exit(
            exit(1),
            "a-0".into(),
            "img".into(),
            Duration::ZERO,
            "c",
            "p",
        );
        assert_not_before(&cs, now, Duration::ZERO);
        assert_eq!(cs.waiting, None);
        assert_eq!(cs.backoff, BASE_BACKOFF);
        cs.record_exit(
            exit(2),
            "a-1".into(),
            "img".into(),
            Duration::ZERO,
            "c",
            "p",
        );
        assert_not_before(&cs, now, BASE_BACKOFF);
        assert_eq!(
            cs.waiting,
            Some((
                "CrashLoopBackOff".to_string(),
                "back-off 10s restarting failed container=c pod=p".to_string()
            ))
        );
        assert_eq!(cs.previous_exit.as_ref().map(|e| e.exit_code), Some(1));
        assert_eq!(cs.last_exit.as_ref().map(|e| e.0.exit_code), Some(2));
        assert_eq!(cs.backoff, Duration::from_secs(20));
    }

    #[test]
    fn replacement_is_not_a_crash() {
        let now = Instant::now();
        let mut cs = ContainerState {
            backoff: Duration::from_secs(40),
            replace: true,
            waiting: Some(("X".into(), "y".into())),
            ..Default::default()
        };
        cs.record_exit(
            exit(137),
            "a-0".into(),
            "img".into(),
            Duration::ZERO,
            "c",
            "p",
        );
        assert_not_before(&cs, now, Duration::ZERO);
        assert_eq!(cs.waiting, None);
        assert_eq!(cs.backoff, Duration::from_secs(40));
    }
}
