//! `skiff server`'s settings: the flags, `/etc/skiff/config.yaml` (the same keys), and the
//! defaults, merged into one [`ServerConfig`] (a flag wins over the file, the file over the
//! default).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use serde::Deserialize;

#[derive(Args)]
pub struct ServerArgs {
    /// The configuration file (YAML; the same keys as these flags, e.g. `data-dir: /srv/skiff`).
    #[arg(long, default_value = "/etc/skiff/config.yaml")]
    config: PathBuf,
    /// Where everything persistent lives. [default: /var/lib/skiff]
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The manifests folder. [default: /etc/skiff/manifests]
    #[arg(long)]
    manifests: Option<PathBuf>,
    /// The images folder for archives to import. [default: <data-dir>/images]
    #[arg(long)]
    images: Option<PathBuf>,
    /// Registry mirrors, credentials and TLS, in k3s's registries.yaml format.
    /// [default: /etc/skiff/registries.yaml]
    #[arg(long)]
    registries: Option<PathBuf>,
    /// The Kubernetes API's HTTPS port. [default: 6443]
    #[arg(long)]
    api_port: Option<u16>,
    /// The address the API and the ingress proxy listen on. [default: 0.0.0.0]
    #[arg(long)]
    bind_address: Option<std::net::IpAddr>,
    /// Extra host names or IPs for the API's serving certificate (repeatable).
    #[arg(long)]
    tls_san: Vec<String>,
    /// Where to write the admin kubeconfig (mode 0600). [default: /etc/skiff/kubeconfig.yaml]
    #[arg(long)]
    write_kubeconfig: Option<PathBuf>,
    /// The ingress proxy's HTTP port, on --bind-address (0: none). [default: 80]
    #[arg(long)]
    http_port: Option<u16>,
    /// The ingress proxy's HTTPS port, on --bind-address (0: none). [default: 443]
    #[arg(long)]
    https_port: Option<u16>,
    /// Threads of the ingress proxy's own, each serving the connections it accepts.
    /// [default: one per CPU]
    #[arg(long)]
    ingress_threads: Option<std::num::NonZeroUsize>,
    /// The ACME directory that certificates of Ingress TLS hosts are ordered from ("off": no
    /// ACME, self-signed certificates). [default: Let's Encrypt's production directory]
    #[arg(long)]
    acme_directory: Option<String>,
    /// The ACME account's contact e-mail address.
    #[arg(long)]
    acme_email: Option<String>,
    /// A PEM file with the root to trust for the ACME server's own HTTPS (e.g. pebble's).
    /// [default: the system's roots]
    #[arg(long)]
    acme_ca_root: Option<PathBuf>,
    /// Pull only through the mirrors of registries.yaml, never from a registry's own endpoint
    /// (registries on loopback excepted): for air-gapped hosts.
    #[arg(long)]
    disable_default_registry_endpoint: bool,
    /// Pod addresses. [default: 10.42.0.0/16]
    #[arg(long)]
    cluster_cidr: Option<String>,
    /// Service virtual IPs. [default: 10.43.0.0/16]
    #[arg(long)]
    service_cidr: Option<String>,
    /// The pods' bridge. [default: skiff0]
    #[arg(long)]
    bridge: Option<String>,
    /// This node's name (its Node object). [default: the host name]
    #[arg(long)]
    node_name: Option<String>,
    /// The most processes (and threads) one pod may have, all its containers together (its
    /// cgroup's `pids.max`, kubelet's podPidsLimit): a fork bomb stops there instead of taking
    /// the host; 0 for no limit. [default: 4096]
    #[arg(long)]
    pod_max_pids: Option<u32>,
    /// The most pods this node runs at once (its Node's `pods` capacity, kubelet's
    /// `maxPods`): pods past it stay Pending (`Too many pods`). [default: 110]
    #[arg(long)]
    max_pods: Option<u64>,
    /// The largest request body the API accepts (bytes); larger ones are answered 413.
    /// [default: 3145728, kube-apiserver's]
    #[arg(long)]
    api_max_request_body_bytes: Option<usize>,
    /// Connections the API serves at once; more are closed as they come. [default: 1024]
    #[arg(long)]
    api_max_connections: Option<usize>,
    /// Seconds an API connection may take for its TLS handshake. [default: 10]
    #[arg(long)]
    api_handshake_timeout: Option<u64>,
    /// Seconds an API client may take to send a request's headers (and, once connected, its
    /// first request's). [default: 30]
    #[arg(long)]
    api_header_read_timeout: Option<u64>,
    /// Seconds an API connection may stay without a request in flight (watches and followed
    /// logs are in flight). [default: 90]
    #[arg(long)]
    api_idle_timeout: Option<u64>,
    /// The largest size of a container's log file before it is rotated, a quantity (`10Mi`),
    /// as kubelet's `containerLogMaxSize`. [default: 10Mi]
    #[arg(long)]
    container_log_max_size: Option<String>,
    /// The most log files kept per container (the current one included, at least 2), as
    /// kubelet's `containerLogMaxFiles`. [default: 5]
    #[arg(long)]
    container_log_max_files: Option<u32>,
}

/// `/etc/skiff/config.yaml`: the same keys as the flags.
#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct ConfigFile {
    data_dir: Option<PathBuf>,
    manifests: Option<PathBuf>,
    images: Option<PathBuf>,
    registries: Option<PathBuf>,
    api_port: Option<u16>,
    bind_address: Option<std::net::IpAddr>,
    #[serde(default)]
    tls_san: Vec<String>,
    write_kubeconfig: Option<PathBuf>,
    #[serde(default)]
    disable_default_registry_endpoint: bool,
    http_port: Option<u16>,
    https_port: Option<u16>,
    ingress_threads: Option<std::num::NonZeroUsize>,
    acme_directory: Option<String>,
    acme_email: Option<String>,
    acme_ca_root: Option<PathBuf>,
    cluster_cidr: Option<String>,
    service_cidr: Option<String>,
    bridge: Option<String>,
    node_name: Option<String>,
    pod_max_pids: Option<u32>,
    max_pods: Option<u64>,
    api_max_request_body_bytes: Option<usize>,
    api_max_connections: Option<usize>,
    api_handshake_timeout: Option<u64>,
    api_header_read_timeout: Option<u64>,
    api_idle_timeout: Option<u64>,
    container_log_max_size: Option<String>,
    container_log_max_files: Option<u32>,
}

pub struct ServerConfig {
    pub data_dir: PathBuf,
    pub manifests: PathBuf,
    pub images: PathBuf,
    pub registries: PathBuf,
    pub api: std::net::SocketAddr,
    pub tls_sans: Vec<String>,
    pub kubeconfig: PathBuf,
    pub offline_registries: bool,
    pub ingress: skiff_controller::IngressConfig,
    pub node_name: String,
    pub network: skiff_agent::network::NetworkConfig,
    /// `pids.max` of every pod (`None`: no limit).
    pub pids_limit: Option<u32>,
    /// The node's `pods` capacity.
    pub max_pods: u64,
    /// The API server's bounds on connections and bodies.
    pub api_limits: skiff_controller::api::ApiLimits,
    /// How containers' logs are rotated.
    pub log_rotation: skiff_agent::runtime::logfile::Rotation,
}

impl ServerArgs {
    pub fn resolve(&self) -> Result<ServerConfig> {
        let file = self.file()?;
        let data_dir = pick(&self.data_dir, &file.data_dir, "/var/lib/skiff".into());
        let bind = self
            .bind_address
            .or(file.bind_address)
            .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
        let mut tls_sans = file.tls_san.clone();
        tls_sans.extend(self.tls_san.iter().cloned());
        let pids = self.pod_max_pids.or(file.pod_max_pids).unwrap_or(4096);
        let max_pods = self
            .max_pods
            .or(file.max_pods)
            .unwrap_or(crate::machine::MAX_PODS);
        if max_pods == 0 {
            anyhow::bail!("max-pods must be at least 1");
        }
        Ok(ServerConfig {
            pids_limit: (pids > 0).then_some(pids),
            max_pods,
            api_limits: self.api_limits(&file)?,
            log_rotation: self.log_rotation(&file)?,
            ingress: self.ingress(&file, bind),
            node_name: self
                .node_name
                .clone()
                .or(file.node_name.clone())
                // As kubelet: the host name in lower case.
                .unwrap_or_else(|| skiff_controller::model::node::hostname().to_lowercase()),
            manifests: pick(
                &self.manifests,
                &file.manifests,
                "/etc/skiff/manifests".into(),
            ),
            images: pick(&self.images, &file.images, data_dir.join("images")),
            registries: pick(
                &self.registries,
                &file.registries,
                "/etc/skiff/registries.yaml".into(),
            ),
            data_dir,
            api: std::net::SocketAddr::new(bind, self.api_port.or(file.api_port).unwrap_or(6443)),
            tls_sans,
            kubeconfig: pick(
                &self.write_kubeconfig,
                &file.write_kubeconfig,
                "/etc/skiff/kubeconfig.yaml".into(),
            ),
            offline_registries: self.disable_default_registry_endpoint
                || file.disable_default_registry_endpoint,
            network: self.network(&file)?,
        })
    }

    /// The configuration file (none at the default path is an empty one).
    fn file(&self) -> Result<ConfigFile> {
        match std::fs::read_to_string(&self.config) {
            Ok(text) => Ok(serde_yaml_ng::from_str::<Option<ConfigFile>>(&text)
                .with_context(|| format!("invalid configuration file {}", self.config.display()))?
                .unwrap_or_default()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ConfigFile::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", self.config.display())),
        }
    }

    /// The proxy's listeners (port 0: none) and ACME ("off": none).
    fn ingress(
        &self,
        file: &ConfigFile,
        bind: std::net::IpAddr,
    ) -> skiff_controller::IngressConfig {
        let listen = |port: u16| (port != 0).then(|| std::net::SocketAddr::new(bind, port));
        let acme_directory = pick(
            &self.acme_directory,
            &file.acme_directory,
            skiff_controller::ingress::acme::LETS_ENCRYPT.into(),
        );
        skiff_controller::IngressConfig {
            http: listen(self.http_port.or(file.http_port).unwrap_or(80)),
            https: listen(self.https_port.or(file.https_port).unwrap_or(443)),
            tls_resumption: std::env::var_os("SKIFF_PROXY_NO_TLS_RESUMPTION").is_none(),
            threads: self
                .ingress_threads
                .or(file.ingress_threads)
                .unwrap_or_else(|| {
                    std::thread::available_parallelism().unwrap_or(std::num::NonZeroUsize::MIN)
                }),
            acme_directory: (acme_directory != "off").then_some(acme_directory),
            acme_email: self.acme_email.clone().or(file.acme_email.clone()),
            acme_ca_root: self.acme_ca_root.clone().or(file.acme_ca_root.clone()),
        }
    }

    /// The API server's bounds (`skiff_proxy::serve`'s defaults, kube-apiserver's values).
    fn api_limits(&self, file: &ConfigFile) -> Result<skiff_controller::api::ApiLimits> {
        use skiff_proxy::serve;
        let seconds =
            |flag: Option<u64>, key: Option<u64>, default: std::time::Duration, name: &str| {
                match flag.or(key) {
                    Some(0) => Err(anyhow::anyhow!("--{name}: must be at least 1 second")),
                    Some(s) => Ok(std::time::Duration::from_secs(s)),
                    None => Ok(default),
                }
            };
        let connections = serve::Limits {
            handshake_timeout: seconds(
                self.api_handshake_timeout,
                file.api_handshake_timeout,
                serve::HANDSHAKE_TIMEOUT,
                "api-handshake-timeout",
            )?,
            header_read_timeout: seconds(
                self.api_header_read_timeout,
                file.api_header_read_timeout,
                serve::HEADER_READ_TIMEOUT,
                "api-header-read-timeout",
            )?,
            idle_timeout: seconds(
                self.api_idle_timeout,
                file.api_idle_timeout,
                serve::IDLE_TIMEOUT,
                "api-idle-timeout",
            )?,
            max_connections: self
                .api_max_connections
                .or(file.api_max_connections)
                .unwrap_or(serve::MAX_CONNECTIONS),
        };
        if connections.max_connections == 0 {
            anyhow::bail!("--api-max-connections: must be at least 1");
        }
        let max_body_bytes = self
            .api_max_request_body_bytes
            .or(file.api_max_request_body_bytes)
            .unwrap_or(skiff_controller::api::MAX_BODY_BYTES);
        if max_body_bytes < 64 * 1024 {
            anyhow::bail!("--api-max-request-body-bytes: must be at least 65536");
        }
        Ok(skiff_controller::api::ApiLimits {
            connections,
            max_body_bytes,
        })
    }

    /// `--container-log-max-size` and `--container-log-max-files` (kubelet's limits: a size of
    /// at least 1Ki here, at least 2 files).
    fn log_rotation(&self, file: &ConfigFile) -> Result<skiff_agent::runtime::logfile::Rotation> {
        use skiff_agent::runtime::logfile::Rotation;
        let mut rotation = Rotation::default();
        if let Some(size) = self
            .container_log_max_size
            .as_ref()
            .or(file.container_log_max_size.as_ref())
        {
            rotation.max_size = skiff_agent::runtime::oci::parse_quantity(size, 1.0)
                .filter(|n| *n >= 1024)
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "--container-log-max-size: {size:?} is not a size of at least 1Ki (e.g. 10Mi)"
                    )
                })? as u64;
        }
        if let Some(files) = self
            .container_log_max_files
            .or(file.container_log_max_files)
        {
            if files < 2 {
                anyhow::bail!("--container-log-max-files: {files} must be at least 2");
            }
            rotation.max_files = files;
        }
        Ok(rotation)
    }

    /// The pods' bridge and address ranges.
    fn network(&self, file: &ConfigFile) -> Result<skiff_agent::network::NetworkConfig> {
        let cidr = |flag: &Option<String>, key: &Option<String>, default: &str, name: &str| {
            pick(flag, key, default.to_string())
                .parse()
                .map_err(|e| anyhow::anyhow!("--{name}: {e}"))
        };
        Ok(skiff_agent::network::NetworkConfig {
            bridge: pick(&self.bridge, &file.bridge, "skiff0".into()),
            cluster_cidr: cidr(
                &self.cluster_cidr,
                &file.cluster_cidr,
                "10.42.0.0/16",
                "cluster-cidr",
            )?,
            service_cidr: cidr(
                &self.service_cidr,
                &file.service_cidr,
                "10.43.0.0/16",
                "service-cidr",
            )?,
        })
    }
}

/// A setting: the flag, else the configuration file's key, else the default.
fn pick<T: Clone>(flag: &Option<T>, key: &Option<T>, default: T) -> T {
    flag.clone().or_else(|| key.clone()).unwrap_or(default)
}
