//! What a reconciler decides, apart from doing it: a reconciler's `plan` is a pure function of
//! the cached objects it reads (and of the time, or names it would draw at random, passed in)
//! that returns the [`Write`]s to make, in order; a thin executor performs them through the
//! [`View`] with [`execute`]. The plans are unit-tested on plain objects, without a server.

use serde_json::Value;

use crate::client::events;
use crate::client::view::{View, WriteError};
use crate::model::store::ObjectKey;

/// One write a reconciler makes through the API, in the order planned.
#[derive(Debug)]
pub enum Write {
    /// Create an object.
    Create(Value),
    /// Replace an object (its `resourceVersion`, if set, must still be current).
    Update(Value),
    /// Replace an object's `status` (nothing is sent if the cache shows it already).
    UpdateStatus(ObjectKey, Value),
    /// Delete an object (Pods gracefully); gone already is fine.
    Delete(ObjectKey),
    /// Record an Event about an object (a failure is logged, not returned).
    Event(Event),
}

/// An Event to record, as `events::record_via` takes it.
#[derive(Debug)]
pub struct Event {
    /// The object the Event is about, as cached.
    pub about: Value,
    /// `Normal` or `Warning`.
    pub kind: events::Type,
    /// The Event's `reason`, e.g. `ScalingReplicaSet`.
    pub reason: &'static str,
    /// The Event's `message`.
    pub message: String,
    /// The reporting component.
    pub source: events::Source,
}

/// Performs one write; for a creation or an update, the object as the API answered it.
pub async fn execute(view: &View, write: Write) -> Result<Option<Value>, WriteError> {
    match write {
        Write::Create(obj) => view.create(obj).await.map(Some),
        Write::Update(obj) => view.update(obj).await.map(Some),
        Write::UpdateStatus(key, status) => view.update_status(&key, status).await.map(Some),
        Write::Delete(key) => view.delete(&key).await.map(|()| None),
        Write::Event(e) => {
            events::record_via(
                view.client(),
                &e.about,
                e.kind,
                e.reason,
                &e.message,
                e.source,
            )
            .await;
            Ok(None)
        }
    }
}

/// Performs writes one after another, stopping at the first that fails (the API has no
/// transactions; each reconciler is written so that a pass cut short is finished by the next).
pub async fn execute_all(view: &View, writes: Vec<Write>) -> Result<(), WriteError> {
    for w in writes {
        execute(view, w).await?;
    }
    Ok(())
}

/// The writes, one line each, for tests' assertions: `create <key>`, `update <key>`,
/// `status <key>`, `delete <key>`, `event <reason>: <message>`.
#[cfg(test)]
pub fn describe(writes: &[Write]) -> Vec<String> {
    writes
        .iter()
        .map(|w| match w {
            Write::Create(o) => format!("create {}", ObjectKey::of(o)),
            Write::Update(o) => format!("update {}", ObjectKey::of(o)),
            Write::UpdateStatus(k, _) => format!("status {k}"),
            Write::Delete(k) => format!("delete {k}"),
            Write::Event(e) => format!("event {}: {}", e.reason, e.message),
        })
        .collect()
}
