//! What the pod worker reports: pod status (written only when it changed, with the events the
//! change implies) and the names of image pull events.

use k8s_openapi::api::core::v1::Pod;

use super::{status, Agent};

/// The event for a container waiting for its image with `reason`, as kubelet names it:
/// (warning, event reason).
pub(super) fn pull_event(reason: &str) -> (bool, &str) {
    match reason {
        "ContainerCreating" => (false, "Pulling"),
        "ImagePullBackOff" => (false, "BackOff"),
        "ErrImagePull" => (true, "Failed"),
        other => (true, other),
    }
}

impl Agent {
    /// Writes the pod's status if it differs from the stored one, recording the events of the
    /// change.
    /// Writes the pod's status as the loop sees it (when it changed); whether the pod has
    /// finished for good (phase Succeeded or Failed).
    pub(super) async fn write_status(&mut self, pod: &Pod) -> bool {
        let Some(state) = self
            .pods
            .get(pod.metadata.uid.as_deref().unwrap_or_default())
        else {
            return false;
        };
        let status = status::pod_status(pod, state, self.host_ip);
        let finished = status::finished(&status);
        if pod.status.as_ref() == Some(&status) {
            return finished;
        }
        for (reason, warning, message) in status::events(pod.status.as_ref(), &status) {
            self.cluster.event(
                &state.pod.namespace,
                &state.pod.name,
                warning,
                reason,
                &message,
            );
        }
        if let Err(e) = self.cluster.set_pod_status(pod, status).await {
            tracing::warn!(pod = %state.pod.key(), "writing status: {e}");
        }
        finished
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_events_as_kubelet_names_them() {
        assert_eq!(pull_event("ContainerCreating"), (false, "Pulling"));
        assert_eq!(pull_event("ImagePullBackOff"), (false, "BackOff"));
        assert_eq!(pull_event("ErrImagePull"), (true, "Failed"));
        assert_eq!(pull_event("ErrImageNeverPull"), (true, "ErrImageNeverPull"));
        assert_eq!(pull_event("InvalidImageName"), (true, "InvalidImageName"));
    }
}
