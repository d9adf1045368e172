//! The kind provider's lifecycle against stand-in `kind`, `kubectl`, `helm` and `docker`
//! executables on PATH that record their arguments and answer like the real ones. This
//! tests the sequence of calls, errors and cleanup; it creates no real cluster.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use harness::cni;
use harness::provider::kind::{Addons, KindCluster, KindOptions, KindTimeouts};
use harness::provider::runs;

/// PATH is process-wide: one test at a time.
static PATH_LOCK: Mutex<()> = Mutex::new(());

struct StandIns {
    dir: tempfile::TempDir,
    original_path: String,
}

/// Every stand-in appends `<tool> <args>` to calls.log, fails when its command line
/// matches $STANDIN_FAIL (printing $STANDIN_STDERR), sleeps when it matches $STANDIN_HANG,
/// answers `kind get clusters` with $STANDIN_CLUSTERS, `docker network inspect` with
/// kind's usual subnets, `docker run -d` with a container id and `docker logs` as a
/// listening iperf3 server. `docker exec -i` keeps what it reads in `received`; `docker
/// cp` into a node's /tmp fails, as on kind's tmpfs /tmp (kind `provision.go` runs nodes
/// with `--tmpfs /tmp`; moby #22020). `docker network connect --ip` is refused as Docker
/// refuses it on kind's network, whose only configured subnet is IPv6 (kind
/// `pkg/cluster/internal/providers/docker/network.go`); a node's eth0 peers with host link 23.
const STANDIN: &str = r#"#!/bin/sh
line="$(basename "$0") $*"
echo "$line" >> "$STANDIN_DIR/calls.log"
case "$line" in *"$STANDIN_FAIL"*) if [ -n "$STANDIN_FAIL" ]; then echo "$STANDIN_STDERR" >&2; exit 1; fi;; esac
case "$line" in *"$STANDIN_HANG"*) if [ -n "$STANDIN_HANG" ]; then sleep 30; fi;; esac
case "$line" in
  "docker exec -i"*) cat >> "$STANDIN_DIR/received";;
  "docker cp"*":/tmp/"*) echo "Error response from daemon: cannot write into a tmpfs mount (moby #22020)" >&2; exit 1;;
  "docker network connect --ip"*) echo "Error response from daemon: user specified IP address is supported only when connecting to networks with user configured subnets" >&2; exit 1;;
  "docker exec "*" cat /sys/class/net/eth0/iflink") echo 23;;
  "docker inspect --format {{.Config.Image}}"*) echo "kindest/node:v1.31.9";;
  "docker run --rm"*"--network host"*"-o link show") printf '1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536\n23: veth5e1f2a0@if22: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 master br-4f1c\n';;
  "kubectl version --client -o json") if [ -n "$STANDIN_KUBECTL_VERSION" ]; then echo "$STANDIN_KUBECTL_VERSION"; else echo '{"clientVersion": {"major": "1", "minor": "31"}}'; fi;;
  "kind get clusters") if [ -n "$STANDIN_CLUSTERS" ]; then echo "$STANDIN_CLUSTERS"; else echo "No kind clusters found." >&2; fi;;
  "docker network inspect"*) echo "172.18.0.0/16 fc00:f853:ccd:e793::/64";;
  "docker run -d"*) echo "c0ffee$(date +%N)";;
  "docker logs"*) echo "Server listening on 5201 (test #1)";;
  "kind create cluster"*|"kind export kubeconfig"*) for a in "$@"; do if [ "$prev" = "--kubeconfig" ]; then echo "apiVersion: v1" > "$a"; fi; prev="$a"; done;;
esac
exit 0
"#;

impl StandIns {
    fn install() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for tool in ["kind", "kubectl", "helm", "docker"] {
            let path = dir.path().join(tool);
            std::fs::write(&path, STANDIN).unwrap();
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        }
        let original_path = std::env::var("PATH").unwrap();
        // SAFETY: PATH_LOCK serializes every test that touches the environment.
        unsafe {
            std::env::set_var("PATH", format!("{}:{original_path}", dir.path().display()));
            std::env::set_var("STANDIN_DIR", dir.path());
            for name in ["STANDIN_FAIL", "STANDIN_HANG", "STANDIN_CLUSTERS", "STANDIN_STDERR", "STANDIN_KUBECTL_VERSION"] {
                std::env::remove_var(name);
            }
        }
        Self { dir, original_path }
    }

    fn set(&self, name: &str, value: &str) {
        // SAFETY: as above.
        unsafe { std::env::set_var(name, value) };
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| {
                // Paths differ per run; keep the words a reader compares.
                l.split(' ')
                    .map(
                        |w| {
                            if w.starts_with('/') {
                                Path::new(w).file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default()
                            } else {
                                w.to_owned()
                            }
                        },
                    )
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }
}

impl Drop for StandIns {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe { std::env::set_var("PATH", &self.original_path) };
    }
}

fn options() -> KindOptions {
    KindOptions { keep: false, require_tools: true, shared_run: None, ..KindOptions::from_env() }
}

fn words(calls: &[String]) -> Vec<String> {
    calls.iter().map(|c| c.split(' ').take(3).collect::<Vec<_>>().join(" ")).collect()
}

fn cluster_of(calls: &[String]) -> String {
    let create = calls.iter().find(|c| c.starts_with("kind create cluster")).expect("a create call");
    create.split(' ').nth(4).unwrap().to_owned()
}

#[test]
fn antrea_cluster_is_created_installed_awaited_loaded_and_deleted() {
    let _lock = PATH_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let standins = StandIns::install();
    let cluster = KindCluster::create(&cni::antrea(), &options(), Addons::default()).unwrap();
    assert!(cluster.files.kubeconfig.exists(), "the kubeconfig is private to the run, at {}", cluster.files.kubeconfig.display());
    let state: PathBuf = runs::state_dir(&cluster.name);
    cluster.delete().unwrap();
    let calls = standins.calls();
    assert_eq!(
        words(&calls),
        [
            "kind create cluster",
            "kubectl --kubeconfig kubeconfig",
            "kubectl --kubeconfig kubeconfig",
            "kubectl --kubeconfig kubeconfig",
            "kind load docker-image",
            "kind delete cluster"
        ],
        "{calls:#?}"
    );
    assert!(calls[1].ends_with("apply --server-side -f https://github.com/antrea-io/antrea/releases/download/v2.2.0/antrea.yml"), "{}", calls[1]);
    assert!(calls[2].contains("rollout status daemonset/antrea-agent"), "{}", calls[2]);
    assert!(calls[5].contains(&format!("--name {}", cluster_of(&calls))), "the run's own cluster is deleted");
    assert!(!state.exists(), "the run's state directory is removed");
}

#[test]
fn a_failed_install_deletes_the_cluster_and_carries_the_tools_stderr() {
    let _lock = PATH_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let standins = StandIns::install();
    standins.set("STANDIN_FAIL", "helm --kubeconfig");
    standins.set("STANDIN_STDERR", "Error: INSTALLATION FAILED: chart not found");
    let error = KindCluster::create(&cni::cilium(), &options(), Addons::default()).unwrap_err().to_string();
    assert!(error.contains("installing cilium 1.16.6") && error.contains("INSTALLATION FAILED: chart not found"), "{error}");
    let calls = standins.calls();
    assert_eq!(words(&calls), ["kind create cluster", "helm --kubeconfig kubeconfig", "kind delete cluster"], "{calls:#?}");
    assert!(!runs::state_dir(&cluster_of(&calls)).exists());
}

#[test]
fn a_hanging_step_times_out_and_the_cluster_is_deleted() {
    let _lock = PATH_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let standins = StandIns::install();
    standins.set("STANDIN_HANG", "rollout status");
    let timeouts = KindTimeouts { cni_ready: Duration::ZERO, ..KindTimeouts::default() };
    let started = std::time::Instant::now();
    let error = KindCluster::create(&cni::antrea(), &KindOptions { timeouts, ..options() }, Addons::default()).unwrap_err().to_string();
    assert!(error.contains("timed out") && error.contains("waiting for DaemonSet kube-system/antrea-agent"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(10), "the hanging stand-in was stopped, not waited for");
    assert!(standins.calls().last().unwrap().starts_with("kind delete cluster"), "{:#?}", standins.calls());
}

#[test]
fn a_kept_cluster_is_reused_and_not_deleted() {
    let _lock = PATH_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let standins = StandIns::install();
    let kept = kept_name(&cni::antrea(), Addons::default());
    standins.set("STANDIN_CLUSTERS", &kept);
    let cluster = KindCluster::create(&cni::antrea(), &KindOptions { keep: true, ..options() }, Addons::default()).unwrap();
    cluster.delete().unwrap();
    let calls = standins.calls();
    assert_eq!(
        words(&calls),
        ["kind get clusters", "kind export kubeconfig", "kubectl --kubeconfig kubeconfig", "kubectl --kubeconfig kubeconfig", "kind load docker-image"],
        "{calls:#?}"
    );
    runs::release(&kept);
}

fn kept_name(cni: &cni::CniProfile, addons: Addons) -> String {
    let config = harness::provider::kind::render_kind_config(&options().kind_config, cni).unwrap();
    harness::provider::kind::cluster_name(cni, true, None, addons, &config)
}

#[test]
fn a_cluster_kept_by_an_egress_run_is_not_reused_by_a_canary_run() {
    let _lock = PATH_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let standins = StandIns::install();
    let canary = Addons { gateway_api: true, load_balancer: true, tsn_proxy: false, performance_tools: false };
    standins.set("STANDIN_CLUSTERS", &kept_name(&cni::antrea(), Addons::default()));
    let cluster = KindCluster::create(&cni::antrea(), &KindOptions { keep: true, ..options() }, canary).unwrap();
    let calls = standins.calls();
    assert!(
        calls.iter().any(|c| c.starts_with(&format!("kind create cluster --name {}", kept_name(&cni::antrea(), canary)))),
        "a cluster with Gateway API is built: {calls:#?}"
    );
    assert!(calls.iter().any(|c| c.contains("standard-install.yaml")) && calls.iter().any(|c| c.contains("metallb-native.yaml")), "{calls:#?}");
    runs::release(&cluster.name);
}

#[test]
fn a_kept_cluster_is_left_as_it_was_found() {
    use harness::provider::kubernetes::Environment;
    let _lock = PATH_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let standins = StandIns::install();
    let kept = kept_name(&cni::cilium(), Addons::default());
    standins.set("STANDIN_CLUSTERS", &kept);
    let cluster = KindCluster::create(&cni::cilium(), &KindOptions { keep: true, ..options() }, Addons::default()).unwrap();
    let environment = harness::provider::kind::KindEnvironment::without_echo(cluster, vec![], &KindTimeouts::default());
    let node = |name: &str, address: &str| harness::model::Node {
        name: name.into(),
        role: harness::model::NodeRole::Worker,
        labels: Default::default(),
        address: address.parse().unwrap(),
    };
    let (gateway, failing) = (node("cniconf-w2", "172.18.0.4"), node("cniconf-w1", "172.18.0.3"));
    environment.place_egress_ip(&gateway, "172.18.0.200".parse().unwrap()).unwrap();
    environment.fail_node(&failing).unwrap();
    let before_teardown = standins.calls().len();
    environment.teardown().unwrap();
    let calls = standins.calls();
    let uplink = |state: &str| {
        format!("docker run --rm --label cni-conformance.cluster={kept} --network host --cap-add NET_ADMIN --entrypoint ip kindest/node:v1.31.9 link set dev veth5e1f2a0 {state}")
    };
    assert!(calls.contains(&uplink("down")), "a real failure, not a graceful stop: the node's uplink cut on the host: {calls:#?}");
    assert!(calls.iter().any(|c| c == "docker exec cniconf-w2 ip addr replace 172.18.0.200/32 dev eth0"), "placing is idempotent: {calls:#?}");
    let teardown = &calls[before_teardown..];
    assert!(teardown.contains(&uplink("up")), "the failed node is back, untouched inside: {teardown:#?}");
    assert!(teardown.contains(&"docker exec cniconf-w2 ip addr del 172.18.0.200/32 dev eth0".to_owned()), "the run's egress IP is gone: {teardown:#?}");
    assert!(!teardown.iter().any(|c| c.starts_with("kind delete")), "kept: {teardown:#?}");
    runs::release(&kept);
}

#[test]
fn a_missing_tool_is_named_with_how_to_get_it() {
    let _lock = PATH_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let standins = StandIns::install();
    std::fs::remove_file(standins.dir.path().join("helm")).unwrap();
    // SAFETY: PATH_LOCK is held.
    unsafe { std::env::set_var("PATH", standins.dir.path()) };
    let error = KindCluster::create(&cni::cilium(), &options(), Addons::default()).unwrap_err().to_string();
    assert!(error.contains("required tool `helm` was not found on PATH (installing the CNI's chart)"), "{error}");
    assert!(standins.calls().is_empty(), "nothing ran");
}

#[test]
fn the_processes_of_one_nextest_run_share_one_cluster_deleted_when_the_runner_ends() {
    let _lock = PATH_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let standins = StandIns::install();
    // The runner: a process that ends a little later, as nextest does after its last test.
    let mut runner = std::process::Command::new("sleep").arg("2").spawn().unwrap();
    let run = harness::provider::runs::MultiProcessRun { id: "3f1c2d4e-run".into(), runner: runner.id() };
    let shared = KindOptions { shared_run: Some(run), ..options() };
    let first = KindCluster::create(&cni::antrea(), &shared, Addons::default()).unwrap();
    standins.set("STANDIN_CLUSTERS", &first.name);
    let second = KindCluster::create(&cni::antrea(), &shared, Addons::default()).unwrap();
    assert_eq!(first.name, second.name);
    assert!(first.name.starts_with("cniconf-nx-antrea-"), "{}", first.name);
    first.delete().unwrap();
    second.delete().unwrap();
    let calls = standins.calls();
    assert_eq!(calls.iter().filter(|c| c.starts_with("kind create cluster")).count(), 1, "one cluster for the run: {calls:#?}");
    assert!(calls.iter().any(|c| c.starts_with("kind export kubeconfig")), "the second process joins it: {calls:#?}");
    assert!(!calls.iter().any(|c| c.starts_with("kind delete")), "no process deletes it while the run goes on: {calls:#?}");
    runner.wait().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !standins.calls().iter().any(|c| c == &format!("kind delete cluster --name {}", first.name)) {
        assert!(std::time::Instant::now() < deadline, "the reaper deletes the cluster once the runner has ended: {:#?}", standins.calls());
        std::thread::sleep(Duration::from_millis(200));
    }
    let cleaned = std::time::Instant::now() + Duration::from_secs(5);
    while runs::state_dir(&first.name).exists() {
        assert!(std::time::Instant::now() < cleaned, "its state directory goes too");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_tsn_run_chains_the_proxy_after_flannel_is_ready_and_a_bad_entry_stops_it_before_kind() {
    let _lock = PATH_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let standins = StandIns::install();
    let flannel = cni::load_profile("flannel").unwrap();
    let tsn = Addons::for_features(&[cni::Feature::TsnPriorityMap]);
    let cluster = KindCluster::create(&flannel, &options(), tsn).unwrap();
    let daemonset = std::fs::read_to_string(&cluster.files.tsn_proxy).unwrap();
    cluster.delete().unwrap();
    let calls = standins.calls();
    let position = |needle: &str| calls.iter().position(|c| c.contains(needle)).unwrap_or_else(|| panic!("no call with {needle}: {calls:#?}"));
    assert!(position("rollout status daemonset/kube-flannel-ds") < position("kind load docker-image tsn-metadata-proxy"), "{calls:#?}");
    assert!(position("= bpf_fs ] || mount -t bpf bpf") < position("tsn-metadata-proxy.yaml"), "{calls:#?}");
    assert!(position("tsn-metadata-proxy.yaml") < position("rollout status daemonset/tsn-metadata-proxy"), "{calls:#?}");
    assert_eq!(calls.iter().filter(|c| c.contains("mount -t bpf")).count(), 3, "every node gets a bpffs: {calls:#?}");
    assert!(daemonset.contains("kind: DaemonSet") && daemonset.contains("tsn-metadata-proxy:"), "{daemonset}");

    // SAFETY: PATH_LOCK serializes every test that touches the environment.
    unsafe { std::env::set_var("CNICONF_TSN_PROXY_ENTRY", "{\"nic\": \"eth0\"}") };
    let error = KindCluster::create(&flannel, &options(), tsn).map(drop).unwrap_err().to_string();
    unsafe { std::env::remove_var("CNICONF_TSN_PROXY_ENTRY") };
    assert!(error.contains("CNICONF_TSN_PROXY_ENTRY") && error.contains("`type`"), "{error}");
}

#[test]
fn a_node_talker_on_kind_runs_the_static_probe_copied_onto_the_node_once() {
    use harness::provider::kubernetes::Environment;
    let _lock = PATH_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let standins = StandIns::install();
    let cluster = KindCluster::create(&cni::antrea(), &options(), Addons::default()).unwrap();
    let probe = standins.dir.path().join("static-cni-probe");
    std::fs::write(&probe, "a static build").unwrap();
    let environment = harness::provider::kind::KindEnvironment::without_echo(cluster, vec![], &KindTimeouts::default()).with_static_probe(probe.clone());
    let node = harness::model::Node {
        name: "cniconf-w1".into(),
        role: harness::model::NodeRole::Worker,
        labels: Default::default(),
        address: "172.18.0.3".parse().unwrap(),
    };
    for _ in 0..2 {
        environment.run_on_node(&node, harness::scenarios::tsn::PROBE, &["talk", "172.18.0.9:8080", "--priority", "1"]).unwrap();
    }
    let raw = std::fs::read_to_string(standins.dir.path().join("calls.log")).unwrap();
    let copies: Vec<&str> = raw.lines().filter(|l| l.starts_with("docker cp") || l.starts_with("docker exec -i")).collect();
    let streamed =
        "docker exec -i cniconf-w1 sh -c mkdir -p /opt/cni-conformance && cat > \"$1\" && chmod 0755 \"$1\" sh /opt/cni-conformance/static-cni-probe";
    assert_eq!(copies, [streamed], "streamed once onto the node's own filesystem, made executable: {raw}");
    assert_eq!(std::fs::read_to_string(standins.dir.path().join("received")).unwrap(), "a static build", "the probe's bytes arrive on stdin");
    assert_eq!(
        raw.lines().filter(|l| *l == "docker exec cniconf-w1 /opt/cni-conformance/static-cni-probe talk 172.18.0.9:8080 --priority 1").count(),
        2,
        "{raw}"
    );
    let missing = harness::provider::kind::KindEnvironment::without_echo(
        KindCluster::create(&cni::antrea(), &options(), Addons::default()).unwrap(),
        vec![],
        &KindTimeouts::default(),
    )
    .with_static_probe(standins.dir.path().join("not-built"));
    let error = missing.run_on_node(&node, harness::scenarios::tsn::PROBE, &["talk"]).unwrap_err().to_string();
    assert!(error.contains("static probe for node talkers") && error.contains("not-built") && error.contains("`cargo xtask image` builds it"), "{error}");
    environment.teardown().unwrap();
    missing.teardown().unwrap();
}

#[test]
fn with_performance_tools_kind_loads_the_iperf3_image_and_runs_iperf3_beside_nodes() {
    use harness::provider::kubernetes::Environment;
    let _lock = PATH_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let standins = StandIns::install();
    let tools = Addons { performance_tools: true, ..Addons::default() };
    let cluster = KindCluster::create(&cni::antrea(), &options(), tools).unwrap();
    let name = cluster.name.clone();
    let environment = harness::provider::kind::KindEnvironment::without_echo(cluster, vec![], &KindTimeouts::default());
    assert_eq!(environment.iperf3_image().as_deref(), Some(harness::provider::kind::IPERF3_IMAGE));
    let node = harness::model::Node {
        name: "cniconf-w2".into(),
        role: harness::model::NodeRole::Worker,
        labels: Default::default(),
        address: "172.18.0.4".parse().unwrap(),
    };
    for _ in 0..2 {
        let started = environment.run_on_node(&node, "iperf3", &["-s", "-D", "-p", "5201"]).unwrap();
        assert_eq!(started.exit, "exit status 0");
    }
    environment.run_on_node(&node, "iperf3", &["-c", "172.18.0.3", "-p", "5201", "-n", "67108864", "-J"]).unwrap();
    let error = environment.run_outside("iperf3", &["-s", "-D"]).unwrap_err().to_string();
    assert!(error.contains("provisioned without performance tools"), "no echo here, so no iperf3 beside it: {error}");
    environment.teardown().unwrap();
    let calls = standins.calls();
    let image = harness::provider::kind::IPERF3_IMAGE;
    assert!(calls.contains(&format!("kind load docker-image {image} --name {name}")), "{calls:#?}");
    let label = format!("--label cni-conformance.cluster={name}");
    let servers: Vec<&String> = calls.iter().filter(|c| c.starts_with("docker run -d")).collect();
    assert_eq!(
        servers,
        [&format!("docker run -d {label} --network container:cniconf-w2 {image} -s -p 5201 --forceflush")],
        "one server per node, in its network namespace: {calls:#?}"
    );
    assert!(
        calls.contains(&format!("docker run --rm {label} --network container:cniconf-w2 {image} -c 172.18.0.3 -p 5201 -n 67108864 -J")),
        "a client in a container of its own: {calls:#?}"
    );
    assert!(calls.iter().any(|c| c.starts_with("docker rm --force c0ffee")), "the server goes at teardown: {calls:#?}");
}

/// `docker` for the real-kernel fault test: `docker exec <node> ...` runs in $NODE_NS,
/// `docker run ... --network host ... --entrypoint ip <image> ...` runs `ip` in $HOST_NS,
/// `docker inspect` names the node image. Every call is logged as the other stand-ins do.
const NAMESPACE_DOCKER: &str = r#"#!/bin/sh
echo "docker $*" >> "$STANDIN_DIR/calls.log"
case "$1" in
  exec) shift 2; exec ip netns exec "$NODE_NS" "$@";;
  inspect) echo "kindest/node:v1.31.9";;
  run) while [ "$1" != "--entrypoint" ]; do shift; done; shift 3; exec ip netns exec "$HOST_NS" ip "$@";;
esac
exit 0
"#;

/// Two throwaway namespaces wired as Docker wires a kind node: a bridge on the "host", the
/// node's eth0 a veth whose peer is on the bridge. Removed however the test ends; claimed as
/// a lab cluster's, so `cargo xtask gc` removes them after a killed run.
struct KindLikeNode {
    cluster: String,
    host: String,
    node: String,
}

impl KindLikeNode {
    fn build() -> Self {
        let cluster = runs::new_cluster_name();
        runs::claim(&cluster, "lab").unwrap();
        let wired = Self { host: format!("{cluster}-host"), node: format!("{cluster}-node"), cluster };
        let script = format!(
            "set -e
             ip netns add {host}; ip netns add {node}
             ip -n {host} link add br0 type bridge; ip -n {host} link set br0 up
             ip -n {host} addr add 172.31.0.1/24 dev br0
             ip -n {host} link add vethnode type veth peer name eth0 netns {node}
             ip -n {host} link set vethnode master br0 up
             ip -n {node} link set lo up; ip -n {node} link set eth0 up
             ip -n {node} addr add 172.31.0.3/24 dev eth0
             ip -n {node} addr add fd00:31::3/64 dev eth0 nodad
             ip -n {node} addr add 172.31.0.200/32 dev eth0
             ip -n {node} route add default via 172.31.0.1
             ip -n {node} route add 10.244.2.0/24 via 172.31.0.4 dev eth0 proto static",
            host = wired.host,
            node = wired.node
        );
        let status = std::process::Command::new("sh").args(["-c", &script]).status().unwrap();
        assert!(status.success(), "wiring the kind-like node");
        wired
    }

    /// What the node itself sees of its network; waits out IPv6 duplicate address detection.
    fn inside(&self) -> String {
        let script = "ip -d addr show; ip route show table all; ip -6 route show table all; ip rule; ip -6 rule";
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let out = std::process::Command::new("ip").args(["netns", "exec", &self.node, "sh", "-c", script]).output().unwrap();
            let seen = String::from_utf8_lossy(&out.stdout).into_owned();
            if !seen.contains("tentative") || std::time::Instant::now() > deadline {
                return seen;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether the node reaches the host's bridge: a refused TCP connection is an answer; a
    /// cut link gives none within two seconds.
    fn reaches_the_host(&self) -> bool {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &self.node, "timeout", "2", "bash", "-c", "exec 3<>/dev/tcp/172.31.0.1/9"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stderr).contains("Connection refused")
    }

    fn reaches_the_host_within(&self, budget: Duration) -> bool {
        let deadline = std::time::Instant::now() + budget;
        while !self.reaches_the_host() {
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        true
    }
}

impl Drop for KindLikeNode {
    fn drop(&mut self) {
        for ns in [&self.host, &self.node] {
            let _ = std::process::Command::new("ip").args(["netns", "del", ns]).status();
        }
        runs::release(&self.cluster);
    }
}

/// The kind provider's node fault run for real: the same `docker` calls, answered by the
/// kernel through two namespaces wired as Docker wires a kind node. The cut must stop the
/// node's traffic while leaving everything inside the node in place, and the undo must
/// give back exactly the node it found (addresses, the egress IP, routes of every table).
#[test]
fn a_failed_kind_node_is_cut_off_for_real_and_restored_exactly() {
    use harness::provider::kubernetes::Environment;
    if harness::provider::host::effective_uid() != 0 {
        eprintln!("skipped: needs root to make network namespaces");
        return;
    }
    let _lock = PATH_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let standins = StandIns::install();
    let wired = KindLikeNode::build();
    std::fs::write(standins.dir.path().join("docker"), NAMESPACE_DOCKER).unwrap();
    standins.set("NODE_NS", &wired.node);
    standins.set("HOST_NS", &wired.host);
    let kept = kept_name(&cni::antrea(), Addons::default());
    standins.set("STANDIN_CLUSTERS", &kept);
    let cluster = KindCluster::create(&cni::antrea(), &KindOptions { keep: true, ..options() }, Addons::default()).unwrap();
    let environment = harness::provider::kind::KindEnvironment::without_echo(cluster, vec![], &KindTimeouts::default());
    let node = harness::model::Node {
        name: "cniconf-w1".into(),
        role: harness::model::NodeRole::Worker,
        labels: Default::default(),
        address: "172.31.0.3".parse().unwrap(),
    };

    let before = wired.inside();
    assert!(wired.reaches_the_host(), "wired right: the node reaches the host before the fault");
    environment.fail_node(&node).unwrap();
    assert!(!wired.reaches_the_host(), "the cut node's traffic goes nowhere");
    let during = wired.inside();
    assert!(during.contains("172.31.0.200/32") && during.contains("10.244.2.0/24 via 172.31.0.4"), "nothing inside the node is removed by the cut: {during}");
    environment.restore_node(&node).unwrap();
    assert!(
        wired.reaches_the_host_within(Duration::from_secs(5)),
        "restored: the node reaches the host again within 5 s (its neighbour entry for the gateway failed while cut)"
    );
    assert_eq!(wired.inside(), before, "the node is exactly as it was");

    environment.fail_node(&node).unwrap();
    environment.teardown().unwrap();
    assert_eq!(wired.inside(), before, "a kept cluster's failed node is restored at teardown");
    runs::release(&kept);
}

/// The processes of one nextest run share its kind cluster, each with its own environment:
/// their egress IPs must differ (Antrea 2.2 refuses an ExternalIPPool overlapping another,
/// antrea `pkg/controller/externalippool/validate.go`), and an IP comes back to the pool
/// only when the process that held it gives it back at teardown.
#[test]
fn processes_on_one_kind_cluster_never_share_an_egress_ip() {
    use harness::provider::kubernetes::Environment;
    let _lock = PATH_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let standins = StandIns::install();
    let kept = kept_name(&cni::antrea(), Addons::default());
    standins.set("STANDIN_CLUSTERS", &kept);
    let pool: Vec<std::net::IpAddr> = ["172.18.0.200", "172.18.0.201", "172.18.0.202"].iter().map(|ip| ip.parse().unwrap()).collect();
    let environment = || {
        let cluster = KindCluster::create(&cni::antrea(), &KindOptions { keep: true, ..options() }, Addons::default()).unwrap();
        harness::provider::kind::KindEnvironment::without_echo(cluster, pool.clone(), &KindTimeouts::default())
    };
    let (first, second) = (environment(), environment());
    // A third process of the run holds .201 (as its line in the cluster's state says).
    std::fs::write(runs::state_dir(&kept).join("egress-ips.taken"), "172.18.0.201 4194301\n").unwrap();
    let a = first.allocate_egress_ip().unwrap();
    let b = second.allocate_egress_ip().unwrap();
    assert_eq!((a.to_string().as_str(), b.to_string().as_str()), ("172.18.0.200", "172.18.0.202"), "each process its own IP, none another holds");
    let error = first.allocate_egress_ip().unwrap_err().to_string();
    assert!(error.contains("free egress IP") && error.contains("held by a process"), "{error}");
    // Teardown gives back this process's IPs (both environments here are one process).
    first.teardown().unwrap();
    let third = environment();
    assert_eq!(third.allocate_egress_ip().unwrap().to_string(), "172.18.0.200", "given back at teardown");
    assert!(
        std::fs::read_to_string(runs::state_dir(&kept).join("egress-ips.taken")).unwrap().contains("172.18.0.201 4194301"),
        "another process's IP stays taken"
    );
    runs::release(&kept);
}

/// The Calico plan awaits what its operator makes with `kubectl wait --for=create`, which
/// kubectl 1.31 added (kubernetes/kubernetes#125868): an older kubectl is named before any
/// cluster exists, a vendor's `1.31+` is read as 1.31, and other CNIs do not ask.
#[test]
fn the_calico_plan_needs_kubectl_1_31_and_says_so_before_creating_anything() {
    let _lock = PATH_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let standins = StandIns::install();
    let calico = cni::load_profile("calico").unwrap();
    standins.set("STANDIN_KUBECTL_VERSION", r#"{"clientVersion": {"major": "1", "minor": "30", "gitVersion": "v1.30.4"}}"#);
    let error = KindCluster::create(&calico, &options(), Addons::default()).map(drop).unwrap_err().to_string();
    assert!(
        error.contains("`kubectl` 1.30 is too old, 1.31 or later is needed") && error.contains("kubectl wait --for=create") && error.contains("calico-node"),
        "{error}"
    );
    assert!(!standins.calls().iter().any(|c| c.starts_with("kind create")), "nothing was created: {:#?}", standins.calls());
    let asked = |calls: Vec<String>| calls.iter().filter(|c| c.starts_with("kubectl version")).count();
    let before = asked(standins.calls());
    KindCluster::create(&cni::antrea(), &options(), Addons::default()).unwrap().delete().unwrap();
    assert_eq!(asked(standins.calls()), before, "only a plan that needs it asks");
    standins.set("STANDIN_KUBECTL_VERSION", r#"{"clientVersion": {"major": "1", "minor": "31+"}}"#);
    KindCluster::create(&calico, &options(), Addons::default()).unwrap().delete().unwrap();
}

/// An in-place upgrade on kind runs exactly the upgrade plan's commands against the
/// cluster's own kubeconfig, in order, and touches nothing else (no node, no image, no
/// cluster); a step that fails stops it, names the step and carries the tool's stderr.
#[test]
fn an_upgrade_on_kind_runs_the_plan_in_order_and_a_failed_step_stops_it_naming_the_step() {
    use harness::provider::kubernetes::Environment;
    let _lock = PATH_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let standins = StandIns::install();
    let (old, new) = (cni::load_profile("cilium-1.15").unwrap(), cni::cilium());
    let cluster = KindCluster::create(&old, &options(), Addons::default()).unwrap();
    let name = cluster.name.clone();
    let environment = harness::provider::kind::KindEnvironment::without_echo(cluster, vec![], &KindTimeouts::default());
    let before = standins.calls().len();
    environment.replace_cni(&old, &old, &new).unwrap();
    let upgrade: Vec<String> = standins.calls()[before..].to_vec();
    assert_eq!(
        words(&upgrade),
        [
            "helm --kubeconfig kubeconfig",
            "kubectl --kubeconfig kubeconfig",
            "kubectl --kubeconfig kubeconfig",
            "helm --kubeconfig kubeconfig",
            "helm --kubeconfig kubeconfig",
            "kubectl --kubeconfig kubeconfig",
            "kubectl --kubeconfig kubeconfig"
        ],
        // The pre-flight DaemonSet and Deployment; then the agents and the operator: no `cilium-envoy`, which the 1.16 chart does not
        // render with `upgradeCompatibility=1.15` (`envoyDaemonSetEnabled`, v1.16.6).
        "{upgrade:#?}"
    );
    assert!(
        upgrade[0].contains("install cilium-preflight cilium --repo https://helm.cilium.io/ --version 1.16.6")
            && upgrade[2].contains("rollout status deployment/cilium-pre-flight-check")
            && upgrade[3].contains("uninstall cilium-preflight"),
        "{upgrade:#?}"
    );
    assert!(
        upgrade[4].contains(&"upgrade cilium cilium --repo https://helm.cilium.io/ --version 1.16.6 --namespace kube-system".to_string())
            && upgrade[4].contains(&format!("k8sServiceHost={name}-control-plane")),
        "{upgrade:#?}"
    );
    assert!(
        upgrade[5].contains("rollout status daemonset/cilium ")
            && upgrade[6].contains("rollout status deployment/cilium-operator")
            && !upgrade.iter().any(|c| c.contains("cilium-envoy")),
        "{upgrade:#?}"
    );
    // The rollback: the old release's values again, the initial version's compatibility kept.
    let before = standins.calls().len();
    standins.set("STANDIN_FAIL", "rollout status daemonset/cilium-pre-flight-check");
    standins.set("STANDIN_STDERR", "error: timed out waiting for the condition");
    let error = environment.replace_cni(&old, &new, &old).unwrap_err().to_string();
    assert!(error.contains("daemonset/cilium-pre-flight-check") && error.contains("timed out waiting for the condition"), "{error}");
    let stopped = &standins.calls()[before..];
    assert!(!stopped.iter().any(|c| c.contains(" upgrade cilium ")), "nothing is upgraded after a failed pre-flight check: {stopped:#?}");
    standins.set("STANDIN_FAIL", "");
    environment.teardown().unwrap();
}

/// The pre-flight check runs before a scenario starts holding connections, not inside the
/// held window (a Cilium pre-flight pulls images and waits for a DaemonSet: minutes the
/// holds would otherwise have to span): prepared, the replacement that follows runs only
/// the switch; a replacement to another profile than the prepared one runs its own.
#[test]
fn a_prepared_upgrade_runs_its_pre_flight_check_first_and_the_switch_alone_after() {
    use harness::provider::kubernetes::Environment;
    let _lock = PATH_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let standins = StandIns::install();
    let (old, new) = (cni::load_profile("cilium-1.15").unwrap(), cni::cilium());
    let cluster = KindCluster::create(&old, &options(), Addons::default()).unwrap();
    let environment = harness::provider::kind::KindEnvironment::without_echo(cluster, vec![], &KindTimeouts::default());
    let before = standins.calls().len();
    environment.prepare_cni_replacement(&old, &old, &new).unwrap();
    let prepared: Vec<String> = standins.calls()[before..].to_vec();
    assert!(
        prepared.len() == 4 && prepared[0].contains("install cilium-preflight") && prepared[3].contains("uninstall cilium-preflight"),
        "the pre-flight check alone: {prepared:#?}"
    );
    let before = standins.calls().len();
    environment.replace_cni(&old, &old, &new).unwrap();
    let switched: Vec<String> = standins.calls()[before..].to_vec();
    assert!(
        switched.len() == 3 && switched[0].contains(" upgrade cilium ") && !switched.iter().any(|c| c.contains("preflight") || c.contains("pre-flight")),
        "the switch alone: {switched:#?}"
    );
    // Prepared once: the next replacement (the rollback, to the old profile) does its own.
    let before = standins.calls().len();
    environment.replace_cni(&old, &new, &old).unwrap();
    assert!(standins.calls()[before].contains("install cilium-preflight"), "{:#?}", &standins.calls()[before..]);
    environment.teardown().unwrap();
}

/// A failed trial's bundle on kind describes its pods with kubectl, against the run's own
/// kubeconfig; a kubectl that fails is an error for the bundle to write down.
#[test]
fn a_bundle_on_kind_describes_the_trial_s_pods_with_the_run_s_kubeconfig() {
    use harness::provider::kubernetes::Environment;
    let _lock = PATH_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let standins = StandIns::install();
    let cluster = KindCluster::create(&cni::antrea(), &options(), Addons::default()).unwrap();
    let environment = harness::provider::kind::KindEnvironment::without_echo(cluster, vec![], &KindTimeouts::default());
    let before = standins.calls().len();
    environment.describe_pods("prod-t3-0a1b2c").expect("kind runs kubectl").unwrap();
    assert_eq!(standins.calls()[before..], ["kubectl --kubeconfig kubeconfig describe pods --namespace prod-t3-0a1b2c".to_owned()]);
    standins.set("STANDIN_FAIL", "describe pods");
    standins.set("STANDIN_STDERR", "error: You must be logged in to the server (Unauthorized)");
    let error = environment.describe_pods("prod-t3-0a1b2c").unwrap().unwrap_err().to_string();
    assert!(error.contains("Unauthorized"), "{error}");
    standins.set("STANDIN_FAIL", "");
    environment.teardown().unwrap();
}

/// Every kind suite (`<family>_<cni>` for a CNI installed on kind) runs in the workflow's
/// kind matrix, and every matrix entry names a suite that exists.
#[test]
fn the_workflow_runs_every_kind_suite() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let workflow: serde_json::Value = serde_saphyr::from_str(&std::fs::read_to_string(root.join(".github/workflows/conformance.yml")).unwrap()).unwrap();
    let matrix = &workflow["jobs"]["kind"]["strategy"]["matrix"];
    let names = |key: &str| matrix[key].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect::<Vec<_>>();
    let mut run: std::collections::BTreeSet<String> = names("family").iter().flat_map(|f| names("cni").into_iter().map(move |c| format!("{f}_{c}"))).collect();
    run.extend(matrix["include"].as_array().into_iter().flatten().map(|e| format!("{}_{}", e["family"].as_str().unwrap(), e["cni"].as_str().unwrap())));
    let on_kind: Vec<String> =
        cni::known_profiles().into_iter().filter(|name| !matches!(cni::load_profile(name).unwrap().installation, cni::Installation::Lab { .. })).collect();
    let suites: std::collections::BTreeSet<String> = std::fs::read_dir(root.join("suites"))
        .unwrap()
        .filter_map(|e| e.ok()?.path().file_stem()?.to_str().map(str::to_owned))
        .filter(|stem| stem.rsplit_once('_').is_some_and(|(_, cni)| on_kind.iter().any(|k| k == cni)))
        .collect();
    assert_eq!(run, suites, "the kind matrix runs exactly the kind suites");
}
