//! skiff's node agent — the kubelet of a one-node cluster: the pod worker ([`pod`]), the
//! container runtime over youki's libcontainer with one shim process per container
//! ([`runtime`]), and the content-addressed image store ([`image`]).
//!
//! The agent is a client of the control plane: it sees pods and reports their status only
//! through the [`Cluster`] trait, never through the controller's internals.

pub mod image;
pub mod network;
pub mod pod;
pub mod runtime;

use k8s_openapi::api::core::v1::{Pod, PodStatus, Secret};

pub use pod::Agent;

/// A write to the control plane, in flight.
pub type Write<'a> = futures_util::future::BoxFuture<'a, Result<(), WriteError>>;

/// A write to the control plane that failed; its message is the API client's.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct WriteError(Box<dyn std::error::Error + Send + Sync>);

impl WriteError {
    /// Wraps the API client's error.
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        WriteError(Box::new(error))
    }
}

/// What the agent needs from the control plane. Reads come from a local cache kept current by
/// watches (they never wait); writes go to the API server.
pub trait Cluster: Send + Sync + 'static {
    /// Every pod the scheduler bound to this node (`spec.nodeName`).
    fn pods(&self) -> Vec<Pod>;
    /// A notification whenever a pod, Service, EndpointSlice, PersistentVolumeClaim or
    /// PersistentVolume changes.
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<()>;
    /// Replaces a pod's status (only of that very pod: same uid).
    fn set_pod_status<'a>(&'a self, pod: &'a Pod, status: PodStatus) -> Write<'a>;
    /// Ends a graceful deletion: the pod's containers are stopped and removed.
    fn pod_gone<'a>(&'a self, pod: &'a Pod) -> Write<'a>;
    /// A Secret (for imagePullSecrets), if it exists.
    fn secret(&self, namespace: &str, name: &str) -> Option<Secret>;
    /// Records an event about a pod (`kubectl describe` shows it). Never fails the caller.
    fn event(&self, namespace: &str, pod: &str, warning: bool, reason: &str, message: &str);
    /// Records an event about a Service (what the node's load balancer could not do). Never
    /// fails the caller.
    fn service_event(
        &self,
        namespace: &str,
        name: &str,
        warning: bool,
        reason: &str,
        message: &str,
    );
    /// Every object of a kind (Services and EndpointSlices, for the node's Service rules).
    fn objects(&self, kind: &str) -> Vec<serde_json::Value>;
    /// One object (a ConfigMap; a PersistentVolumeClaim and its PersistentVolume, for pods'
    /// claims); `namespace` is empty for a cluster-scoped kind.
    fn object(&self, kind: &str, namespace: &str, name: &str) -> Option<serde_json::Value>;
    /// A token of `pod`'s ServiceAccount, bound to the pod, asked for `seconds` (kubelet's
    /// TokenRequest).
    fn service_account_token(&self, pod: &Pod, seconds: i64) -> Result<String, WriteError>;
    /// Records what the node allocated to a Service: fields merged into its `spec` (virtual
    /// IP, node ports) and/or its `status` (a LoadBalancer's address).
    fn update_service<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        spec: Option<serde_json::Value>,
        status: Option<serde_json::Value>,
    ) -> Write<'a>;
}
