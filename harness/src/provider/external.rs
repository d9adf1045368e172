//! The external echo server as a container on a Docker network (kind's `kind` network),
//! started with testcontainers from the probe image, so pods reach it through their node's
//! or gateway's SNAT as they would reach any host outside the cluster.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use testcontainers::core::WaitFor;
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

use super::kind::PROBE_IMAGE;
use crate::error::{HarnessError, Result};

/// Containers of a run carry this label with the run's cluster name, for `gc`.
pub const CLUSTER_LABEL: &str = "cni-conformance.cluster";
pub const ECHO_PORT: u16 = 8080;

/// A probe container serving the echo on a Docker network. Removed when dropped.
pub struct ProbeContainer {
    container: Option<ContainerAsync<GenericImage>>,
    runtime: Arc<tokio::runtime::Runtime>,
    /// Its address on the network.
    pub address: IpAddr,
}

impl ProbeContainer {
    /// Starts `cni-probe serve --name <name>` on `network` and waits until it listens.
    pub fn start(runtime: &Arc<tokio::runtime::Runtime>, network: &str, name: &str, cluster: &str) -> Result<Self> {
        let (repository, tag) = PROBE_IMAGE.split_once(':').expect("image has a tag");
        let request = GenericImage::new(repository, tag)
            .with_wait_for(WaitFor::message_on_stdout("listening on"))
            .with_cmd(["serve", "--listen", &format!("0.0.0.0:{ECHO_PORT}"), "--name", name])
            .with_network(network)
            .with_label(CLUSTER_LABEL, cluster)
            .with_startup_timeout(Duration::from_secs(60));
        let failed = |detail: String| HarnessError::NotReady { what: format!("probe container `{name}` ({PROBE_IMAGE}) on Docker network {network}"), detail };
        let container = runtime.block_on(request.start()).map_err(|e| failed(format!("{e}; is the Docker daemon running, and was the image built with `cargo xtask image`?")))?;
        let address = runtime.block_on(container.get_bridge_ip_address()).map_err(|e| failed(e.to_string()))?;
        Ok(Self { container: Some(container), runtime: Arc::clone(runtime), address })
    }

    /// Runs the probe inside this container with `args` and returns its stdout.
    pub fn exec(&self, args: &[&str]) -> Result<crate::model::ExecOutput> {
        let container = self.container.as_ref().expect("present until dropped");
        let mut command = vec!["/cni-probe"];
        command.extend_from_slice(args);
        let failed = |e: testcontainers::TestcontainersError| HarnessError::Command { command: command.join(" "), detail: e.to_string() };
        self.runtime.block_on(async {
            let mut result = container.exec(testcontainers::core::ExecCommand::new(command.clone())).await.map_err(failed)?;
            let stdout = result.stdout_to_vec().await.map_err(failed)?;
            let stderr = result.stderr_to_vec().await.map_err(failed)?;
            let exit = match result.exit_code().await.map_err(failed)? {
                Some(code) => format!("exit status {code}"),
                None => "exit status unknown (Docker reported none)".to_owned(),
            };
            Ok(crate::model::ExecOutput { stdout: String::from_utf8_lossy(&stdout).into_owned(), stderr: String::from_utf8_lossy(&stderr).into_owned(), exit })
        })
    }
}

impl Drop for ProbeContainer {
    fn drop(&mut self) {
        if let Some(container) = self.container.take() {
            // Removal needs the runtime; testcontainers' own Drop would need a tokio context.
            let _ = self.runtime.block_on(container.rm());
        }
    }
}

/// Removes probe containers whose run is gone (all of them with `force`); returns their names.
pub fn collect(force: bool) -> Result<Vec<String>> {
    use super::cli::{self, CliStep};
    let timeout = Duration::from_secs(60);
    let listed = cli::run(&CliStep::new(
        "listing the harness's containers",
        "docker",
        ["ps", "--all", "--filter", &format!("label={CLUSTER_LABEL}"), "--format", &format!("{{{{.ID}}}} {{{{.Label \"{CLUSTER_LABEL}\"}}}}")],
        timeout,
    ))?;
    let mut removed = Vec::new();
    for line in listed.lines() {
        let Some((id, cluster)) = line.split_once(' ') else { continue };
        if force || !super::runs::owner_alive(cluster) {
            cli::run(&CliStep::new(format!("removing container {id} of {cluster}"), "docker", ["rm", "--force", id], timeout))?;
            removed.push(format!("{id} ({cluster})"));
        }
    }
    Ok(removed)
}
