//! The lab's reference egress gateway: how an egress policy becomes datapath state, and
//! how its egress IP fails over when the node holding it fails.
//!
//! For each selected pod on a node other than the gateway: a policy route on the pod's
//! node (`ip rule from <pod> lookup <table>`, default via a VXLAN to the gateway), and
//! before it one rule per excluded destination that keeps the main table. On the gateway
//! node: the egress IP on its underlay interface and `SNAT --to-source <egress IP>` for
//! the pod's traffic, after a `RETURN` per excluded destination. The gateway is the first
//! node the policy's node selector selects (Antrea's `ExternalIPPool.nodeSelector`); when
//! [`HealthMonitor`] finds it unreachable, the IP moves to the next live one, announced by
//! a gratuitous ARP, and every selected pod is steered there. This is the shape of
//! Antrea's and Cilium's gateways, without their agents; faults from [`LabFault`] break
//! single parts of it.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{addressing, shell, LabFault};
use crate::error::{HarnessError, Result};
use crate::model::{EgressPolicy, EgressStatus, Labels, Node, Pod};

/// A node as the gateway sees it: where its datapath lives.
#[derive(Debug, Clone)]
pub struct GatewayNode {
    pub netns: String,
    pub node: Node,
}

struct RealizedPolicy {
    policy: EgressPolicy,
    /// The nodes its selector selects, in the cluster's order: the gateway and its standbys.
    candidates: Vec<usize>,
    gateway: usize,
    /// What the gateway SNATs to: the egress IP, unless a fault says otherwise.
    snat_to: IpAddr,
    /// The selected pods and their nodes.
    members: Vec<(Pod, usize)>,
}

/// The egress state of one lab cluster.
pub struct EgressGateway {
    nodes: Vec<GatewayNode>,
    faults: Vec<LabFault>,
    policies: Vec<RealizedPolicy>,
    tunnels: HashSet<(usize, usize)>,
    /// (node, source) pairs with a policy route, and the table it looks up.
    routes: Vec<(usize, String, u32)>,
    /// (node, rule) pairs already written: excluded-destination rules and SNAT rules.
    written: HashSet<(usize, String)>,
    /// (node, address) pairs: egress IPs put on a node's interface.
    holding: HashSet<(usize, IpAddr)>,
    /// Nodes the health monitor finds unreachable.
    down: HashSet<usize>,
    strays: usize,
}

impl EgressGateway {
    /// What the agent holds now, for a failed trial's bundle: each policy's gateway and
    /// standbys, what it SNATs to and whom; the nodes found down; the rules it wrote.
    pub fn describe(&self) -> String {
        let name = |i: &usize| self.nodes.get(*i).map_or_else(|| format!("node #{i}"), |n| n.node.name.clone());
        let mut out = String::new();
        for p in &self.policies {
            let members = p.members.iter().map(|(pod, node)| format!("{}/{} on {}", pod.namespace, pod.name, name(node))).collect::<Vec<_>>().join(", ");
            out.push_str(&format!(
                "policy {}: egress IP {} on {} (standbys: {}), SNAT to {}, members: {members}\n",
                p.policy.name,
                p.policy.egress_ip,
                name(&p.gateway),
                p.candidates.iter().filter(|c| **c != p.gateway).map(name).collect::<Vec<_>>().join(", "),
                p.snat_to
            ));
        }
        out.push_str(&format!("nodes found down: {}\n", self.down.iter().map(name).collect::<Vec<_>>().join(", ")));
        let mut written: Vec<String> = self.written.iter().map(|(node, rule)| format!("{}: {rule}", name(node))).collect();
        written.sort();
        out.push_str(&format!("rules written:\n  {}\n", written.join("\n  ")));
        out
    }

    pub fn new(nodes: Vec<GatewayNode>, faults: Vec<LabFault>) -> Self {
        Self {
            nodes,
            faults,
            policies: vec![],
            tunnels: HashSet::new(),
            routes: vec![],
            written: HashSet::new(),
            holding: HashSet::new(),
            down: HashSet::new(),
            strays: 0,
        }
    }

    /// Realizes `policy` for the pods already running, as an egress controller would.
    pub fn apply(&mut self, policy: &EgressPolicy, pods: &[(Pod, usize, Labels)]) -> Result<()> {
        let candidates: Vec<usize> = (0..self.nodes.len()).filter(|&i| policy.gateway_node_selector.matches(&self.nodes[i].node.labels)).collect();
        let gateway = candidates.iter().copied().find(|i| !self.down.contains(i)).ok_or_else(|| HarnessError::NotFound {
            what: "node".into(),
            wanted: format!("the gateway node selector {:?} of egress policy {} (a live one)", policy.gateway_node_selector.match_labels, policy.name),
        })?;
        let snat_to = if self.faults.contains(&LabFault::WrongEgressIp) {
            self.strays += 1;
            IpAddr::V4(addressing::stray_address(self.strays))
        } else {
            policy.egress_ip
        };
        self.policies.retain(|p| p.policy.name != policy.name);
        self.policies.push(RealizedPolicy { policy: policy.clone(), candidates, gateway, snat_to, members: vec![] });
        let realized = self.policies.len() - 1;
        self.hold_egress_ip(realized, gateway)?;
        for (pod, node, namespace_labels) in pods {
            if self.selects(policy, pod, namespace_labels) {
                self.policies[realized].members.push((pod.clone(), *node));
                self.program(realized, pod, *node)?;
            }
        }
        Ok(())
    }

    /// Programs a new pod for every policy that selects it.
    pub fn admit_pod(&mut self, pod: &Pod, node: usize, namespace_labels: &Labels) -> Result<()> {
        let selecting: Vec<usize> = (0..self.policies.len()).filter(|&i| self.selects(&self.policies[i].policy, pod, namespace_labels)).collect();
        for i in selecting {
            self.policies[i].members.push((pod.clone(), node));
            self.program(i, pod, node)?;
        }
        Ok(())
    }

    /// The status a CNI would report: realized, with the node carrying the egress IP.
    pub fn status(&self, policy: &str) -> Option<EgressStatus> {
        let realized = self.policies.iter().find(|p| p.policy.name == policy)?;
        Some(EgressStatus { egress_node: self.nodes[realized.gateway].node.name.clone(), egress_ip: realized.policy.egress_ip })
    }

    /// Whether some policy could move its egress IP (it selects more than one node).
    pub fn has_standbys(&self) -> bool {
        self.policies.iter().any(|p| p.candidates.len() > 1)
    }

    /// `node` stopped answering: every policy it is the gateway of moves to its next live
    /// candidate. Nothing is done on the failed node itself (it cannot be reached).
    pub fn node_failed(&mut self, node: usize) -> Result<()> {
        self.down.insert(node);
        for realized in 0..self.policies.len() {
            let policy = &self.policies[realized];
            if policy.gateway != node {
                continue;
            }
            let Some(next) = policy.candidates.iter().copied().find(|c| !self.down.contains(c)) else {
                tracing::warn!("egress policy {}: no live node left in its pool", policy.policy.name);
                continue;
            };
            tracing::info!(
                "egress policy {}: node {} failed, its egress IP moves to {}",
                policy.policy.name,
                self.nodes[node].node.name,
                self.nodes[next].node.name
            );
            self.policies[realized].gateway = next;
            self.hold_egress_ip(realized, next)?;
            for (pod, on) in self.policies[realized].members.clone() {
                if on != node {
                    self.program(realized, &pod, on)?;
                }
            }
        }
        Ok(())
    }

    /// `node` answers again: it gives up the egress IPs it no longer carries, as an agent
    /// that rejoins its cluster does (two holders would answer ARP for one address).
    pub fn node_back(&mut self, node: usize) -> Result<()> {
        self.down.remove(&node);
        let stale: Vec<IpAddr> = self
            .holding
            .iter()
            .filter(|(n, ip)| *n == node && !self.policies.iter().any(|p| p.gateway == node && p.policy.egress_ip == *ip))
            .map(|(_, ip)| *ip)
            .collect();
        for ip in stale {
            shell::ip_batch(Some(&self.nodes[node].netns), &[format!("addr del {ip}/32 dev eth0")])?;
            self.holding.remove(&(node, ip));
        }
        Ok(())
    }

    /// Puts the policy's egress IP (and a fault's stray SNAT address) on `gateway`, and
    /// announces it with a gratuitous ARP, so hosts on the underlay send replies there.
    fn hold_egress_ip(&mut self, realized: usize, gateway: usize) -> Result<()> {
        let (egress_ip, snat_to) = (self.policies[realized].policy.egress_ip, self.policies[realized].snat_to);
        let netns = self.nodes[gateway].netns.clone();
        for ip in [egress_ip, snat_to] {
            if self.holding.insert((gateway, ip)) {
                shell::ip_batch(Some(&netns), &[format!("addr add {ip}/32 dev eth0")])?;
                shell::in_netns(&netns, "arping", &["-U", "-q", "-c", "1", "-I", "eth0", &ip.to_string()], None)?;
            }
        }
        Ok(())
    }

    /// Steers `pod` (on `node`) through the policy's current gateway, and SNATs it there.
    fn program(&mut self, realized: usize, pod: &Pod, node: usize) -> Result<()> {
        let (gateway, snat_to) = (self.policies[realized].gateway, self.policies[realized].snat_to);
        let excluded: Vec<String> = match self.faults.contains(&LabFault::ExcludedCidrsIgnored) {
            true => vec![],
            false => self.policies[realized].policy.excluded_cidrs.iter().map(ToString::to_string).collect(),
        };
        let source = format!("{}/32", pod.address);
        if node != gateway {
            self.ensure_tunnel(node, gateway)?;
            let mut rules: Vec<String> = excluded
                .iter()
                .map(|to| format!("rule add from {source} to {to} lookup main pref 99"))
                .filter(|rule| self.written.insert((node, rule.clone())))
                .collect();
            let table = addressing::tunnel(node, gateway).table;
            let existing = self.routes.iter().position(|(n, s, _)| *n == node && *s == source);
            match existing.map(|i| self.routes[i].2) {
                Some(current) if current == table => {}
                Some(previous) => {
                    rules.push(format!("rule del from {source} lookup {previous} pref 100"));
                    rules.push(format!("rule add from {source} lookup {table} pref 100"));
                    self.routes[existing.expect("found")].2 = table;
                }
                None if self.faults.contains(&LabFault::PolicyRouteMissing) => {}
                None => {
                    rules.push(format!("rule add from {source} lookup {table} pref 100"));
                    self.routes.push((node, source.clone(), table));
                }
            }
            if !rules.is_empty() {
                shell::ip_batch(Some(&self.nodes[node].netns), &rules)?;
            }
        }
        if !self.faults.contains(&LabFault::GatewaySnatMissing) {
            let snat_to = snat_to.to_string();
            let mut rules: Vec<Vec<&str>> = excluded.iter().map(|to| vec!["-t", "nat", "-I", "LAB-EGRESS", "-s", &source, "-d", to, "-j", "RETURN"]).collect();
            rules.push(vec!["-t", "nat", "-A", "LAB-EGRESS", "-s", &source, "-o", "eth0", "-j", "SNAT", "--to-source", &snat_to]);
            for rule in rules {
                if self.written.insert((gateway, rule.join(" "))) {
                    shell::in_netns(&self.nodes[gateway].netns, "iptables", &rule, None)?;
                }
            }
        }
        Ok(())
    }

    fn ensure_tunnel(&mut self, node: usize, gateway: usize) -> Result<()> {
        if !self.tunnels.insert((node, gateway)) {
            return Ok(());
        }
        let tunnel = addressing::tunnel(node, gateway);
        let (node_address, gateway_address) = (self.nodes[node].node.address, self.nodes[gateway].node.address);
        let end = |device: &str, local: IpAddr, remote: IpAddr, address: ipnet::Ipv4Net| {
            vec![
                format!("link add {device} type vxlan id {} local {local} remote {remote} dstport 4789 dev eth0", tunnel.vni),
                format!("link set {device} mtu 1500 up"),
                format!("addr add {address} dev {device}"),
            ]
        };
        let mut node_side = end(&tunnel.node_device, node_address, gateway_address, tunnel.node_side);
        node_side.push(format!("route add default via {} dev {} table {}", tunnel.gateway_side.addr(), tunnel.node_device, tunnel.table));
        shell::ip_batch(Some(&self.nodes[node].netns), &node_side)?;
        shell::ip_batch(Some(&self.nodes[gateway].netns), &end(&tunnel.gateway_device, gateway_address, node_address, tunnel.gateway_side))
    }

    /// Whether the gateway takes `pod` for `policy`: the policy's selectors, unless a fault
    /// makes it ignore the pod selector.
    fn selects(&self, policy: &EgressPolicy, pod: &Pod, namespace_labels: &Labels) -> bool {
        if self.faults.contains(&LabFault::PodSelectorIgnored) {
            return policy.namespace_selector.matches(namespace_labels);
        }
        policy.selects(pod, namespace_labels)
    }
}

/// How the egress controller tells a node is gone: a TCP connect to its health port from
/// the control plane, every [`HEALTH_EVERY`], each within [`HEALTH_TIMEOUT`]; this many
/// misses in a row make the node failed (about two seconds after its uplink is cut).
pub const MISSES_TO_FAIL: u32 = 3;
pub const HEALTH_EVERY: Duration = Duration::from_millis(200);
pub const HEALTH_TIMEOUT: Duration = Duration::from_millis(500);
/// Where each node answers the monitor (the kubelet's port on a real node).
pub const HEALTH_PORT: u16 = 10250;
/// How long `LabFault::SlowFailover` holds back a failover once the node is found failed.
pub const SLOW_FAILOVER_DELAY: Duration = Duration::from_secs(7);

/// The egress controller's watch over the gateway candidates: a thread in the control
/// plane node's network namespace.
pub struct HealthMonitor {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HealthMonitor {
    /// Watches `watched` (node index, health address) from `observer_netns`, telling
    /// `gateway` when a node fails and when it is back.
    pub fn start(gateway: Arc<Mutex<EgressGateway>>, observer_netns: &str, watched: Vec<(usize, SocketAddr)>, faults: &[LabFault]) -> Result<Self> {
        let namespace = std::fs::File::open(format!("/run/netns/{observer_netns}"))
            .map_err(|e| HarnessError::Command { command: format!("open /run/netns/{observer_netns}"), detail: e.to_string() })?;
        let stop = Arc::new(AtomicBool::new(false));
        let (off, slow) = (faults.contains(&LabFault::FailoverOff), faults.contains(&LabFault::SlowFailover));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("lab-egress-health".into())
            .spawn(move || {
                // This thread alone enters the control plane's network namespace.
                if let Err(e) = nix::sched::setns(namespace, nix::sched::CloneFlags::CLONE_NEWNET) {
                    tracing::error!("the lab's egress health monitor could not enter {e}");
                    return;
                }
                let mut misses = vec![0u32; watched.len()];
                let mut failed = vec![false; watched.len()];
                while !stopping.load(Ordering::SeqCst) {
                    for (slot, (node, address)) in watched.iter().enumerate() {
                        let answered = std::net::TcpStream::connect_timeout(address, HEALTH_TIMEOUT).is_ok();
                        misses[slot] = if answered { 0 } else { misses[slot] + 1 };
                        let outcome = match (answered, failed[slot]) {
                            (false, false) if misses[slot] >= MISSES_TO_FAIL && !off => {
                                failed[slot] = true;
                                if slow {
                                    std::thread::sleep(SLOW_FAILOVER_DELAY);
                                }
                                gateway.lock().unwrap_or_else(|e| e.into_inner()).node_failed(*node)
                            }
                            (true, true) => {
                                failed[slot] = false;
                                gateway.lock().unwrap_or_else(|e| e.into_inner()).node_back(*node)
                            }
                            _ => Ok(()),
                        };
                        if let Err(e) = outcome {
                            tracing::error!("the lab's egress controller: {e}");
                        }
                    }
                    std::thread::sleep(HEALTH_EVERY);
                }
            })
            .map_err(|e| HarnessError::Command { command: "starting the lab's egress health monitor".into(), detail: e.to_string() })?;
        Ok(Self { stop, thread: Some(thread) })
    }

    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for HealthMonitor {
    fn drop(&mut self) {
        self.stop();
    }
}
