//! `skiff server`: opens what lives in the data directory, then starts the control plane
//! (`skiff_controller::start`) and the node (the images folder, cluster DNS, the Service
//! proxy and the pod agent) on one tokio runtime — the ingress proxy's listeners on threads of
//! their own (`skiff_proxy::threads`) — until SIGTERM or Ctrl-C. Containers keep running when
//! it stops.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use skiff_agent::image::{ImageStore, Puller};
use skiff_agent::network::Network;
use skiff_agent::runtime::handle::Runtime;
use skiff_agent::runtime::protocol::PidFile;
use skiff_agent::runtime::Layout;
use skiff_controller::model::store::Store;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{ServerArgs, ServerConfig};

/// What the daemon opens before its runtime starts.
struct Opened {
    layout: Layout,
    store: Arc<Store>,
    images: Arc<ImageStore>,
    puller: Puller,
    /// Chart archives for HelmCharts (`charts/`: repositories, OCI through the puller, the
    /// cache under `<data-dir>/chart-cache`).
    charts: Arc<dyn skiff_helm::source::ChartFetcher>,
    runtime: Runtime,
    network: Arc<Network>,
}

/// Runs the daemon.
pub fn run(args: ServerArgs) -> Result<()> {
    let config = args.resolve()?;
    // Before anything starts a thread: shims are forked from it (`runtime/zygote.rs`).
    let zygote = skiff_agent::runtime::zygote::Zygote::start(&config.data_dir);
    let listeners = Arc::new(handed_over(&config)?);
    crate::systemd::status("opening the store and setting up pod networking");
    let opened = open(&config, zygote)?;
    tracing::info!(
        data_dir = %opened.layout.data_dir.display(),
        manifests = %config.manifests.display(),
        images = %config.images.display(),
        node = %config.node_name,
        version = env!("CARGO_PKG_VERSION"),
        "skiff server starting"
    );
    let run_dir = opened.layout.data_dir.join("run");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(serve(config, opened, listeners))?;
    let _ = std::fs::remove_file(run_dir.join("skiff.pid"));
    tracing::info!("skiff server stopped");
    // Tasks may still hold blocking threads (a slow import); do not wait for them.
    rt.shutdown_background();
    Ok(())
}

/// The data directory, the pid file, the store, the image store, the runtime and the host's
/// pod networking.
fn open(
    config: &ServerConfig,
    zygote: Option<skiff_agent::runtime::zygote::Zygote>,
) -> Result<Opened> {
    let layout = Layout::new(&config.data_dir)
        .with_context(|| format!("creating the data directory {}", config.data_dir.display()))?;
    std::fs::create_dir_all(layout.data_dir.join("run"))?;
    PidFile::current().write(&skiff_agent::runtime::killall::daemon_pid_file(&layout))?;
    let store = Arc::new(Store::open(&layout.data_dir).context("opening the store")?);
    let images = Arc::new(ImageStore::open(&layout.data_dir).context("opening the image store")?);
    let puller = Puller::new((*images).clone())
        .with_registries(config.registries.clone())
        .without_default_registry_endpoint(config.offline_registries);
    // A broken registries.yaml is reported now (pulls report it again until it is fixed).
    if let Err(e) = puller.registries() {
        tracing::error!("{e}");
    }
    let charts = Arc::new(
        crate::charts::Fetcher::for_daemon(&layout.data_dir, puller.clone())
            .map_err(|e| anyhow::anyhow!("opening the chart cache: {e}"))?,
    );
    let runtime = Runtime::new(layout.clone())?
        .with_pids_limit(config.pids_limit)
        .with_log_rotation(config.log_rotation)
        .with_zygote(zygote);
    config.network.save(&layout.data_dir)?;
    let network = Arc::new(Network::new(config.network.clone(), &layout.data_dir));
    network.setup_host().with_context(|| {
        format!(
            "setting up pod networking ({}, {})",
            config.network.bridge, config.network.cluster_cidr
        )
    })?;
    Ok(Opened {
        layout,
        store,
        images,
        puller,
        charts,
        runtime,
        network,
    })
}

/// The listening sockets handed over — by systemd (`skiff.socket`) or a stand-in, else by the
/// daemon running on this data directory, which then stops (`handover.rs`) — for the API (also
/// on the pod network's gateway) and the ingress proxy. A socket that serves none of them is an
/// error naming it: a `skiff.socket` out of step with the configuration is refused, not
/// half-served.
fn handed_over(config: &ServerConfig) -> Result<skiff_proxy::serve::Inherited> {
    let mut sockets = crate::systemd::listen_fds()?;
    if sockets.is_empty() {
        sockets = crate::handover::take_over(&config.data_dir)?.unwrap_or_default();
    }
    let gateway = std::net::IpAddr::V4(config.network.cluster_cidr.gateway());
    let wanted: Vec<(std::net::SocketAddr, &str)> = [
        Some((config.api, "the API server")),
        Some((
            std::net::SocketAddr::new(gateway, config.api.port()),
            "the API server (pod network)",
        )),
        config.ingress.http.map(|a| (a, "the ingress proxy (HTTP)")),
        config
            .ingress
            .https
            .map(|a| (a, "the ingress proxy (HTTPS)")),
    ]
    .into_iter()
    .flatten()
    .collect();
    for socket in &sockets {
        let at = socket.local_addr().context("a socket handed over")?;
        if !wanted
            .iter()
            .any(|(addr, _)| skiff_proxy::serve::Inherited::serves(at, *addr))
        {
            anyhow::bail!(
                "a socket handed over listens on {at}, which is none of skiff's listeners ({}): \
                 make skiff.socket's ListenStream= lines match --api-port, --http-port and --https-port",
                wanted
                    .iter()
                    .map(|(a, what)| format!("{what} on {a}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        tracing::info!("socket handed over: {at}");
    }
    Ok(skiff_proxy::serve::Inherited::new(sockets))
}

/// Starts the control plane and the node, and stops them on SIGTERM or Ctrl-C: the listeners
/// drain (requests in flight answered, keep-alive connections closed between requests,
/// watches ended cleanly), then everything stops.
async fn serve(
    config: ServerConfig,
    opened: Opened,
    listeners: Arc<skiff_proxy::serve::Inherited>,
) -> Result<()> {
    let (shutdown_tx, shutdown) = watch::channel(false);
    let usage = Arc::new(skiff_agent::runtime::usage::Sampler::new(
        opened.layout.clone(),
    ));
    let sampling = tokio::spawn(sample_usage(usage.clone(), shutdown.clone()));
    let node = Arc::new(crate::node::AgentNode {
        layout: opened.layout.clone(),
        usage,
        pod_network: config.network.cluster_cidr,
        reserved: {
            // A listener on 0.0.0.0 holds its port on every address (`None`).
            let on = |a: std::net::SocketAddr| (!a.ip().is_unspecified()).then_some(a.ip());
            let gateway = std::net::IpAddr::V4(config.network.cluster_cidr.gateway());
            [
                Some((on(config.api), config.api.port(), "the API server")),
                // Pods reach the API on the bridge's gateway too.
                Some((Some(gateway), config.api.port(), "the API server")),
                config
                    .ingress
                    .http
                    .map(|a| (on(a), a.port(), "the ingress proxy (HTTP)")),
                config
                    .ingress
                    .https
                    .map(|a| (on(a), a.port(), "the ingress proxy (HTTPS)")),
                Some((Some(gateway), 53, "the cluster DNS")),
            ]
            .into_iter()
            .flatten()
            .map(|(ip, p, what)| (ip, p, what.to_string()))
            .collect()
        },
    });
    crate::systemd::status("starting the API server, the ingress proxy and the controllers");
    let store = opened.store.clone();
    let control = skiff_controller::start(
        opened.store.clone(),
        node,
        skiff_controller::Config {
            node_name: config.node_name.clone(),
            api: skiff_controller::api::ApiConfig {
                listen: config.api,
                tls_sans: config.tls_sans.clone(),
                kubeconfig: config.kubeconfig.clone(),
                data_dir: opened.layout.data_dir.clone(),
                // The first address of the service range, as on Kubernetes.
                in_cluster: config.network.service_cidr.nth(1).map(|service_ip| {
                    skiff_controller::api::InCluster {
                        service_ip,
                        address: config.network.cluster_cidr.gateway(),
                    }
                }),
                limits: config.api_limits.clone(),
            },
            manifests: config.manifests.clone(),
            ingress: config.ingress.clone(),
            listeners: listeners.clone(),
            chart_fetcher: opened.charts.clone(),
        },
        shutdown.clone(),
    )
    .await?;
    crate::systemd::status("starting the node agent");
    let data_dir = opened.layout.data_dir.clone();
    let mut tasks = start_node(&config, opened, &control, shutdown.clone()).await;
    // A successor started on this data directory takes the listeners over and stops this one.
    let handed = Arc::new(tokio::sync::Notify::new());
    tasks.push(crate::handover::offer(
        &data_dir,
        listeners,
        handed.clone(),
        shutdown.clone(),
    )?);
    tasks.extend(control.tasks);
    tasks.push(tokio::spawn(skiff_agent::runtime::trim::run(
        shutdown.clone(),
    )));
    tasks.extend(crate::systemd::watchdog(store, shutdown));
    tasks.push(sampling);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    crate::systemd::ready(&format!(
        "serving: API on {}, ingress on {}",
        config.api,
        [config.ingress.http, config.ingress.https]
            .iter()
            .flatten()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(" and ")
    ));
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping (containers keep running)"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted: stopping (containers keep running)"),
        _ = handed.notified() => {}
    }
    crate::systemd::stopping();
    let _ = shutdown_tx.send(true);
    // The listeners' tasks end once drained (at most `DRAIN_TIMEOUT`); the rest sooner.
    let _ = tokio::time::timeout(
        skiff_proxy::serve::DRAIN_TIMEOUT + Duration::from_secs(2),
        async {
            for t in tasks {
                let _ = t.await;
            }
        },
    )
    .await;
    Ok(())
}

/// Samples the containers' and the node's CPU and memory for the Metrics API, every
/// [`SAMPLE_INTERVAL`](skiff_agent::runtime::usage::SAMPLE_INTERVAL).
async fn sample_usage(
    usage: Arc<skiff_agent::runtime::usage::Sampler>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(skiff_agent::runtime::usage::SAMPLE_INTERVAL);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let usage = usage.clone();
                let _ = tokio::task::spawn_blocking(move || usage.sample()).await;
            }
            _ = shutdown.changed() => return,
        }
    }
}

/// The node's loops: the images folder (its first pass before pods start), the agent's view of
/// the cluster, cluster DNS, the Service proxy and the pod agent.
async fn start_node(
    config: &ServerConfig,
    opened: Opened,
    control: &skiff_controller::ControlPlane,
    shutdown: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    let imported = Arc::new(tokio::sync::Notify::new());
    let (first_pass_tx, first_pass) = tokio::sync::oneshot::channel();
    tasks.push(tokio::spawn(skiff_agent::image::folder::run(
        opened.images.clone(),
        config.images.clone(),
        opened
            .layout
            .data_dir
            .join("run")
            .join("images-folder.json"),
        imported.clone(),
        first_pass_tx,
        shutdown.clone(),
    )));
    // Archives already in the images folder are imported before pods are started (for a
    // while at most: a huge archive must not hold the agent back).
    let _ = tokio::time::timeout(Duration::from_secs(10), first_pass).await;
    let (cluster, wake) = crate::cluster::KubeCluster::start(
        control.client("skiff-node"),
        control.view.clone(),
        control.api.issuer.clone(),
        shutdown.clone(),
    );
    tasks.push(wake);
    // The Node is registered before the agent starts: the scheduler binds pods to it.
    let heartbeat = crate::machine::Heartbeat {
        client: control.client("skiff-node"),
        name: config.node_name.clone(),
        data_dir: opened.layout.data_dir.clone(),
        internal_ip: skiff_agent::network::host_ip(&config.network).to_string(),
        max_pods: config.max_pods,
    };
    let status = heartbeat.register().await.unwrap_or_else(|e| {
        tracing::error!(node = %config.node_name, "registering the node: {e}");
        serde_json::Value::Null
    });
    tasks.push(tokio::spawn(heartbeat.run(status, shutdown.clone())));
    let network = opened.network;
    tasks.push(tokio::spawn(skiff_agent::network::dns::serve(
        std::net::SocketAddr::new(config.network.cluster_cidr.gateway().into(), 53),
        network.records.clone(),
        shutdown.clone(),
    )));
    let services = skiff_agent::network::ServiceProxy::new(
        cluster.clone(),
        network.clone(),
        opened.layout.pods(),
    );
    tasks.push(tokio::spawn(services.run(shutdown.clone())));
    let agent = skiff_agent::Agent::new(
        &config.node_name,
        cluster,
        opened.runtime,
        opened.puller,
        imported,
    )
    .with_network(network);
    tasks.push(tokio::spawn(agent.run(shutdown)));
    tasks
}
