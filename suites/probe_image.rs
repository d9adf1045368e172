//! The probe image, run for real with testcontainers: two containers on a Docker network,
//! the echo reports the client container's address, a closed port is refused. The proxy
//! and iperf3 images, run for real as kind would run them. Ignored
//! with the reason when Docker or the image is missing, unless CNICONF_REQUIRE_TOOLS=1.

use std::sync::Arc;

use cni_probe::Observation;
use harness::provider::cli::{self, CliStep};
use harness::provider::external::ProbeContainer;
use harness::provider::kind::{IPERF3_IMAGE, PROBE_IMAGE, REQUIRE_TOOLS_VARIABLE, TSN_PROXY_IMAGE};
use harness::provider::runs;
use libtest_mimic::{Arguments, Completion, Failed, Trial};

/// Why the image cannot be run here, if it cannot.
fn unavailable() -> Option<String> {
    [PROBE_IMAGE, TSN_PROXY_IMAGE, IPERF3_IMAGE, harness::tools::NETTOOLS_IMAGE].into_iter().find_map(|image| {
        let inspect = CliStep::new(format!("looking for the image {image}"), "docker", ["image", "inspect", image], std::time::Duration::from_secs(30));
        cli::run(&inspect).err().map(|e| format!("{e}; build it with `cargo xtask image`"))
    })
}

/// The proxy image does on a "node" (two host directories) what its DaemonSet does on
/// kind's: the plugin binary into /opt/cni/bin, the entry chained into the conflist.
fn the_proxy_image_installs_the_plugin_and_chains_it_into_the_conflist() -> Result<(), Failed> {
    let node = tempfile::tempdir()?;
    let (bin, conf) = (node.path().join("bin"), node.path().join("net.d"));
    std::fs::create_dir_all(&bin)?;
    std::fs::create_dir_all(&conf)?;
    std::fs::write(conf.join("10-calico.conflist"), r#"{"cniVersion":"0.3.1","name":"k8s-pod-network","plugins":[{"type":"calico"},{"type":"bandwidth"}]}"#)?;
    let daemonset = harness::provider::kind::TsnProxyDeployment::default().daemonset();
    let args: Vec<String> = daemonset["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .ok_or("args")?
        .iter()
        .map(|a| a.as_str().unwrap_or_default().to_owned())
        .collect();
    let name = format!("{}-proxy-install", runs::new_cluster_name());
    let mounts = [format!("{}:/host/opt/cni/bin", bin.display()), format!("{}:/host/etc/cni/net.d", conf.display())];
    let mut run: Vec<&str> = vec!["run", "-d", "--name", &name, "-v", &mounts[0], "-v", &mounts[1], TSN_PROXY_IMAGE];
    run.extend(args.iter().map(String::as_str));
    cli::run(&CliStep::new("starting the proxy's installer", "docker", run, std::time::Duration::from_secs(30)))?;
    let started = std::time::Instant::now();
    let budget = std::time::Duration::from_secs(20);
    let outcome = loop {
        let conflist = std::fs::read_to_string(conf.join("10-calico.conflist"))?;
        if bin.join("tsn-metadata-proxy").is_file() && conflist.contains("tsn-metadata-proxy") {
            let list: serde_json::Value = serde_json::from_str(&conflist)?;
            let types: Vec<&str> = list["plugins"].as_array().unwrap().iter().filter_map(|p| p["type"].as_str()).collect();
            break match types == ["calico", "bandwidth", "tsn-metadata-proxy"] {
                true => Ok(()),
                false => Err(format!("the proxy should be chained last: {types:?}").into()),
            };
        }
        if started.elapsed() > budget {
            break Err(format!("within {budget:?} the installer did not put the plugin in {} and chain it into the conflist", bin.display()).into());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let _ = cli::run(&CliStep::new("removing the proxy's installer", "docker", ["rm", "-f", &name], std::time::Duration::from_secs(30)));
    outcome
}

/// A private Docker network for one trial, claimed as a run (so gc leaves its containers
/// alone while it lives) and removed at the end.
struct Network(String);

impl Network {
    fn create() -> Result<Self, Failed> {
        let name = format!("{}net", runs::new_cluster_name());
        runs::claim(&name, "probe-image-test")?;
        cli::run(&CliStep::new("creating a Docker network", "docker", ["network", "create", &name], std::time::Duration::from_secs(30)))?;
        Ok(Self(name))
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        runs::release(&self.0);
        let _ = cli::run(&CliStep::new("removing a Docker network", "docker", ["network", "rm", &self.0], std::time::Duration::from_secs(30)));
    }
}

fn observe(client: &ProbeContainer, url: &str) -> Result<Observation, Failed> {
    let output = client.exec(&["get", url, "--timeout-ms", "3000"])?;
    Ok(harness::provider::probe_output(&output, || format!("cni-probe get {url} in the client container"))?)
}

fn echo_reports_the_client_containers_address() -> Result<(), Failed> {
    let runtime = Arc::new(tokio::runtime::Runtime::new()?);
    let network = Network::create()?;
    let echo = ProbeContainer::start(&runtime, &network.0, "external", &network.0)?;
    let client = ProbeContainer::start(&runtime, &network.0, "client", &network.0)?;
    match observe(&client, &format!("http://{}:8080/", echo.address))? {
        Observation::Answered { reply } if reply.client.ip() == client.address && reply.server == "external" => Ok(()),
        other => Err(format!("expected an answer from `external` seeing {}, observed {other:?}", client.address).into()),
    }
}

fn a_closed_port_between_containers_is_refused() -> Result<(), Failed> {
    let runtime = Arc::new(tokio::runtime::Runtime::new()?);
    let network = Network::create()?;
    let echo = ProbeContainer::start(&runtime, &network.0, "external", &network.0)?;
    let client = ProbeContainer::start(&runtime, &network.0, "client", &network.0)?;
    match observe(&client, &format!("http://{}:8081/", echo.address))? {
        Observation::Refused { .. } => Ok(()),
        other => Err(format!("expected refused, observed {other:?}").into()),
    }
}

/// The iperf3 image as kind's external host and nodes use it: a server in the network
/// namespace of the echo's container answers on the echo's address; a one-off client beside
/// another container measures it (iperf3's JSON, read as the performance scenarios read
/// it); `iperf3 -s -D` there, as the scenarios start servers, finds it already serving.
fn iperf3_beside_a_container_serves_on_its_address() -> Result<(), Failed> {
    use harness::provider::external::Iperf3Beside;
    use harness::scenarios::performance::{self, IPERF3_PORT};
    let runtime = Arc::new(tokio::runtime::Runtime::new()?);
    let network = Network::create()?;
    let echo = ProbeContainer::start(&runtime, &network.0, "external", &network.0)?;
    let client = ProbeContainer::start(&runtime, &network.0, "client", &network.0)?;
    let server = Iperf3Beside::serve(&echo.id(), IPERF3_PORT, &network.0, std::time::Duration::from_secs(30), "the test's 30 s")?;
    let outcome = (|| -> Result<(), Failed> {
        let again = server.exec(&["-s", "-D", "-p", &IPERF3_PORT.to_string()])?;
        again.stdout_of_success("iperf3 -s -D beside the echo")?;
        let to = std::net::SocketAddr::new(echo.address, IPERF3_PORT);
        let args = performance::iperf3_client_args(&to, 8 << 20);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let measured = performance::throughput_gbit(&Iperf3Beside::run_once(&client.id(), &network.0, &args)?, "beside the client container")?;
        match measured > 0.0 {
            true => Ok(()),
            false => Err(format!("iperf3 measured {measured} Gbit/s to {to}").into()),
        }
    })();
    server.remove()?;
    outcome
}

/// What a failed kind trial's path trace and bundle do on each node and on the external
/// echo: tcpdump, ip and the probe's tcx listing run in a helper container of the nettools
/// image sharing the container's network (`run_in_network_of`: no nsenter, no root on this
/// machine), tools the container's image lacks. It sees the container's own address and
/// the SYN another container sends it, with that container's source address, and lists
/// the tcx programs there (none).
fn a_capture_in_a_containers_network_sees_what_reaches_it() -> Result<(), Failed> {
    use harness::provider::external::run_in_network_of;
    let runtime = Arc::new(tokio::runtime::Runtime::new()?);
    let network = Network::create()?;
    let echo = ProbeContainer::start(&runtime, &network.0, "external", &network.0)?;
    let client = ProbeContainer::start(&runtime, &network.0, "client", &network.0)?;
    let addresses = run_in_network_of(&echo.id(), "ip", &["-o", "addr", "show"])?.stdout_of_success("ip addr in the echo's network")?;
    if !addresses.contains(&format!("inet {}/", echo.address)) {
        return Err(format!("the echo's network should hold its address {}: {addresses}", echo.address).into());
    }
    let filter = format!("tcp[tcpflags] & tcp-syn != 0 and dst host {} and dst port 8080", echo.address);
    let listed = run_in_network_of(&echo.id(), "cni-probe", &["bpf-attachments"])?.stdout_of_success("cni-probe bpf-attachments in the echo's network")?;
    if !listed.trim().is_empty() {
        return Err(format!("no tcx program is attached in a probe container's network, yet: {listed}").into());
    }
    // Requests until the capture ends: the helper container takes its time to start.
    let capture = std::thread::scope(|scope| {
        let id = echo.id();
        let capturing = scope.spawn(move || run_in_network_of(&id, "timeout", &["8", "tcpdump", "-i", "any", "-nn", "-l", "-c", "1", &filter]));
        let mut answered = Err::<Observation, Failed>("no request made".into());
        while !capturing.is_finished() {
            std::thread::sleep(std::time::Duration::from_millis(300));
            answered = observe(&client, &format!("http://{}:8080/", echo.address));
        }
        (capturing.join().expect("the capture returns"), answered)
    });
    let (captured, answered) = (capture.0?, capture.1?);
    match (captured.stdout.contains(&format!("{}.", client.address)), answered) {
        (true, Observation::Answered { .. }) => Ok(()),
        (seen, answered) => Err(format!(
            "expected the client's SYN ({}) captured in the echo's network and an answer; captured: {seen} ({}; {}), answered: {answered:?}",
            client.address,
            captured.stdout.trim(),
            captured.stderr.trim()
        )
        .into()),
    }
}

/// A kind cluster whose nodes share a BPF filesystem (`bpffs: shared`) gets a directory of
/// its own in the Docker host's, which Docker makes when it binds it into a node (kind's
/// extraMounts are `--volume`s), and which the run's helper removes with what was pinned
/// there. Done here with a BPF filesystem mounted at a temporary directory standing for the
/// host's /sys/fs/bpf; the check before a cluster is made refuses a directory that is not
/// one (by its type).
fn a_shared_bpf_filesystem_is_a_directory_docker_makes_and_the_run_removes() -> Result<(), Failed> {
    use harness::provider::kind::bpffs;
    let host = tempfile::tempdir()?;
    let root = host.path().display().to_string();
    let mounted = std::process::Command::new("mount").args(["-t", "bpf", "bpf", &root]).status()?;
    if !mounted.success() {
        return Err(format!("could not mount a BPF filesystem at {root} ({mounted}): the test needs root").into());
    }
    let outcome = (|| -> Result<(), Failed> {
        let timeout = std::time::Duration::from_secs(60);
        cli::run(&bpffs::check_step(&root, timeout))?;
        let plain = tempfile::tempdir()?;
        let refused = cli::run(&bpffs::check_step(&plain.path().display().to_string(), timeout)).map(drop).unwrap_err().to_string();
        if !refused.contains("not a BPF filesystem") || !refused.contains("sudo mount -t bpf bpf") {
            return Err(format!("a plain directory should be refused with what to do: {refused}").into());
        }
        let cluster = format!("{}-bpffs", runs::new_cluster_name());
        let node = format!("{}:/sys/fs/bpf", bpffs::of_cluster(&root, &cluster));
        let seen = cli::run(&CliStep::new(
            "a node binding the cluster's directory",
            "docker",
            ["run", "--rm", "--volume", &node, harness::tools::NETTOOLS_IMAGE, "sh", "-c", "stat -f -c %T /sys/fs/bpf && exec cni-probe bpf-attachments"],
            timeout,
        ))?;
        if seen.trim() != "bpf_fs" || !host.path().join(&cluster).is_dir() {
            return Err(format!("Docker should have made {cluster} in the host's BPF filesystem and the node see it as one: {seen:?}").into());
        }
        std::fs::create_dir(host.path().join(&cluster).join("pinned-by-a-plugin"))?;
        cli::run(&bpffs::remove_step(&root, &cluster, timeout))?;
        match host.path().join(&cluster).exists() {
            true => Err(format!("{cluster} is still in the host's BPF filesystem after its removal").into()),
            false => Ok(()),
        }
    })();
    let _ = std::process::Command::new("umount").arg(&root).status();
    outcome
}

/// A probe container labelled as `cluster`'s, as the harness labels its own; its short id.
fn labelled_container(cluster: &str) -> Result<String, Failed> {
    let label = format!("{}={cluster}", harness::provider::external::CLUSTER_LABEL);
    let id = cli::run(&CliStep::new(
        "starting a labelled container",
        "docker",
        ["run", "--detach", "--label", &label, PROBE_IMAGE],
        std::time::Duration::from_secs(30),
    ))?;
    Ok(id.trim().chars().take(12).collect())
}

fn gc_removes_containers_of_dead_runs_and_keeps_live_ones() -> Result<(), Failed> {
    let (dead, live) = (runs::new_cluster_name(), runs::new_cluster_name());
    runs::claim(&live, "kind")?;
    let (dead_id, live_id) = (labelled_container(&dead)?, labelled_container(&live)?);
    let removed = harness::provider::external::collect(false)?;
    let live_kept = !removed.iter().any(|r| r.contains(&live));
    let _ = cli::run(&CliStep::new("removing the live run's container", "docker", ["rm", "--force", &live_id], std::time::Duration::from_secs(30)));
    runs::release(&live);
    match (removed.iter().any(|r| r.starts_with(&dead_id)), live_kept) {
        (true, true) => Ok(()),
        outcome => Err(format!("expected the dead run's container removed and the live one kept, got {outcome:?} from {removed:?}").into()),
    }
}

/// An interrupted kind run removes its own containers (the echo, iperf3) before it exits,
/// and no other run's.
fn an_interrupted_run_removes_its_own_containers_only() -> Result<(), Failed> {
    let (interrupted, other) = (runs::new_cluster_name(), runs::new_cluster_name());
    // Both alive, so the gc test beside this one leaves their containers alone.
    runs::claim(&interrupted, "kind")?;
    runs::claim(&other, "kind")?;
    let (gone, kept) = (labelled_container(&interrupted)?, labelled_container(&other)?);
    let removed = harness::provider::external::remove_containers_of(&interrupted)?;
    let running = cli::run(&CliStep::new("listing containers", "docker", ["ps", "--all", "--quiet"], std::time::Duration::from_secs(30)))?;
    let _ = cli::run(&CliStep::new("removing the other run's container", "docker", ["rm", "--force", &kept], std::time::Duration::from_secs(30)));
    runs::release(&other);
    runs::release(&interrupted);
    match (removed.iter().all(|r| r.starts_with(&gone)) && removed.len() == 1, running.contains(&kept), running.contains(&gone)) {
        (true, true, false) => Ok(()),
        outcome => Err(format!("expected only {gone} removed and {kept} kept, got {outcome:?} from {removed:?}").into()),
    }
}

fn main() -> std::process::ExitCode {
    let args = Arguments::from_args();
    let require = std::env::var(REQUIRE_TOOLS_VARIABLE).is_ok_and(|v| v == "1");
    let trial = |name: &'static str, body: fn() -> Result<(), Failed>| {
        Trial::ignorable_test(name, move || match unavailable() {
            Some(reason) if !require => Ok(Completion::ignored_with(reason)),
            Some(reason) => Err(reason.into()),
            None => body().map(|()| Completion::Completed),
        })
    };
    let trials = vec![
        trial("echo_reports_the_client_containers_address", echo_reports_the_client_containers_address),
        trial("a_closed_port_between_containers_is_refused", a_closed_port_between_containers_is_refused),
        trial("gc_removes_containers_of_dead_runs_and_keeps_live_ones", gc_removes_containers_of_dead_runs_and_keeps_live_ones),
        trial("the_proxy_image_installs_the_plugin_and_chains_it_into_the_conflist", the_proxy_image_installs_the_plugin_and_chains_it_into_the_conflist),
        trial("iperf3_beside_a_container_serves_on_its_address", iperf3_beside_a_container_serves_on_its_address),
        trial("an_interrupted_run_removes_its_own_containers_only", an_interrupted_run_removes_its_own_containers_only),
        trial("a_capture_in_a_containers_network_sees_what_reaches_it", a_capture_in_a_containers_network_sees_what_reaches_it),
        trial(
            "a_shared_bpf_filesystem_is_a_directory_docker_makes_and_the_run_removes",
            a_shared_bpf_filesystem_is_a_directory_docker_makes_and_the_run_removes,
        ),
    ];
    libtest_mimic::run(&args, trials).exit_code()
}
