//! The object model: what an object is and how it changes, with no I/O but the store's.
//!
//! - [`kinds`]: the served kinds (group/version, plural, scope) — the one table of what exists.
//! - [`meta`]: reading and writing `metadata` of objects kept as JSON.
//! - [`validate`] and [`defaults`]: what is accepted (by field name), and Kubernetes' defaults.
//! - [`patch`]: strategic merge (with the merge-key schema), merge and JSON patches.
//! - [`managed`]: `managedFields` and server-side apply; [`declared`]: what a manifest file
//!   declares (the folder's field manager and the fields it owns).
//! - [`store`]: the SQLite store every write ends in; [`builtin`]: objects every cluster has;
//!   [`versions`]: each committed object version held once per process, shared with the caches;
//!   [`object`]: a stored version, its tree without `managedFields` and the field as JSON text.
//! - [`serviceaccount`]: the ServiceAccount admission of new pods (the token volume).
//! - [`node`]: this node's name; [`quantity`]: resource quantities (`1Gi`) as numbers;
//!   [`yaml`]: YAML read as kubectl reads it (1.1 octals).
//!
//! Everything above this layer — the API server, the manifests folder, the API clients and the
//! reconcilers — uses it; it uses none of them.

pub mod builtin;
pub mod declared;
pub mod defaults;
pub mod kinds;
pub mod managed;
pub mod meta;
pub mod node;
pub mod object;
pub mod patch;
pub mod podsecurity;
pub mod quantity;
pub mod serviceaccount;
pub mod store;
pub mod validate;
pub mod versions;
pub mod yaml;
