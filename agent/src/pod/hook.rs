//! Container lifecycle hooks, as kubelet runs them: `postStart` right after the container
//! starts (the container is not Running until it returns; a failure kills the container, with
//! a `FailedPostStartHook` event), `preStop` before the SIGTERM of a stop, inside the grace
//! period (a failure is a `FailedPreStopHook` event; the stop goes on). Handlers: `exec` (in
//! the container, exit code 0), `httpGet` (on the pod's own address only — validation refuses
//! `host` — and, as kubelet, any HTTP answer is success: only a failed request fails), `sleep`.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, LifecycleHandler};

use super::probe::{self, Target};

/// Records an event on the container's pod: (warning, reason, message).
pub(super) type EventSink = Arc<dyn Fn(bool, &str, String) + Send + Sync>;

/// The hooks of one container instance.
#[derive(Clone)]
pub(super) struct Hooks {
    container: Container,
    target: Target,
    /// `namespace/name`, for messages.
    pod: String,
    event: EventSink,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("container", &self.container.name)
            .field("pod", &self.pod)
            .finish()
    }
}

impl Hooks {
    /// The hooks of container `c` reached at `target`, or `None` when it declares none.
    pub(super) fn of(
        c: &Container,
        target: Target,
        pod: String,
        event: EventSink,
    ) -> Option<Hooks> {
        let l = c.lifecycle.as_ref()?;
        if l.post_start.is_none() && l.pre_stop.is_none() {
            return None;
        }
        Some(Hooks {
            container: c.clone(),
            target,
            pod,
            event,
        })
    }

    fn handler(&self, post_start: bool) -> Option<&LifecycleHandler> {
        let l = self.container.lifecycle.as_ref()?;
        if post_start {
            l.post_start.as_ref()
        } else {
            l.pre_stop.as_ref()
        }
    }

    /// Runs `postStart` (if any); on failure records `FailedPostStartHook` and returns the
    /// message.
    pub(super) async fn post_start(&self) -> Result<(), String> {
        let Some(h) = self.handler(true) else {
            return Ok(());
        };
        let r = run(h, &self.container, &self.target, &self.pod).await;
        if let Err(message) = &r {
            (self.event)(true, "FailedPostStartHook", message.clone());
        }
        r
    }

    /// Whether the container has a `preStop` hook.
    pub(super) fn has_pre_stop(&self) -> bool {
        self.handler(false).is_some()
    }

    /// Runs `preStop` (if any) for at most `limit`; a failure or the limit is recorded as
    /// `FailedPreStopHook`.
    pub(super) async fn pre_stop(&self, limit: Duration) {
        let Some(h) = self.handler(false) else {
            return;
        };
        let r = tokio::time::timeout(limit, run(h, &self.container, &self.target, &self.pod))
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "PreStop hook for Container {:?} in Pod {:?} did not complete in {}s",
                    self.container.name,
                    self.pod,
                    limit.as_secs()
                ))
            });
        if let Err(message) = r {
            (self.event)(true, "FailedPreStopHook", message);
        }
    }
}

/// Runs one handler; `Err` carries kubelet's words.
async fn run(
    h: &LifecycleHandler,
    c: &Container,
    target: &Target,
    pod: &str,
) -> Result<(), String> {
    let name = &c.name;
    if let Some(e) = &h.exec {
        let command = e.command.clone().unwrap_or_default();
        // No time limit of its own (as kubelet): a stop or the grace period ends it.
        return probe::exec(command.clone(), target, Duration::from_secs(86_400 * 365))
            .await
            .map_err(|e| {
                format!("Exec lifecycle hook ({command:?}) for Container {name:?} in Pod {pod:?} failed - error: {e}")
            });
    }
    if let Some(g) = &h.http_get {
        let path = g.path.clone().unwrap_or_else(|| "/".into());
        let fail = |e: String| {
            format!("HTTP lifecycle hook ({path}) for Container {name:?} in Pod {pod:?} failed - error: {e}")
        };
        let port = probe::port_of(c, &g.port)
            .ok_or_else(|| fail("the hook's port is not a container port".into()))?;
        return probe::http_status(g, target.ip, port)
            .await
            .map(|_| ())
            .map_err(fail);
    }
    if let Some(s) = &h.sleep {
        tokio::time::sleep(Duration::from_secs(s.seconds.max(0) as u64)).await;
        return Ok(());
    }
    Err(format!(
        "lifecycle hook for Container {name:?} in Pod {pod:?} has no handler"
    ))
}

/// What is left of a stop's grace period after a `preStop` hook that took `took`: the rest,
/// and at least 2 s (kubelet's minimum) for the container to handle SIGTERM.
pub(super) fn grace_after_pre_stop(grace: Duration, took: Duration) -> Duration {
    grace.saturating_sub(took).max(Duration::from_secs(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rest_of_the_grace_period_after_pre_stop() {
        let s = Duration::from_secs;
        assert_eq!(grace_after_pre_stop(s(30), s(5)), s(25));
        assert_eq!(grace_after_pre_stop(s(30), s(29)), s(2));
        assert_eq!(grace_after_pre_stop(s(3), s(10)), s(2));
    }

    #[tokio::test]
    async fn sleep_and_unreachable_http() {
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "c",
            "ports": [{"name": "web", "containerPort": 1}],
        }))
        .unwrap();
        let target = Target {
            ip: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            container_dir: "/nonexistent".into(),
            exe: "/bin/false".into(),
        };
        let sleep: LifecycleHandler =
            serde_json::from_value(serde_json::json!({"sleep": {"seconds": 0}})).unwrap();
        assert_eq!(run(&sleep, &c, &target, "ns/p").await, Ok(()));
        // Port 1 on loopback: nothing listens (connection refused).
        let http: LifecycleHandler =
            serde_json::from_value(serde_json::json!({"httpGet": {"port": "web", "path": "/x"}}))
                .unwrap();
        let err = run(&http, &c, &target, "ns/p").await.unwrap_err();
        assert!(
            err.starts_with("HTTP lifecycle hook (/x) for Container \"c\" in Pod \"ns/p\" failed"),
            "{err}"
        );
        let none = LifecycleHandler::default();
        assert!(run(&none, &c, &target, "ns/p").await.is_err());
    }
}
