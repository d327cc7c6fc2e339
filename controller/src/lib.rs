//! skiff's control plane, in layers — each uses only the layers above it in this list:
//!
//! 1. [`model`]: the object model — kinds, metadata, validation, defaults, patches, field
//!    ownership, and the store every write ends in.
//! 2. [`api`]: the Kubernetes API server over the store (and its in-process transport).
//! 3. [`folder`]: the manifests folder, writing files into the store as one transaction each.
//! 4. [`client`]: the control plane as an API client — watch caches and Events.
//! 5. [`controllers`] (Deployment, ReplicaSet, EndpointSlice, garbage collection, volumes) and
//!    [`ingress`] (routes, ACME certificates, the seam to the proxy): reconcilers that read the
//!    caches and write through the API.
//!
//! [`files`] (durable private writes) is used by all of them.
//!
//! Start reading at [`start`]: it starts all of it.

#![forbid(unsafe_code)]

pub mod api;
pub mod client;
pub mod controllers;
pub mod files;
pub mod folder;
pub mod ingress;
pub mod model;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::client::view::View;
use crate::model::store::Store;

/// What the control plane is started with.
pub struct Config {
    /// This node's name (pods are bound to it, events name it).
    pub node_name: String,
    /// The API server's settings.
    pub api: api::ApiConfig,
    /// The manifests folder.
    pub manifests: PathBuf,
    /// The ingress proxy and its certificates.
    pub ingress: IngressConfig,
    /// Listening sockets handed over by systemd (`skiff.socket`) or a stand-in: the API's and
    /// the ingress proxy's listeners take theirs from here, and bind the others.
    pub listeners: Arc<skiff_proxy::serve::Inherited>,
    /// Where HelmCharts' charts come from: the daemon's `charts::Fetcher` (`chartContent`,
    /// the charts folder, chart repositories, OCI, the cache under `<data-dir>/chart-cache`).
    pub chart_fetcher: Arc<dyn skiff_helm::source::ChartFetcher>,
}

/// The ingress proxy's listeners and how its certificates are obtained.
#[derive(Clone, Debug)]
pub struct IngressConfig {
    /// The HTTP listener (`None`: none).
    pub http: Option<SocketAddr>,
    /// The HTTPS listener (`None`: none).
    pub https: Option<SocketAddr>,
    /// Whether the proxy resumes TLS sessions (off only for handshake benchmarks).
    pub tls_resumption: bool,
    /// The proxy's own threads (`skiff_proxy::threads`).
    pub threads: std::num::NonZeroUsize,
    /// The ACME directory URL (`None`: no ACME, self-signed certificates only).
    pub acme_directory: Option<String>,
    /// The ACME account's contact address.
    pub acme_email: Option<String>,
    /// A PEM file with the root of the ACME server's own HTTPS certificate (a private CA).
    pub acme_ca_root: Option<PathBuf>,
}

/// Why the control plane did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The built-in objects could not be written.
    #[error("writing the built-in namespaces: {0}")]
    Builtin(#[from] model::store::StoreError),
    /// The API server did not start.
    #[error("starting the API server: {0}")]
    Api(#[from] api::StartError),
    /// The watch caches did not fill.
    #[error("the controllers' view of the API: {0}")]
    View(#[from] client::view::ViewError),
    /// The ingress proxy could not be made.
    #[error("starting the ingress proxy: {0}")]
    Proxy(#[from] skiff_proxy::ProxyError),
}

/// The running control plane.
pub struct ControlPlane {
    /// The API server's state: in-process clients are made from it ([`ControlPlane::client`]).
    pub api: Arc<api::ApiState>,
    /// The watch caches every reconciler reads (the node agent reads them too).
    pub view: Arc<View>,
    /// Its tasks; they end after `shutdown` flips.
    pub tasks: Vec<JoinHandle<()>>,
}

impl ControlPlane {
    /// An in-process API client acting as the admin, naming `manager` as its field manager.
    pub fn client(&self, manager: &'static str) -> kube::Client {
        api::local::client(self.api.clone(), manager)
    }
}

/// Starts the whole control plane on `store`: the built-in objects, the API server (returns
/// once it listens), the watch caches (filled before this returns), the reconcilers, the
/// ingress proxy's listeners with the ingress/ACME reconciler, the manifests folder and the API
/// server's housekeeping. Everything stops when `shutdown` flips to true.
pub async fn start(
    store: Arc<Store>,
    node: Arc<dyn api::Node>,
    config: Config,
    shutdown: watch::Receiver<bool>,
) -> Result<ControlPlane, StartError> {
    model::node::set_name(&config.node_name);
    model::builtin::ensure(&store)?;
    let acme_dir = config.api.data_dir.join("acme");
    let folder_identity = config.api.data_dir.join("manifests-folder.id");
    let storage = controllers::volumes::Storage::new(&config.api.data_dir);
    let charts_dir = config.api.data_dir.join("charts");
    let listeners = config.listeners;
    let (api_task, api) = api::start(
        config.api,
        &listeners,
        store.clone(),
        node,
        shutdown.clone(),
    )
    .await?;
    let (view, mut tasks) = View::start(
        api::local::client(api.clone(), "skiff-controller"),
        controllers::KINDS,
        shutdown.clone(),
    )
    .await?;
    tasks.push(api_task);
    tasks.push(tokio::spawn(controllers::run(
        view.clone(),
        storage,
        shutdown.clone(),
    )));
    tasks.push(tokio::spawn(controllers::helmchart::run(
        controllers::helmchart::HelmCharts {
            view: view.clone(),
            store: store.clone(),
            fetcher: config.chart_fetcher,
            charts_dir,
        },
        shutdown.clone(),
    )));
    let (proxy, ingress_tasks) = ingress::start(
        config.ingress,
        &listeners,
        acme_dir,
        view.clone(),
        shutdown.clone(),
    )
    .await?;
    let _ = api.proxy.set(proxy);
    tasks.extend(ingress_tasks);
    let folder = folder::ManifestsFolder::new(config.manifests, store.clone())
        .with_identity_file(folder_identity)
        .with_events(api::local::client(api.clone(), "skiff-manifests-folder"))
        .with_results(api.manifest_results.clone());
    tasks.push(tokio::spawn(folder.run(shutdown.clone())));
    tasks.push(tokio::spawn(api::housekeeping::run(store, shutdown)));
    Ok(ControlPlane { api, view, tasks })
}
