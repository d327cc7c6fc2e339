//! The control plane's side of the API as a client: [`view`] (watch caches of every kind the
//! reconcilers read, over the in-process client, and writes as API requests) and [`events`]
//! (recording Events through the API). The reconcilers and the node agent see the cluster
//! only through these.

pub mod events;
pub mod view;
