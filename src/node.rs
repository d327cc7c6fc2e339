//! The API server's view of the node (what a kubelet serves: logs), answered by the agent.

use bytes::Bytes;
use skiff_agent::pod::logs::{self, LogRequest};
use skiff_agent::runtime::Layout;
use skiff_controller::api::metrics_api::{ContainerUsage, Usage, UsageReport};
use skiff_controller::api::{ExecRequest, LogOptions, Node, NodeError};
use tokio::sync::mpsc;

/// Implements [`Node`] over the agent's files.
pub struct AgentNode {
    /// The data directory's layout.
    pub layout: Layout,
    /// The pod network (`--cluster-cidr`).
    pub pod_network: skiff_agent::network::Cidr,
    /// The host ports skiff listens on (on one address, or `None`: every one), and what
    /// listens there.
    pub reserved: Vec<(Option<std::net::IpAddr>, u16, String)>,
    /// The containers' and the node's CPU and memory, sampled.
    pub usage: std::sync::Arc<skiff_agent::runtime::usage::Sampler>,
}

impl Node for AgentNode {
    fn usage(&self) -> Option<UsageReport> {
        let r = self.usage.report()?;
        let usage = |(cpu_nanocores, memory_bytes)| Usage {
            cpu_nanocores,
            memory_bytes,
        };
        Some(UsageReport {
            timestamp: r.timestamp,
            window: r.window,
            node: r.node.map(usage),
            containers: r
                .containers
                .into_iter()
                .map(|(pod_uid, container, cpu, memory)| ContainerUsage {
                    pod_uid,
                    container,
                    usage: usage((cpu, memory)),
                })
                .collect(),
        })
    }

    fn reserved_ports(&self) -> Vec<(Option<std::net::IpAddr>, u16, String)> {
        self.reserved.clone()
    }

    fn is_pod_address(&self, ip: std::net::IpAddr) -> bool {
        match ip {
            std::net::IpAddr::V4(v4) => self.pod_network.contains(v4),
            std::net::IpAddr::V6(_) => false,
        }
    }

    fn logs(
        &self,
        pod: &serde_json::Value,
        o: LogOptions,
    ) -> Result<mpsc::Receiver<Bytes>, NodeError> {
        let m = &pod["metadata"];
        logs::stream(
            &self.layout,
            LogRequest {
                namespace: m["namespace"].as_str().unwrap_or_default().into(),
                pod: m["name"].as_str().unwrap_or_default().into(),
                uid: m["uid"].as_str().unwrap_or_default().into(),
                container: o.container,
                follow: o.follow,
                tail_lines: o.tail_lines,
                timestamps: o.timestamps,
                previous: o.previous,
                since_seconds: o.since_seconds,
                limit_bytes: o.limit_bytes,
            },
        )
        .map_err(|e| NodeError(e.to_string()))
    }

    fn exec(
        &self,
        pod: &serde_json::Value,
        request: ExecRequest,
    ) -> Result<tokio::process::Child, NodeError> {
        let uid = pod["metadata"]["uid"].as_str().unwrap_or_default();
        let Some(dir) = skiff_agent::runtime::exec::running_container_dir(
            &self.layout,
            uid,
            &request.container,
        ) else {
            return Err(NodeError(format!(
                "container {:?} is not running",
                request.container
            )));
        };
        let exe = std::env::current_exe().map_err(|e| NodeError(e.to_string()))?;
        let mut command = skiff_agent::runtime::protocol::shim_command(
            &exe,
            &dir,
            skiff_agent::runtime::protocol::ShimCommand::Exec {
                tty: request.tty,
                command: &request.command,
            },
        );
        command
            .stdin(if request.stdin || request.tty {
                std::process::Stdio::piped()
            } else {
                std::process::Stdio::null()
            })
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| NodeError(format!("starting the exec helper: {e}")))
    }
}
