//! The in-process client (architecture decision 2): a [`kube::Client`] whose transport is the
//! API server's own request handler — no socket, no TLS, no token. The daemon's own loops (the
//! node agent, the controllers) use it exactly as an operator uses the API of a Kubernetes
//! cluster, through `kube`'s runtime (`watcher`, reflector stores), and go through the same
//! validation, defaulting, field ownership and events as kubectl.

use std::convert::Infallible;
use std::sync::Arc;

use hyper::Request;

use super::auth::Identity;
use super::{req_body, rest, ApiState};

/// The identity of the daemon's own requests: the admin, named as the system.
fn system() -> Identity {
    Identity {
        id: "system:skiff".into(),
        namespace: None,
        service_account: false,
    }
}

/// A client of `state`'s API; `default` namespace. `agent` names the client in its requests'
/// `User-Agent`, which names its field manager (`skiff-controller`, `skiff-node`).
pub fn client(state: Arc<ApiState>, agent: &'static str) -> kube::Client {
    let service = tower::service_fn(move |req: Request<kube::client::Body>| {
        let state = state.clone();
        async move {
            let mut req = req.map(req_body);
            req.headers_mut()
                .entry(hyper::header::USER_AGENT)
                .or_insert(hyper::header::HeaderValue::from_static(agent));
            Ok::<_, Infallible>(rest::route(&state, system(), req).await)
        }
    });
    kube::Client::new(service, "default")
}

/// A node that has nothing to show (logs and exec answer with an error): for clients of a
/// store without an agent — tests and benchmarks.
pub struct NoNode;

impl super::Node for NoNode {
    fn logs(
        &self,
        _: &serde_json::Value,
        _: super::LogOptions,
    ) -> Result<tokio::sync::mpsc::Receiver<bytes::Bytes>, super::NodeError> {
        Err(super::NodeError("no node".into()))
    }
    fn exec(
        &self,
        _: &serde_json::Value,
        _: super::ExecRequest,
    ) -> Result<tokio::process::Child, super::NodeError> {
        Err(super::NodeError("no node".into()))
    }
    fn is_pod_address(&self, _: std::net::IpAddr) -> bool {
        false
    }
}

/// An in-process client of `store` without an API server listening or a node: for tests and
/// benchmarks of API clients.
pub fn client_for(
    store: Arc<crate::model::store::Store>,
    data_dir: &std::path::Path,
) -> Result<kube::Client, super::StartError> {
    Ok(client(
        Arc::new(ApiState {
            store,
            tokens: super::auth::Tokens::open(data_dir)?,
            issuer: Arc::new(super::sa_token::Issuer::open(&data_dir.join("tls"))?),
            node: Arc::new(NoNode),
            max_body_bytes: super::MAX_BODY_BYTES,
            manifest_results: Default::default(),
            stopping: tokio::sync::watch::channel(false).1,
            proxy: Default::default(),
        }),
        "skiff-test",
    ))
}
