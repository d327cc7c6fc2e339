//! The Kubernetes API server: the REST subset kubectl and kube-rs clients use, over HTTPS.

pub mod status;
pub mod table;
