//! The external echo server as a container on a Docker network (kind's `kind` network),
//! started with testcontainers from the probe image, so pods reach it through their node's
//! or gateway's SNAT as they would reach any host outside the cluster.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use testcontainers::core::WaitFor;
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

use crate::error::{HarnessError, Result};
use crate::tools::{IPERF3_IMAGE, NETTOOLS_IMAGE, PROBE_IMAGE};

/// Containers of a run carry this label with the run's cluster name, for `gc`.
pub const CLUSTER_LABEL: &str = "cni-conformance.cluster";
pub const ECHO_PORT: u16 = 8080;

/// Runs `program args` in the network of Docker container `container` (a kind node, the
/// external echo) from a helper container of [`NETTOOLS_IMAGE`] sharing it (`docker run
/// --network container:<container>`): the container's links, addresses and packets, the
/// image's tools (tcpdump, sh, timeout, base64, ip, conntrack, `cni-probe`). It needs no
/// root on this machine and works where Docker runs elsewhere (a remote `DOCKER_HOST`,
/// Docker Desktop), where the PID `docker inspect` reports is another machine's. Capturing
/// and reading tcx programs need NET_RAW, NET_ADMIN and SYS_ADMIN, which it is given.
pub fn run_in_network_of(container: &str, program: &str, args: &[&str]) -> Result<crate::model::ExecOutput> {
    let output = std::process::Command::new("docker").args(helper_args(container, program, args)).output().map_err(|e| HarnessError::Command {
        command: format!("docker run --network container:{container} {NETTOOLS_IMAGE} {program}"),
        detail: format!("{e} (is Docker installed?)"),
    })?;
    let ran = crate::model::ExecOutput::from_output(&output);
    // Docker's own refusal (no such image, no such container) is no program's answer.
    if output.status.code() == Some(125) {
        return Err(HarnessError::NotReady {
            what: format!("a helper container of {NETTOOLS_IMAGE} in the network of container {container}"),
            detail: format!("{} (build the image with `cargo xtask image`)", String::from_utf8_lossy(&output.stderr).trim()),
        });
    }
    Ok(ran)
}

/// `docker run` of a helper container in `container`'s network.
fn helper_args(container: &str, program: &str, args: &[&str]) -> Vec<String> {
    let mut all: Vec<String> = ["run", "--rm", "--network"].map(str::to_owned).into();
    all.push(format!("container:{container}"));
    for capability in ["NET_RAW", "NET_ADMIN", "SYS_ADMIN"] {
        all.extend(["--cap-add".to_owned(), capability.to_owned()]);
    }
    all.extend([NETTOOLS_IMAGE.to_owned(), program.to_owned()]);
    all.extend(args.iter().map(|a| (*a).to_owned()));
    all
}

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
        let container = runtime
            .block_on(request.start())
            .map_err(|e| failed(format!("{e}; is the Docker daemon running, and was the image built with `cargo xtask image`?")))?;
        let address = runtime.block_on(container.get_bridge_ip_address()).map_err(|e| failed(e.to_string()))?;
        Ok(Self { container: Some(container), runtime: Arc::clone(runtime), address })
    }

    /// The container's id, for containers that join its network namespace.
    pub fn id(&self) -> String {
        self.container.as_ref().expect("present until dropped").id().to_owned()
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

/// iperf3 from the project's iperf3 image in the network namespace of another container
/// (the external host's, or a kind node's), so it serves on that container's address.
/// Started with Docker's CLI: testcontainers would create a network named `container:<id>`.
#[derive(Debug)]
pub struct Iperf3Beside {
    pub id: String,
    /// The container whose network it shares.
    pub beside: String,
}

impl Iperf3Beside {
    /// `iperf3 -s -p <port>` beside container `beside`, labelled for `cluster`'s gc; waits
    /// until it says it listens, for at most `budget` (named `budget_name`).
    pub fn serve(beside: &str, port: u16, cluster: &str, budget: Duration, budget_name: &str) -> Result<Self> {
        use super::cli::{self, CliStep};
        let (label, network, port) = (format!("{CLUSTER_LABEL}={cluster}"), format!("container:{beside}"), port.to_string());
        let started = cli::run(&CliStep::new(
            format!("starting iperf3 ({IPERF3_IMAGE}) beside {beside}"),
            "docker",
            ["run", "-d", "--label", &label, "--network", &network, IPERF3_IMAGE, "-s", "-p", &port, "--forceflush"],
            budget,
        ))?;
        let server = Self { id: started.trim().to_owned(), beside: beside.to_owned() };
        let budget = crate::deadline::budget(budget, budget_name);
        let since = std::time::Instant::now();
        loop {
            let logs = std::process::Command::new("docker")
                .args(["logs", &server.id])
                .output()
                .map_err(|e| HarnessError::Command { command: format!("docker logs {}", server.id), detail: e.to_string() })?;
            let said = format!("{}{}", String::from_utf8_lossy(&logs.stdout), String::from_utf8_lossy(&logs.stderr));
            if said.contains("Server listening") {
                return Ok(server);
            }
            if since.elapsed() >= budget.duration {
                let _ = server.remove();
                return Err(HarnessError::NotReady {
                    what: format!("iperf3 beside {beside}"),
                    detail: format!("not listening on port {port} within {:?} ({}); it said: {}", budget.duration, budget.name, said.trim()),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs iperf3 with `args` in this container.
    pub fn exec(&self, args: &[&str]) -> Result<crate::model::ExecOutput> {
        let output = std::process::Command::new("docker")
            .args(["exec", &self.id, "/usr/bin/iperf3"])
            .args(args)
            .output()
            .map_err(|e| HarnessError::Command { command: format!("docker exec {} iperf3", self.id), detail: e.to_string() })?;
        Ok(crate::model::ExecOutput::from_output(&output))
    }

    /// One iperf3 run (a client) with `args` in a container of its own beside `beside`,
    /// removed when it ends.
    pub fn run_once(beside: &str, cluster: &str, args: &[&str]) -> Result<crate::model::ExecOutput> {
        let output = std::process::Command::new("docker")
            .args(["run", "--rm", "--label", &format!("{CLUSTER_LABEL}={cluster}"), "--network", &format!("container:{beside}"), IPERF3_IMAGE])
            .args(args)
            .output()
            .map_err(|e| HarnessError::Command { command: format!("docker run {IPERF3_IMAGE} beside {beside}"), detail: e.to_string() })?;
        Ok(crate::model::ExecOutput::from_output(&output))
    }

    pub fn remove(&self) -> Result<()> {
        use super::cli::{self, CliStep};
        cli::run(&CliStep::new(format!("removing iperf3 beside {}", self.beside), "docker", ["rm", "--force", &self.id], Duration::from_secs(60))).map(drop)
    }
}

/// Removes the harness's containers (probes, iperf3) whose run is gone (all of them with
/// `force`); returns their names.
pub fn collect(force: bool) -> Result<Vec<String>> {
    remove_containers_where(&format!("label={CLUSTER_LABEL}"), |cluster| force || !super::runs::owner_alive(cluster))
}

/// Removes the containers of `cluster`'s run (an interrupted run's, before it exits).
pub fn remove_containers_of(cluster: &str) -> Result<Vec<String>> {
    remove_containers_where(&format!("label={CLUSTER_LABEL}={cluster}"), |_| true)
}

/// Removes the containers `filter` lists whose cluster label `remove` accepts.
fn remove_containers_where(filter: &str, remove: impl Fn(&str) -> bool) -> Result<Vec<String>> {
    use super::cli::{self, CliStep};
    let timeout = Duration::from_secs(60);
    let listed = cli::run(&CliStep::new(
        "listing the harness's containers",
        "docker",
        ["ps", "--all", "--filter", filter, "--format", &format!("{{{{.ID}}}} {{{{.Label \"{CLUSTER_LABEL}\"}}}}")],
        timeout,
    ))?;
    let mut removed = Vec::new();
    for line in listed.lines() {
        let Some((id, cluster)) = line.split_once(' ') else { continue };
        if remove(cluster) {
            cli::run(&CliStep::new(format!("removing container {id} of {cluster}"), "docker", ["rm", "--force", id], timeout))?;
            removed.push(format!("{id} ({cluster})"));
        }
    }
    Ok(removed)
}
