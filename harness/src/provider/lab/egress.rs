//! The lab's reference egress gateway: how an egress policy becomes datapath state.
//!
//! For each selected pod on a node other than the gateway: a policy route on the pod's
//! node (`ip rule from <pod> lookup <table>`, default via a VXLAN to the gateway). On the
//! gateway node: the egress IP on its underlay interface and `SNAT --to-source <egress
//! IP>` for the pod's traffic. This is the shape of Antrea's and Cilium's gateways,
//! without their agents; faults from [`LabFault`] break single parts of it.

use std::collections::HashSet;
use std::net::IpAddr;

use super::{addressing, shell, Lab, LabFault};
use crate::error::{HarnessError, Result};
use crate::model::{EgressPolicy, EgressStatus, Labels, Pod};

struct RealizedPolicy {
    policy: EgressPolicy,
    gateway: usize,
    gateway_name: String,
    /// What the gateway SNATs to: the egress IP, unless a fault says otherwise.
    snat_to: IpAddr,
}

/// The egress state of one lab cluster.
#[derive(Default)]
pub struct EgressGateway {
    policies: Vec<RealizedPolicy>,
    tunnels: HashSet<(usize, usize)>,
    /// (node, source) pairs that have a policy route.
    routes: HashSet<(usize, String)>,
    /// (gateway, source) pairs that have an SNAT rule.
    snat_rules: HashSet<(usize, String)>,
    strays: usize,
}

impl EgressGateway {
    /// Realizes `policy` for the pods already running, as an egress controller would.
    pub fn apply(&mut self, lab: &Lab, policy: &EgressPolicy, pods: &[(Pod, usize, Labels)]) -> Result<()> {
        let gateway = lab
            .lab_nodes
            .iter()
            .position(|n| policy.gateway_node_selector.matches(&n.node.labels))
            .ok_or_else(|| HarnessError::NotFound {
                what: "node".into(),
                wanted: format!("the gateway node selector {:?} of egress policy {}", policy.gateway_node_selector.match_labels, policy.name),
            })?;
        let snat_to = if lab.faults.contains(&LabFault::WrongEgressIp) {
            self.strays += 1;
            IpAddr::V4(addressing::stray_address(self.strays))
        } else {
            policy.egress_ip
        };
        let gateway_netns = &lab.lab_nodes[gateway].netns;
        let mut addresses = vec![format!("addr add {}/32 dev eth0", policy.egress_ip)];
        if snat_to != policy.egress_ip {
            addresses.push(format!("addr add {snat_to}/32 dev eth0"));
        }
        shell::ip_batch(Some(gateway_netns), &addresses)?;
        self.policies.retain(|p| p.policy.name != policy.name);
        let gateway_name = lab.lab_nodes[gateway].node.name.clone();
        self.policies.push(RealizedPolicy { policy: policy.clone(), gateway, gateway_name, snat_to });
        let realized = self.policies.len() - 1;
        for (pod, node, namespace_labels) in pods {
            if selects(lab, policy, pod, namespace_labels) {
                self.program(lab, realized, pod, *node)?;
            }
        }
        Ok(())
    }

    /// Programs a new pod for every policy that selects it.
    pub fn admit_pod(&mut self, lab: &Lab, pod: &Pod, node: usize, namespace_labels: &Labels) -> Result<()> {
        let selecting: Vec<usize> = (0..self.policies.len()).filter(|&i| selects(lab, &self.policies[i].policy, pod, namespace_labels)).collect();
        selecting.into_iter().try_for_each(|i| self.program(lab, i, pod, node))
    }

    /// The status a CNI would report: realized, with the node carrying the egress IP.
    pub fn status(&self, policy: &str) -> Option<EgressStatus> {
        let realized = self.policies.iter().find(|p| p.policy.name == policy)?;
        Some(EgressStatus { egress_node: realized.gateway_name.clone(), egress_ip: realized.policy.egress_ip })
    }

    fn program(&mut self, lab: &Lab, realized: usize, pod: &Pod, node: usize) -> Result<()> {
        let (gateway, snat_to) = (self.policies[realized].gateway, self.policies[realized].snat_to);
        let source = format!("{}/32", pod.address);
        if node != gateway {
            self.ensure_tunnel(lab, node, gateway)?;
            let table = addressing::tunnel(node, gateway).table;
            if !lab.faults.contains(&LabFault::PolicyRouteMissing) && self.routes.insert((node, source.clone())) {
                shell::ip_batch(Some(&lab.lab_nodes[node].netns), &[format!("rule add from {source} lookup {table} pref 100")])?;
            }
        }
        if !lab.faults.contains(&LabFault::GatewaySnatMissing) && self.snat_rules.insert((gateway, source.clone())) {
            let snat_to = snat_to.to_string();
            shell::in_netns(
                &lab.lab_nodes[gateway].netns,
                "iptables",
                &["-t", "nat", "-A", "LAB-EGRESS", "-s", &source, "-o", "eth0", "-j", "SNAT", "--to-source", &snat_to],
                None,
            )?;
        }
        Ok(())
    }

    fn ensure_tunnel(&mut self, lab: &Lab, node: usize, gateway: usize) -> Result<()> {
        if !self.tunnels.insert((node, gateway)) {
            return Ok(());
        }
        let tunnel = addressing::tunnel(node, gateway);
        let (node_address, gateway_address) = (lab.lab_nodes[node].node.address, lab.lab_nodes[gateway].node.address);
        let end = |device: &str, local: IpAddr, remote: IpAddr, address: ipnet::Ipv4Net| {
            vec![
                format!("link add {device} type vxlan id {} local {local} remote {remote} dstport 4789 dev eth0", tunnel.vni),
                format!("link set {device} mtu 1500 up"),
                format!("addr add {address} dev {device}"),
            ]
        };
        let mut node_side = end(&tunnel.node_device, node_address, gateway_address, tunnel.node_side);
        node_side.push(format!("route add default via {} dev {} table {}", tunnel.gateway_side.addr(), tunnel.node_device, tunnel.table));
        shell::ip_batch(Some(&lab.lab_nodes[node].netns), &node_side)?;
        shell::ip_batch(Some(&lab.lab_nodes[gateway].netns), &end(&tunnel.gateway_device, gateway_address, node_address, tunnel.gateway_side))
    }
}

/// Whether the gateway takes `pod` for `policy`: the policy's selectors, unless a fault
/// makes it ignore the pod selector.
fn selects(lab: &Lab, policy: &EgressPolicy, pod: &Pod, namespace_labels: &Labels) -> bool {
    if lab.faults.contains(&LabFault::PodSelectorIgnored) {
        return policy.namespace_selector.matches(namespace_labels);
    }
    policy.selects(pod, namespace_labels)
}
