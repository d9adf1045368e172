//! The lab provider: a kind-shaped cluster made of network namespaces on this kernel.
//!
//! An underlay bridge stands for kind's Docker network; each node and the external host
//! is a namespace on it. Pods are namespaces wired by the real reference CNI plugins,
//! which the lab runs as each node's container runtime would. Node agents masquerade pod
//! traffic leaving the cluster, as kindnet does; the reference egress gateway realizes
//! egress policies. Each node has its own BPF filesystem, mounted under the run's state
//! directory, which plugins see at `/sys/fs/bpf`. Nothing else is created in the host's
//! own namespaces.

mod addressing;
mod egress;
pub mod faults;
mod gateway;
pub mod gc;
pub mod node_state;
pub(crate) mod shell;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cni_probe::{LoadReport, Observation};
use ipnet::Ipv4Net;

use self::egress::{EgressGateway, GatewayNode, HealthMonitor};
pub use self::faults::LabFault;
use super::{host, runs, Cluster, ClusterInfo};
use crate::cleanup;
use crate::cni::runtime::{Attachment, CniRuntime, NetworkConfigList, NodeView};
use crate::cni::{CniProfile, Feature, Installation};
use crate::error::{HarnessError, Result};
use crate::fixtures::{self, KindClusterConfig};
use crate::model::{EgressPolicy, EgressStatus, HttpRoute, Labels, NamespaceSpec, Node, NodeRole, Pod, PodSpec};
use crate::provider::components;

/// How to build a lab: its shape and the faults to inject.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// The kind cluster config the lab copies (nodes, roles, labels, pod subnet).
    pub kind_config: PathBuf,
    pub faults: Vec<LabFault>,
}

impl Default for LabOptions {
    fn default() -> Self {
        Self { kind_config: fixtures::fixture_path("cluster/kind.yaml"), faults: Vec::new() }
    }
}

impl LabOptions {
    /// Defaults, with faults from `CNICONF_LAB_FAULTS` and the config from `CNICONF_KIND_CONFIG`.
    pub fn from_env() -> Result<Self> {
        let mut options = Self::default();
        if let Some(path) = std::env::var_os("CNICONF_KIND_CONFIG") {
            options.kind_config = path.into();
        }
        if let Ok(list) = std::env::var(faults::FAULTS_VARIABLE) {
            options.faults = LabFault::parse_list(&list)?;
        }
        Ok(options)
    }

    pub fn with_fault(fault: LabFault) -> Self {
        Self { faults: vec![fault], ..Self::default() }
    }
}

/// Why the lab cannot host `cni` at all: it runs only the reference plugins itself.
pub fn unavailable(cni: &CniProfile) -> Option<String> {
    match &cni.installation {
        Installation::Lab { plugin_dirs, .. } if plugin_dirs.iter().any(|d| d.as_os_str() == crate::cni::DEBIAN_UNSTABLE_PLUGINS) => crate::host::unstable_plugins().err(),
        Installation::Lab { .. } => None,
        _ => Some(format!("the lab runs CNIs given as a conflist and plugin binaries (install.lab in a profile); {} is installed on a cluster and needs the kind or existing provider", cni.name)),
    }
}

/// The lab's budgets: its egress datapath is programmed before a policy is reported
/// realized, so traffic is awaited only briefly (a fault fails fast, for the right reason).
pub fn timeouts() -> crate::Timeouts {
    // Replacing the lab's plugins takes milliseconds: connections are held for seconds,
    // and mending (plugins put back, a node's links up again) is as quick.
    crate::Timeouts {
        egress_datapath: std::time::Duration::from_secs(2),
        upgrade_hold: std::time::Duration::from_secs(3),
        mend: std::time::Duration::from_secs(30),
        ..Default::default()
    }
}

/// Why the lab cannot host a scenario needing `feature`, if it cannot.
pub fn cannot_host(cni: &CniProfile, feature: Feature) -> Option<String> {
    let reference_gateway = crate::gateway::lab_reference_nginx().name;
    match feature {
        Feature::GatewayWeights | Feature::RequestMirror if cni.gateway.as_ref().is_some_and(|g| g.name != reference_gateway) => {
            Some(format!("the lab serves HTTPRoutes only with its own {reference_gateway}, not {}", cni.gateway.as_ref().map(|g| g.name).unwrap_or_default()))
        }
        // Every other feature the lab hosts: its reference egress gateway does failover and
        // excluded destinations too.
        _ => None,
    }
}

/// A pod's host ports as the `portMappings` runtime capability (the CNI conventions'
/// `hostPort`, `containerPort`, `protocol`).
fn port_mappings(host_ports: &[crate::model::HostPort]) -> serde_json::Value {
    host_ports.iter().map(|p| serde_json::json!({ "hostPort": p.host, "containerPort": p.container, "protocol": "tcp" })).collect()
}

/// The node's end of a pod's `eth0` (a veth, whichever plugin made it): the link whose
/// index the pod's end names as its peer (`eth0@if7`).
fn node_side_of_pod_nic(pod_netns: &str, node_netns: &str) -> Result<String> {
    let pod_side = shell::in_netns(pod_netns, "ip", &["-o", "link", "show", "dev", "eth0"], None)?;
    let peer = pod_side.split_once("eth0@if").and_then(|(_, rest)| rest.split(':').next()).filter(|index| index.parse::<u32>().is_ok());
    let not_found = |why: &str| HarnessError::NotFound {
        what: "node end of the pod's eth0".into(),
        wanted: format!("in {node_netns} ({why}; the pod's end: {})", pod_side.trim()),
    };
    let peer = peer.ok_or_else(|| not_found("the pod's eth0 is not a veth"))?;
    let links = shell::in_netns(node_netns, "ip", &["-o", "link", "show"], None)?;
    links
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{peer}: ")).and_then(|rest| rest.split(['@', ':']).next()).map(str::to_owned))
        .ok_or_else(|| not_found(&format!("no link {peer}")))
}

/// Transmit queues of every lab host's `eth0`: one per gate of the paper's taprio schedule.
const NIC_QUEUES: usize = 3;

/// Tools the lab runs, with what each is for and how to get it.
const TOOLS: [(&str, &str, &str); 4] = [
    ("ip", "network namespaces, links, routes", "install it with `apt-get install iproute2` or run `cargo xtask deps`"),
    ("iptables-restore", "masquerade and SNAT rules inside node namespaces", "install it with `apt-get install iptables` or run `cargo xtask deps`"),
    ("sysctl", "forwarding inside node namespaces", "install it with `apt-get install procps` or run `cargo xtask deps`"),
    ("kill", "stopping what runs in the lab's namespaces", "install it with `apt-get install procps` or run `cargo xtask deps`"),
];

/// The CNI a node runs: the plugins its runtime finds and the conflist it reads. An
/// in-place upgrade replaces it whole, as a package upgrade or a DaemonSet's install
/// container replaces the files on a node.
struct NodeCni {
    runtime: CniRuntime,
    network: NetworkConfigList,
}

struct LabNode {
    node: Node,
    netns: String,
    pod_cidr: Ipv4Net,
    /// What the node's conflist placeholders are filled with, and its state directory.
    placeholders: crate::cni::runtime::NodePlaceholders,
    state: PathBuf,
    cni: std::sync::RwLock<Arc<NodeCni>>,
    /// Held shared by every plugin call (ADDs of pods started together run at once, as
    /// containerd runs them: the plugins' own locks serialise what must be), and alone while
    /// the node's CNI is replaced, so no call runs half on one version.
    attaching: std::sync::RwLock<()>,
    /// The underlay's end of the node's eth0 (its switch port): down is the node cut off.
    uplink: String,
}

struct LabPod {
    pod: Pod,
    netns: String,
    node_index: usize,
    attachment: Attachment,
    /// The pod's main process: the probe serving the echo under the pod's name.
    server: Option<Child>,
}

#[derive(Default)]
struct Registry {
    namespaces: BTreeMap<String, Labels>,
    pods: Vec<LabPod>,
    next_pod: usize,
    next_egress_ip: usize,
    next_service: usize,
}

/// A running lab cluster.
pub struct Lab {
    info: ClusterInfo,
    nodes: Vec<Node>,
    lab_nodes: Vec<LabNode>,
    probe: PathBuf,
    faults: Vec<LabFault>,
    registry: Mutex<Registry>,
    gateway: Arc<Mutex<EgressGateway>>,
    /// The egress controller's health monitor and the nodes' health responders, started
    /// with the first policy whose egress IP can move.
    health: Mutex<Option<(HealthMonitor, Vec<Child>)>>,
    echo_server: Mutex<Option<Child>>,
    external_netns: String,
    /// Where the Gateway and LoadBalancer Services live.
    edge_netns: String,
    /// The Gateway for HTTP routes, started with the first route.
    http_gateway: Mutex<Option<gateway::Gateway>>,
    /// Loads hold it for reading, route changes for writing: one trial's reload never cuts
    /// another trial's keep-alive connections in the middle of a measurement.
    gateway_quiet: std::sync::RwLock<()>,
    torn_down: AtomicBool,
}

impl LabNode {
    /// The CNI the node runs now.
    fn cni(&self) -> Arc<NodeCni> {
        Arc::clone(&self.cni.read().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Lab {
    /// Builds the lab, or removes whatever it had built and says why it could not.
    pub fn provision(cni: &CniProfile, options: &LabOptions) -> Result<Lab> {
        let started = Instant::now();
        let uid = host::effective_uid();
        if uid != 0 {
            return Err(HarnessError::NotRoot { uid });
        }
        for (tool, purpose, install) in TOOLS {
            if !host::on_path(tool) {
                return Err(HarnessError::MissingTool { tool: tool.into(), purpose: purpose.into(), install: install.into() });
            }
        }
        let probe = find_probe()?;
        let Installation::Lab { conflist, plugin_dirs, .. } = &cni.installation else {
            return Err(HarnessError::NotFound { what: "lab support".into(), wanted: format!("CNI {}: {}", cni.name, unavailable(cni).unwrap_or_default()) });
        };
        let network = NetworkConfigList::load(conflist)?;
        let plugin_dirs = plugin_dirs_or(plugin_dirs, &probe);
        let runtime = CniRuntime { plugin_dirs: plugin_dirs.clone(), cache_dir: PathBuf::new(), node: None, records: Default::default(), budget: None };
        runtime.require_plugins(&network)?;
        runtime.require_claimed_version(&network, conflist)?;
        let config = fixtures::load_kind_config(&options.kind_config)?;

        let cluster = runs::new_cluster_name();
        gc::claim_removed_on_interrupt(&cluster)?;
        let _provisioning = tracing::info_span!("lab", cluster = %cluster).entered();
        let built = Self::build(&cluster, cni, options, &config, network, plugin_dirs, probe, started);
        match &built {
            Ok(lab) => tracing::info!(
                "lab cluster ready in {:.2}s: {} nodes, CNI {} from {}",
                lab.info.ready_in.as_secs_f64(),
                lab.nodes.len(),
                cni.name,
                cni.source.display()
            ),
            Err(e) => tracing::error!("lab cluster could not be built: {e}"),
        }
        if built.is_err() {
            let _ = gc::remove_cluster(&cluster);
            cleanup::unregister(&cluster);
        }
        built
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        cluster: &str,
        cni: &CniProfile,
        options: &LabOptions,
        config: &KindClusterConfig,
        network_template: NetworkConfigList,
        plugin_dirs: Vec<PathBuf>,
        probe: PathBuf,
        started: Instant,
    ) -> Result<Lab> {
        let pod_subnet = config.networking.pod_subnet.unwrap_or_else(|| "10.244.0.0/16".parse().expect("valid"));
        let names = config.node_names(cluster);
        let underlay = format!("{cluster}-underlay");
        let external_netns = format!("{cluster}-external");
        let mut lab_nodes = Vec::new();
        for (index, (name, kind_node)) in names.iter().zip(&config.nodes).enumerate() {
            let pod_cidr = addressing::pod_cidr(pod_subnet, index).ok_or_else(|| HarnessError::FixtureMalformed {
                path: options.kind_config.clone(),
                detail: format!("networking.podSubnet {pod_subnet} has no /24 left for node {index}"),
            })?;
            let state = runs::state_dir(cluster).join(name);
            let mut network = network_template.clone();
            let placeholders = crate::cni::runtime::NodePlaceholders {
                node_name: name.clone(),
                node_address: addressing::node_address(index),
                node_pod_cidr: pod_cidr,
                pod_subnet,
            };
            fill_in_node_network(&mut network, &placeholders);
            let mut view = NodeView {
                netns: name.clone(),
                bpffs: bpffs_of(cni, cluster, &state),
                own_directories: Some(state.clone()),
                netns_dir: Some(state.join("netns")),
                logs: vec![],
                kept_from_the_host: vec![],
                files: vec![],
            };
            view.install(cni, &plugin_dirs)?;
            let runtime =
                CniRuntime { plugin_dirs: plugin_dirs.clone(), cache_dir: state.join("cache"), node: Some(view), records: Default::default(), budget: None };
            lab_nodes.push(LabNode {
                node: Node { name: name.clone(), role: kind_node.role, labels: kind_node.labels.clone(), address: IpAddr::V4(addressing::node_address(index)) },
                netns: name.clone(),
                pod_cidr,
                placeholders,
                state,
                cni: std::sync::RwLock::new(Arc::new(NodeCni { runtime, network })),
                attaching: Default::default(),
                // The underlay's ports: the external host's, the edge's, then the nodes'.
                uplink: format!("port{}", index + 2),
            });
        }

        let edge_netns = format!("{cluster}-edge");
        let mut all = vec![underlay.clone(), external_netns.clone(), edge_netns.clone()];
        all.extend(lab_nodes.iter().map(|n| n.netns.clone()));
        cleanup::guard_creation(|| shell::ip_batch(None, &all.iter().map(|ns| format!("netns add {ns}")).collect::<Vec<_>>()))?;

        // The underlay: a bridge with one port per host, each host's end named eth0, with a
        // transmit queue per TSN gate (taprio needs a multi-queue NIC; a kernel that has
        // taprio can then run the gate-window scenario on the lab).
        // The bridge holds the Docker network's gateway address, as the host does for kind;
        // it forwards nothing further, so nothing leaves the lab.
        let mut underlay_setup = vec![
            "link add kind type bridge".to_owned(),
            format!("addr add {}/{} dev kind", addressing::underlay_gateway(), addressing::UNDERLAY_PREFIX),
            "link set kind up".to_owned(),
        ];
        for (port, host) in all.iter().skip(1).enumerate() {
            underlay_setup
                .push(format!("link add port{port} mtu 1600 type veth peer name eth0 mtu 1600 numtxqueues {NIC_QUEUES} numrxqueues {NIC_QUEUES} netns {host}"));
            underlay_setup.push(format!("link set port{port} master kind up"));
        }
        shell::ip_batch(Some(&underlay), &underlay_setup)?;
        // Each node's own BPF filesystem, as a kind node has at /sys/fs/bpf: plugins see it
        // there (NodeView); gc unmounts it, and with it whatever a plugin pinned.
        let mut mounted = std::collections::BTreeSet::new();
        for lab_node in &lab_nodes {
            if let Some(view) = lab_node.cni().runtime.node.as_ref().filter(|v| mounted.insert(v.bpffs.clone())) {
                cleanup::guard_creation(|| gc::mount_bpffs(&view.bpffs))?;
            }
        }

        let masquerade = !options.faults.contains(&LabFault::NodeMasqueradeOff);
        for (index, lab_node) in lab_nodes.iter().enumerate() {
            let mut setup = vec![
                "link set lo up".to_owned(),
                format!("addr add {}/{} dev eth0", lab_node.node.address, addressing::UNDERLAY_PREFIX),
                "link set eth0 up".to_owned(),
                // Pod-to-pod traffic never takes an egress route.
                format!("rule add to {pod_subnet} lookup main pref 90"),
                // A kind node's default route, to its Docker network's gateway: plugins that
                // answer a pod's gateway by proxy ARP (Calico's 169.254.1.1) need one.
                format!("route add default via {}", addressing::underlay_gateway()),
            ];
            for other in lab_nodes.iter().enumerate().filter(|(i, _)| *i != index).map(|(_, n)| n) {
                setup.push(format!("route add {} via {}", other.pod_cidr, other.node.address));
            }
            shell::ip_batch(Some(&lab_node.netns), &setup)?;
            shell::in_netns(
                &lab_node.netns,
                "sysctl",
                &["-qw", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0", "net.ipv4.conf.eth0.rp_filter=0"],
                None,
            )?;
            shell::in_netns(&lab_node.netns, "iptables-restore", &["--noflush"], Some(&node_nat_rules(lab_node.pod_cidr, pod_subnet, masquerade)))?;
            if options.faults.contains(&LabFault::NoOpForwardingRules) {
                shell::in_netns(&lab_node.netns, "iptables-restore", &["--noflush"], Some(&LabFault::no_op_forwarding_rules()))?;
            }
            if options.faults.contains(&LabFault::NicRateLimit) && lab_node.node.role == NodeRole::Worker {
                shell::in_netns(&lab_node.netns, "tc", &LabFault::rate_limit("eth0"), None)?;
            }
        }

        // Hosts on the underlay that route to pods through their nodes. The external host
        // does, as a routed underlay (a cloud VPC) would: a missing SNAT then shows up as the
        // pod's address, not as a timeout. The edge is where a LoadBalancer (MetalLB on
        // kind) puts the Gateway's and Services' addresses.
        let underlay_host = |address: std::net::Ipv4Addr| -> Vec<String> {
            let mut setup =
                vec!["link set lo up".to_owned(), format!("addr add {address}/{} dev eth0", addressing::UNDERLAY_PREFIX), "link set eth0 up".to_owned()];
            setup.extend(lab_nodes.iter().map(|n| format!("route add {} via {}", n.pod_cidr, n.node.address)));
            setup
        };
        shell::ip_batch(Some(&external_netns), &underlay_host(addressing::external_address()))?;
        if options.faults.contains(&LabFault::ExternalUnreachable) {
            shell::in_netns(&external_netns, "iptables-restore", &["--noflush"], Some("*filter\n-A INPUT -i eth0 -j DROP\nCOMMIT\n"))?;
        }
        shell::ip_batch(Some(&edge_netns), &underlay_host(gateway::gateway_address()))?;
        shell::in_netns(&edge_netns, "iptables-restore", &["--noflush"], Some(&format!("*nat\n-A POSTROUTING -d {pod_subnet} -j MASQUERADE\nCOMMIT\n")))?;
        let echo_server = if options.faults.contains(&LabFault::ExternalEchoDown) {
            None
        } else {
            Some(start_probe_server(&external_netns, &probe, "external", addressing::ECHO_PORT)?)
        };

        if let Installation::Lab { on_install: Some(program), .. } = &cni.installation {
            for lab_node in &lab_nodes {
                run_on_install(program, lab_node)?;
            }
        }

        let nodes = lab_nodes.iter().map(|n| n.node.clone()).collect();
        let info = ClusterInfo {
            provider: "lab".into(),
            cluster: cluster.to_owned(),
            run_id: cluster.trim_start_matches(runs::NAME_PREFIX).to_owned(),
            cni: cni.name.to_owned(),
            // A profile of installed plugins has no version of its own: each plugin's is in
            // its component (Debian's package, or what the binary says).
            cni_version: if cni.version == "as installed" { "as installed".into() } else { cni.version.clone() },
            cni_version_source: if cni.version == "as installed" {
                "each plugin's own version, under components".into()
            } else {
                format!("the profile {}", cni.source.display())
            },
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned(),
            ready_in: started.elapsed(),
            purpose: cni.purpose(),
            components: lab_nodes[0]
                .cni()
                .network
                .plugin_types()
                .filter_map(|plugin| Some(components::plugin_component(plugin, &lab_nodes[0].cni().runtime.plugin_path(plugin).ok()?)))
                .chain(components::lab_reference_parts(cni))
                .collect(),
        };
        let egress_gateway =
            EgressGateway::new(lab_nodes.iter().map(|n| GatewayNode { netns: n.netns.clone(), node: n.node.clone() }).collect(), options.faults.clone());
        Ok(Lab {
            info,
            nodes,
            lab_nodes,
            probe,
            faults: options.faults.clone(),
            registry: Mutex::new(Registry::default()),
            gateway: Arc::new(Mutex::new(egress_gateway)),
            health: Mutex::new(None),
            echo_server: Mutex::new(echo_server),
            external_netns,
            edge_netns,
            http_gateway: Mutex::new(None),
            gateway_quiet: std::sync::RwLock::new(()),
            torn_down: AtomicBool::new(false),
        })
    }

    /// Sets the node's switch port on the underlay `down` or `up`.
    fn set_uplink(&self, node: &Node, state: &str) -> Result<()> {
        let index = self.node_index(&node.name)?;
        shell::ip_batch(Some(&format!("{}-underlay", self.info.cluster)), &[format!("link set {} {state}", self.lab_nodes[index].uplink)])
    }

    /// Starts, once, what the egress controller needs to see nodes fail: a responder on
    /// each node's health port and the monitor on the control plane (see [`HealthMonitor`]).
    fn watch_node_health(&self) -> Result<()> {
        let mut health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        if health.is_some() {
            return Ok(());
        }
        let observer = self.lab_nodes.iter().position(|n| n.node.role == NodeRole::ControlPlane).unwrap_or(0);
        let mut responders = Vec::new();
        let mut watched = Vec::new();
        for (index, lab_node) in self.lab_nodes.iter().enumerate().filter(|(i, _)| *i != observer) {
            responders.push(start_probe_server(&lab_node.netns, &self.probe, &format!("{}-health", lab_node.node.name), egress::HEALTH_PORT)?);
            watched.push((index, std::net::SocketAddr::new(lab_node.node.address, egress::HEALTH_PORT)));
        }
        let monitor = HealthMonitor::start(self.gateway.clone(), &self.lab_nodes[observer].netns, watched, &self.faults)?;
        *health = Some((monitor, responders));
        Ok(())
    }

    fn node_index(&self, name: &str) -> Result<usize> {
        self.lab_nodes.iter().position(|n| n.node.name == name).ok_or_else(|| HarnessError::NotFound {
            what: "node".into(),
            wanted: format!("`{name}` (nodes: {})", self.nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(", ")),
        })
    }

    fn netns_of(&self, pod: &Pod) -> Result<String> {
        let registry = self.registry();
        let found = registry.pods.iter().find(|p| p.pod == *pod);
        found.map(|p| p.netns.clone()).ok_or_else(|| HarnessError::NotFound { what: "pod".into(), wanted: format!("{}/{}", pod.namespace, pod.name) })
    }

    /// Runs the probe with `args` in `netns` and reads the JSON it prints.
    fn probe_json<T: serde::de::DeserializeOwned>(&self, netns: &str, args: &[&str], place: &str) -> Result<T> {
        let command = format!("cni-probe {} in {place}", args.join(" "));
        let output = Command::new("ip")
            .args(["netns", "exec", netns])
            .arg(&self.probe)
            .args(args)
            .output()
            .map_err(|e| HarnessError::Command { command: command.clone(), detail: e.to_string() })?;
        super::probe_output(&crate::model::ExecOutput::from_output(&output), || command)
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Cluster for Lab {
    fn info(&self) -> &ClusterInfo {
        &self.info
    }

    fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    fn create_namespace(&self, namespace: &NamespaceSpec) -> Result<()> {
        let mut labels = namespace.labels.clone();
        labels.insert("kubernetes.io/metadata.name".into(), namespace.name.clone());
        self.registry().namespaces.insert(namespace.name.clone(), labels);
        Ok(())
    }

    fn create_pod(&self, spec: &PodSpec) -> Result<Pod> {
        let node_index = self.node_index(&spec.node)?;
        let sequence = {
            let mut registry = self.registry();
            if !registry.namespaces.contains_key(&spec.namespace) {
                return Err(HarnessError::NotFound { what: "namespace".into(), wanted: format!("`{}` for pod {}", spec.namespace, spec.name) });
            }
            registry.next_pod += 1;
            registry.next_pod
        };
        let netns = format!("{}-pod{sequence}", self.info.cluster);
        cleanup::guard_creation(|| shell::ip_batch(None, &[format!("netns add {netns}")]))?;
        shell::ip_batch(Some(&netns), &["link set lo up".to_owned()])?;
        let lab_node = &self.lab_nodes[node_index];
        let node_cni = lab_node.cni();
        let view = node_cni.runtime.node.as_ref().expect("lab nodes have a node view");
        let attachment = Attachment {
            container_id: netns.clone(),
            // As containerd and CRI-O name it, in the node's own /var/run/netns.
            netns: cleanup::guard_creation(|| view.expose_netns(&netns))?,
            ifname: "eth0".into(),
            args: vec![
                ("IgnoreUnknown".into(), "1".into()),
                ("K8S_POD_NAMESPACE".into(), spec.namespace.clone()),
                ("K8S_POD_NAME".into(), spec.name.clone()),
                ("K8S_POD_INFRA_CONTAINER_ID".into(), netns.clone()),
            ],
            // The node's pod range, for plugins whose IPAM takes it as a runtime capability;
            // its host ports as kubelet hands a pod's `hostPort`s to the runtime (only a pod
            // that has some: a plugin asking for the capability gets no mappings otherwise).
            capability_args: [("ipRanges".to_owned(), serde_json::json!([[{ "subnet": lab_node.pod_cidr.to_string() }]]))]
                .into_iter()
                .chain((!spec.host_ports.is_empty()).then(|| ("portMappings".to_owned(), port_mappings(&spec.host_ports))))
                .collect(),
        };
        // ADD alone, as kubelet's runtime starts a pod: no runtime gates a pod on CHECK
        // (containerd and CRI-O call it only when asked), so a plugin whose CHECK fails still
        // has its datapath judged; CHECK is judged by `cni_spec`.
        let added = {
            let _node = lab_node.attaching.read().unwrap_or_else(|e| e.into_inner());
            let node_cni = lab_node.cni();
            node_cni.runtime.add(&node_cni.network, &attachment).inspect_err(|_add_failed| {
                // As containerd tears down a sandbox whose network set-up failed (or timed
                // out): DEL of the attachment, with no prevResult (none was cached), before
                // the sandbox goes, so the plugins free what the failed ADD reserved.
                if let Err(del_failed) = node_cni.runtime.del(&node_cni.network, &attachment) {
                    tracing::warn!("pod {}/{}: the DEL after its failed ADD failed too: {del_failed}", spec.namespace, spec.name);
                }
                view.unexpose_netns(&attachment.netns);
            })
        };
        let result = match added {
            Ok(result) => result,
            Err(add_failed) => {
                let _ = node_state::remove_netns_now(&netns);
                return Err(add_failed);
            }
        };
        let address = result.ips.first().map(|ip| ip.address.addr()).ok_or_else(|| HarnessError::CniResult {
            plugin: node_cni.network.plugin_types().collect::<Vec<_>>().join(" -> "),
            detail: format!("ADD for pod {}/{} returned no IP", spec.namespace, spec.name),
        })?;
        let pod = Pod { name: spec.name.clone(), namespace: spec.namespace.clone(), labels: spec.labels.clone(), node: spec.node.clone(), address };
        if self.faults.contains(&LabFault::PodVethRateLimit) {
            let node_side = node_side_of_pod_nic(&netns, &lab_node.netns)?;
            shell::in_netns(&lab_node.netns, "tc", &LabFault::rate_limit(&node_side), None)?;
        }
        let server = start_probe_server(&netns, &self.probe, &spec.name, addressing::ECHO_PORT)?;
        let namespace_labels = {
            let mut registry = self.registry();
            registry.pods.push(LabPod { pod: pod.clone(), netns, node_index, attachment, server: Some(server) });
            registry.namespaces[&spec.namespace].clone()
        };
        self.gateway.lock().unwrap_or_else(|e| e.into_inner()).admit_pod(&pod, node_index, &namespace_labels)?;
        Ok(pod)
    }

    fn allocate_egress_ip(&self) -> Result<IpAddr> {
        let mut registry = self.registry();
        let ip = addressing::egress_ip(registry.next_egress_ip)
            .ok_or_else(|| HarnessError::NotFound { what: "free egress IP".into(), wanted: "the lab's pool 172.18.0.200-239 (40 policies per run)".into() })?;
        registry.next_egress_ip += 1;
        Ok(IpAddr::V4(ip))
    }

    fn apply_egress_policy(&self, policy: &EgressPolicy) -> Result<()> {
        let pods: Vec<(Pod, usize, Labels)> = {
            let registry = self.registry();
            registry.pods.iter().map(|p| (p.pod.clone(), p.node_index, registry.namespaces[&p.pod.namespace].clone())).collect()
        };
        let standbys = {
            let mut gateway = self.gateway.lock().unwrap_or_else(|e| e.into_inner());
            gateway.apply(policy, &pods)?;
            gateway.has_standbys()
        };
        if standbys {
            self.watch_node_health()?;
        }
        Ok(())
    }

    fn egress_status(&self, policy: &EgressPolicy, _selected: &[Pod]) -> Result<Option<EgressStatus>> {
        Ok(self.gateway.lock().unwrap_or_else(|e| e.into_inner()).status(&policy.name))
    }

    fn external_echo_url(&self) -> String {
        format!("http://{}:{}/", addressing::external_address(), addressing::ECHO_PORT)
    }

    fn external_closed_port_url(&self) -> String {
        format!("http://{}:{}/", addressing::external_address(), addressing::CLOSED_PORT)
    }

    fn request_from(&self, pod: &Pod, url: &str, timeout: Duration) -> Result<Observation> {
        let netns = self.netns_of(pod)?;
        self.probe_json(&netns, &["get", url, "--timeout-ms", &timeout.as_millis().to_string()], &format!("pod {}/{}", pod.namespace, pod.name))
    }

    fn apply_http_route(&self, namespace: &str, route: &HttpRoute) -> Result<()> {
        let address_of = |service: &str| -> Result<IpAddr> {
            let registry = self.registry();
            let found = registry.pods.iter().find(|p| p.pod.namespace == namespace && p.pod.name == service);
            found
                .map(|p| p.pod.address)
                .ok_or_else(|| HarnessError::NotFound { what: "Service".into(), wanted: format!("{namespace}/{service} (a pod of that name)") })
        };
        let backends = route.backends.iter().map(|b| Ok((address_of(&b.service)?, b.port, b.weight))).collect::<Result<Vec<_>>>()?;
        let mirror = route.mirror_to.as_ref().map(|(service, port)| Ok::<_, HarnessError>((address_of(service)?, *port))).transpose()?;
        let _no_loads_running = self.gateway_quiet.write().unwrap_or_else(|e| e.into_inner());
        let mut gateway = self.http_gateway.lock().unwrap_or_else(|e| e.into_inner());
        if gateway.is_none() {
            *gateway = Some(gateway::Gateway::start(&self.edge_netns, &runs::state_dir(&self.info.cluster), &self.faults)?);
        }
        gateway.as_mut().expect("started above").apply(gateway::ResolvedRoute { route: route.clone(), backends, mirror }, &self.faults)?;
        if self.faults.contains(&LabFault::BackendDown) {
            if let Some(last) = route.backends.last() {
                let mut registry = self.registry();
                if let Some(pod) = registry.pods.iter_mut().find(|p| p.pod.namespace == namespace && p.pod.name == last.service) {
                    if let Some(mut server) = pod.server.take() {
                        let _ = server.kill();
                        let _ = server.wait();
                    }
                }
            }
        }
        Ok(())
    }

    fn expose_service(&self, namespace: &str, name: &str, selector: &Labels, port: u16) -> Result<String> {
        let (index, endpoints) = {
            let mut registry = self.registry();
            let endpoints: Vec<(IpAddr, u16)> = registry
                .pods
                .iter()
                .filter(|p| p.pod.namespace == namespace && selector.iter().all(|(k, v)| p.pod.labels.get(k) == Some(v)))
                .map(|p| (p.pod.address, port))
                .collect();
            registry.next_service += 1;
            (registry.next_service - 1, endpoints)
        };
        if endpoints.is_empty() {
            return Err(HarnessError::NotFound { what: "endpoints".into(), wanted: format!("pods of Service {namespace}/{name} (selector {selector:?})") });
        }
        let vip = gateway::service_address(index)
            .ok_or_else(|| HarnessError::NotFound { what: "free Service address".into(), wanted: "in 172.18.0.151-199".into() })?;
        shell::ip_batch(Some(&self.edge_netns), &[format!("addr add {vip}/32 dev eth0")])?;
        shell::in_netns(
            &self.edge_netns,
            "iptables-restore",
            &["--noflush"],
            Some(&gateway::service_rules(&format!("LAB-SVC-{index}"), vip, &endpoints, &self.faults)),
        )?;
        Ok(format!("http://{vip}/"))
    }

    fn gateway_url(&self, path: &str) -> String {
        format!("http://{}{path}", gateway::gateway_address())
    }

    fn load_from_outside(&self, url: &str, load: &cni_probe::LoadOptions) -> Result<LoadReport> {
        let args = load.to_args(url);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let _no_reload_meanwhile = self.gateway_quiet.read().unwrap_or_else(|e| e.into_inner());
        self.probe_json(&self.external_netns, &args, "the external host")
    }

    fn served_requests(&self, pod: &Pod, path_prefix: &str) -> Result<u64> {
        let netns = self.netns_of(pod)?;
        let url = cni_probe::served_url(&format!("http://127.0.0.1:{}", addressing::ECHO_PORT), path_prefix);
        let served: cni_probe::ServedRequests = self.probe_json(&netns, &["served", &url], &format!("pod {}/{}", pod.namespace, pod.name))?;
        Ok(served.requests)
    }

    fn run_on_node(&self, node: &Node, program: &str, args: &[&str]) -> Result<crate::model::ExecOutput> {
        let netns = self.lab_nodes[self.node_index(&node.name)?].netns.clone();
        // The probe is on every lab node (the same binary the pods run).
        let program = if program == crate::tools::PROBE { self.probe.as_path() } else { std::path::Path::new(program) };
        exec_in_netns(&netns, program, args.iter().copied())
    }

    /// The lab's nodes share this machine's filesystem: the file is already there.
    fn put_file_on_node(&self, _node: &Node, path: &std::path::Path) -> Result<String> {
        Ok(path.display().to_string())
    }

    fn run_probe_in(&self, pod: &Pod, args: &[String]) -> Result<crate::model::ExecOutput> {
        exec_in_netns(&self.netns_of(pod)?, &self.probe, args.iter().map(String::as_str))
    }

    fn run_in_pod(&self, pod: &Pod, program: &str, args: &[&str]) -> Result<crate::model::ExecOutput> {
        exec_in_netns(&self.netns_of(pod)?, std::path::Path::new(program), args.iter().copied())
    }

    /// Every CNI call of the trial on each node (its pods' namespaces carry the trial's
    /// name), the lab Gateway's error log and the reference egress agent's state.
    fn own_records(&self, trial: &str) -> Vec<(String, String)> {
        let of_the_trial = format!("-{trial};");
        let mut records = Vec::new();
        for node in &self.lab_nodes {
            let calls =
                node.cni().runtime.invocations(|environment| environment.iter().any(|(k, v)| k == "CNI_ARGS" && format!("{v};").contains(&of_the_trial)));
            let text: String = calls.iter().map(crate::cni::runtime::Invocation::describe).collect();
            records.push((
                format!("cni-calls/{}.txt", node.node.name),
                if text.is_empty() { "no CNI call of this trial on this node\n".to_owned() } else { text },
            ));
            // What Debian's bpftool 7.1 (the bundle's `bpf-net`) cannot list: tcx programs.
            let tcx = match node_state::bpf_attachments(&node.netns) {
                Ok(lines) if lines.is_empty() => "no tcx program on any link of the node\n".to_owned(),
                Ok(lines) => lines.join("\n") + "\n",
                Err(e) => format!("could not list the node's tcx programs: {e}\n"),
            };
            records.push((format!("nodes/{}/bpf-tcx.txt", node.node.name), tcx));
            // The plugins' own logs (profile field `diagnostics.logs`), whole, from the
            // node's own directories.
            if let Some(view) = &node.cni().runtime.node {
                for log in &view.logs {
                    let text = std::fs::read_to_string(view.on_host(log))
                        .map(|text| last_bytes(&text, LOG_BYTES))
                        .unwrap_or_else(|e| format!("{} on node {}: {e}\n", log.display(), node.node.name));
                    records.push((format!("nodes/{}/logs{}", node.node.name, log.display()), text));
                }
            }
        }
        // The Gateway's routes as nginx serves them (weights, backends), and its complaints.
        let gateway = runs::state_dir(&self.info.cluster).join("gateway");
        for (file, name) in [("nginx.conf", "components/lab-gateway-nginx.conf"), ("error.log", "components/lab-gateway-nginx-error.log")] {
            if let Ok(text) = std::fs::read_to_string(gateway.join(file)) {
                records.push((name.into(), text));
            }
        }
        let egress = self.gateway.lock().unwrap_or_else(|e| e.into_inner()).describe();
        records.push(("components/lab-egress-agent.txt".into(), egress));
        records
    }

    fn run_outside(&self, program: &str, args: &[&str]) -> Result<crate::model::ExecOutput> {
        exec_in_netns(&self.external_netns, std::path::Path::new(program), args.iter().copied())
    }

    fn run_probe_outside(&self, args: &[String]) -> Result<crate::model::ExecOutput> {
        exec_in_netns(&self.external_netns, &self.probe, args.iter().map(String::as_str))
    }

    /// The lab's CNI is its plugin processes: what the kernel accounted to each at its exit
    /// (with what it ran and waited for), over every node. No CNI process runs between
    /// ADDs, so traffic alone costs the CNI nothing here.
    fn cni_resource_usage(&self) -> Result<crate::model::ResourceUsage> {
        Ok(self.lab_nodes.iter().map(|n| n.cni().runtime.usage()).fold(Default::default(), crate::model::ResourceUsage::with))
    }

    /// Node by node, the plugins and the conflist a node's runtime uses are replaced at
    /// once (between two of its CNI calls, never during one), as a package upgrade or a
    /// DaemonSet's install container replaces the files; pods, their namespaces and
    /// everything the old version made stay as they are. IPAM state (the node's data
    /// directory) and the runtime's cached results carry over, as they do on a node.
    fn replace_cni(&self, with: &CniProfile) -> Result<()> {
        let Installation::Lab { conflist, plugin_dirs, on_install, .. } = &with.installation else {
            return Err(HarnessError::NotFound { what: "lab support".into(), wanted: format!("CNI {}: {}", with.name, unavailable(with).unwrap_or_default()) });
        };
        let template = NetworkConfigList::load(conflist)?;
        let plugin_dirs = plugin_dirs_or(plugin_dirs, &self.probe);
        let runtime = CniRuntime { plugin_dirs: plugin_dirs.clone(), cache_dir: PathBuf::new(), node: None, records: Default::default(), budget: None };
        runtime.require_plugins(&template)?;
        runtime.require_claimed_version(&template, conflist)?;
        for lab_node in &self.lab_nodes {
            let mut network = template.clone();
            fill_in_node_network(&mut network, &lab_node.placeholders);
            let mut runtime = CniRuntime { plugin_dirs: plugin_dirs.clone(), ..lab_node.cni().runtime.clone() };
            if let Some(view) = runtime.node.as_mut() {
                // The new version's logs and files, its plugin directories' mount points made
                // now: an install's doing, never a leftover of the DEL that first runs it.
                view.install(with, &plugin_dirs)?;
            }
            let _between_calls = lab_node.attaching.write().unwrap_or_else(|e| e.into_inner());
            if let Some(program) = on_install {
                run_on_install(program, lab_node)?;
            }
            *lab_node.cni.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(NodeCni { runtime, network });
            tracing::info!(
                "node {}: CNI replaced by {} ({})",
                lab_node.node.name,
                with.name,
                plugin_dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(":")
            );
        }
        Ok(())
    }

    fn check_pod_network(&self, pod: &Pod) -> Result<()> {
        let (node_index, attachment) = {
            let registry = self.registry();
            let found = registry
                .pods
                .iter()
                .find(|p| p.pod == *pod)
                .ok_or_else(|| HarnessError::NotFound { what: "pod".into(), wanted: format!("{}/{}", pod.namespace, pod.name) })?;
            (found.node_index, found.attachment.clone())
        };
        let lab_node = &self.lab_nodes[node_index];
        let _one_call = lab_node.attaching.read().unwrap_or_else(|e| e.into_inner());
        let node_cni = lab_node.cni();
        node_cni.runtime.check(&node_cni.network, &attachment)
    }

    fn pods(&self) -> Result<Vec<Pod>> {
        Ok(self.registry().pods.iter().map(|p| p.pod.clone()).collect())
    }

    fn delete_pod(&self, pod: &Pod) -> Result<()> {
        let mut removed = {
            let mut registry = self.registry();
            let index = registry
                .pods
                .iter()
                .position(|p| p.pod == *pod)
                .ok_or_else(|| HarnessError::NotFound { what: "pod".into(), wanted: format!("{}/{}", pod.namespace, pod.name) })?;
            registry.pods.remove(index)
        };
        if let Some(mut server) = removed.server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
        let lab_node = &self.lab_nodes[removed.node_index];
        let deleted = {
            let _one_call = lab_node.attaching.read().unwrap_or_else(|e| e.into_inner());
            let node_cni = lab_node.cni();
            let deleted = node_cni.runtime.del(&node_cni.network, &removed.attachment);
            if let Some(view) = &node_cni.runtime.node {
                view.unexpose_netns(&removed.attachment.netns);
            }
            deleted
        };
        node_state::remove_netns_now(&removed.netns)?;
        deleted
    }

    fn node_state(&self, node: &Node) -> Result<std::collections::BTreeSet<String>> {
        let lab_node = &self.lab_nodes[self.node_index(&node.name)?];
        let view = lab_node.cni().runtime.node.clone();
        let bpffs = view.as_ref().map(|v| v.bpffs.clone()).unwrap_or_default();
        let mut state = node_state::node_state(&lab_node.netns, &lab_node.state, &bpffs)?;
        // The plugins' declared logs are no state, wherever they are.
        for log in view.iter().flat_map(|v| &v.logs) {
            state.remove(&format!("file {}", log.display()));
        }
        Ok(state)
    }

    /// Cuts the node's uplink at the underlay's switch port: nothing inside the node is
    /// touched or warned, as a failed link or node would be.
    fn fail_node(&self, node: &Node) -> Result<()> {
        self.set_uplink(node, "down")
    }

    fn restore_node(&self, node: &Node) -> Result<()> {
        self.set_uplink(node, "up")
    }

    fn teardown(&self) -> Result<()> {
        if self.torn_down.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        // Pods leave as the kubelet removes them: CNI DEL with the cached result.
        let mut pods = std::mem::take(&mut self.registry().pods);
        for pod in &mut pods {
            if let Some(mut server) = pod.server.take() {
                let _ = server.kill();
                let _ = server.wait();
            }
            let node_cni = self.lab_nodes[pod.node_index].cni();
            if let Err(e) = node_cni.runtime.del(&node_cni.network, &pod.attachment) {
                tracing::warn!("{e}");
            }
        }
        if let Some(mut gateway) = self.http_gateway.lock().unwrap_or_else(|e| e.into_inner()).take() {
            gateway.stop();
        }
        if let Some((mut monitor, responders)) = self.health.lock().unwrap_or_else(|e| e.into_inner()).take() {
            monitor.stop();
            for mut responder in responders {
                let _ = responder.kill();
                let _ = responder.wait();
            }
        }
        if let Some(mut echo) = self.echo_server.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = echo.kill();
            let _ = echo.wait();
        }
        let removed = gc::remove_cluster(&self.info.cluster);
        cleanup::unregister(&self.info.cluster);
        removed.map(drop)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            tracing::error!("failed to remove lab cluster {}: {e}; run `cargo xtask gc`", self.info.cluster);
        }
    }
}

/// Runs a profile's `onInstall` program on `node` (in its network namespace), as a
/// DaemonSet's install container runs when the CNI is installed or upgraded there.
fn run_on_install(program: &std::path::Path, node: &LabNode) -> Result<()> {
    exec_in_netns(&node.netns, program, std::iter::empty())?
        .stdout_of_success(&format!("{} (onInstall) on node {}", program.display(), node.node.name))
        .map(drop)
}

/// Where a node's plugins find `/sys/fs/bpf`: its own bpffs, or the cluster's one when the
/// profile shares it (see [`BpfFilesystem`](crate::cni::BpfFilesystem)).
fn bpffs_of(cni: &CniProfile, cluster: &str, node_state: &std::path::Path) -> PathBuf {
    match cni.bpffs {
        crate::cni::BpfFilesystem::PerNode => node_state.join("bpffs"),
        crate::cni::BpfFilesystem::Shared => runs::state_dir(cluster).join("bpffs-shared"),
    }
}

/// The bridge the conflist's bridge plugin attaches pods to.
/// `CNI_PATH` when set, else the profile's plugin directories, `{harness-binaries}` being
/// where the probe (and this build's other binaries) are.
fn plugin_dirs_or(profile: &[PathBuf], probe: &std::path::Path) -> Vec<PathBuf> {
    match std::env::var_os("CNI_PATH") {
        Some(paths) => std::env::split_paths(&paths).collect(),
        None => profile.iter().map(|dir| crate::cni::resolve_plugin_dir(dir, probe.parent().unwrap_or(probe))).collect(),
    }
}

/// The probe binary: `CNI_PROBE`, or next to the running test binary as cargo lays them out
/// (this repository's suites: the probe is one of its binaries), or, in a suite binary of a
/// crate that depends on the harness (a vendor's), that binary itself under the name
/// `cni-probe` ([`crate::tools::probe_of_this_suite`]).
fn find_probe() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("CNI_PROBE") {
        return Ok(path.into());
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let candidates: Vec<PathBuf> = exe.ancestors().skip(1).take(2).map(|dir| dir.join("cni-probe")).collect();
    if let Some(found) = candidates.iter().find(|c| c.is_file()) {
        return Ok(found.clone());
    }
    match crate::tools::probe_of_this_suite() {
        Some(probe) => probe,
        None => Err(HarnessError::MissingProbe { searched: candidates.iter().map(|c| c.display().to_string()).collect::<Vec<_>>().join(", ") }),
    }
}

/// Runs `program args` in network namespace `netns`; what it printed and how it exited.
fn exec_in_netns<'a>(netns: &str, program: &std::path::Path, args: impl IntoIterator<Item = &'a str>) -> Result<crate::model::ExecOutput> {
    let args: Vec<&str> = args.into_iter().collect();
    let output = Command::new("ip")
        .args(["netns", "exec", netns])
        .arg(program)
        .args(&args)
        .output()
        .map_err(|e| HarnessError::Command { command: format!("{} {} in {netns}", program.display(), args.join(" ")), detail: e.to_string() })?;
    Ok(crate::model::ExecOutput::from_output(&output))
}

/// The node's own conflist. The vendor's config is theirs: its placeholders are filled in,
/// and a `host-local` section that names no range at all (neither `subnet` nor `ranges`)
/// is given the node's pod range, as a node's configuration carries it; nothing the vendor
/// wrote is deleted or rewritten. (The range also reaches plugins as the `ipRanges`
/// capability; IPAM state goes to the node's own /var/lib/cni.)
fn fill_in_node_network(network: &mut NetworkConfigList, placeholders: &crate::cni::runtime::NodePlaceholders) {
    placeholders.fill_in(network);
    for plugin in &mut network.plugins {
        let Some(ipam) = plugin.get_mut("ipam").and_then(serde_json::Value::as_object_mut) else { continue };
        if ipam.get("type").and_then(serde_json::Value::as_str) == Some("host-local") && !ipam.contains_key("subnet") && !ipam.contains_key("ranges") {
            ipam.insert("ranges".into(), serde_json::json!([[{ "subnet": placeholders.node_pod_cidr.to_string() }]]));
        }
    }
}

/// How much of a plugin's log a bundle keeps: its end, where a failure is.
const LOG_BYTES: usize = 64 * 1024;

/// The last `limit` bytes of `text` (from a line's start), saying what was left out.
fn last_bytes(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_owned();
    }
    let mut start = text.len() - limit;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let from_a_line = text[start..].find('\n').map_or(start, |i| start + i + 1);
    format!("[the first {from_a_line} of {} bytes left out]\n{}", text.len(), &text[from_a_line..])
}

/// The node agent's NAT: egress SNAT first, then masquerade for pod traffic leaving the cluster.
fn node_nat_rules(pod_cidr: Ipv4Net, pod_subnet: Ipv4Net, masquerade: bool) -> String {
    let mut rules = String::from("*nat\n:LAB-EGRESS - [0:0]\n:LAB-MASQUERADE - [0:0]\n-A POSTROUTING -j LAB-EGRESS\n-A POSTROUTING -j LAB-MASQUERADE\n");
    if masquerade {
        rules.push_str(&format!("-A LAB-MASQUERADE -s {pod_cidr} ! -d {pod_subnet} -o eth0 -j MASQUERADE\n"));
    }
    rules.push_str("COMMIT\n");
    rules
}

/// Starts the probe's echo server in `netns` under `name` and waits for it to be bound.
fn start_probe_server(netns: &str, probe: &std::path::Path, name: &str, port: u16) -> Result<Child> {
    let listen = format!("0.0.0.0:{port}");
    let command = format!("cni-probe serve --listen {listen} in {netns}");
    let mut child = Command::new("ip")
        .args(["netns", "exec", netns])
        .arg(probe)
        .args(["serve", "--listen", &listen, "--name", name])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| HarnessError::Command { command: command.clone(), detail: e.to_string() })?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let _ = ready_tx.send(lines.next().and_then(|l| l.ok()));
        // Keep draining so the server never blocks on a full pipe.
        for _ in lines {}
    });
    match ready_rx.recv_timeout(Duration::from_secs(10)) {
        Ok(Some(line)) if line.starts_with("listening on") => Ok(child),
        outcome => {
            let _ = child.kill();
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = pipe.read_to_string(&mut stderr);
            }
            let _ = child.wait();
            let detail = match outcome {
                Err(_) => "not listening after 10s".to_owned(),
                _ => format!("exited before listening: {}", stderr.trim()),
            };
            Err(HarnessError::Command { command, detail })
        }
    }
}
