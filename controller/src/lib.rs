//! skiff's control plane: the object store, validation and defaulting, apply semantics, the
//! manifests folder, and the reconcilers that turn Deployments into ReplicaSets into Pods.
//!
//! Start reading at [`start`]: it is handed the [`store::Store`] and starts the manifests
//! folder and the controllers as tasks.

pub mod apply;
pub mod defaults;
pub mod folder;
pub mod kinds;
pub mod meta;
pub mod store;
pub mod validate;
