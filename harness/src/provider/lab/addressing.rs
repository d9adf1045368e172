//! The lab's address plan, shaped like a kind cluster on Docker's `kind` network.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// The underlay: kind's Docker network.
pub const UNDERLAY_PREFIX: u8 = 16;
const UNDERLAY_BASE: [u8; 3] = [172, 18, 0];

/// The n-th node's address, as Docker hands them out (.2, .3, ...).
pub fn node_address(index: usize) -> Ipv4Addr {
    host(2 + index as u8)
}

/// The Docker network's gateway (the host, on kind): every node's default route.
pub fn underlay_gateway() -> Ipv4Addr {
    host(1)
}

/// The external host: a peer container on the same network.
pub fn external_address() -> Ipv4Addr {
    host(100)
}

pub const ECHO_PORT: u16 = 8080;
/// A port on the external host where nothing listens.
/// Where nothing listens on the external host (the probe's hold echo is on
/// [`cni_probe::hold::HOLD_PORT`], elsewhere).
pub const CLOSED_PORT: u16 = 8081;

/// Egress IPs the lab hands to policies, one per policy: 172.18.0.200 to .239.
pub fn egress_ip(index: usize) -> Option<Ipv4Addr> {
    (index < 40).then(|| host(200 + index as u8))
}

/// Addresses that belong to no policy, for the wrong-egress-IP fault: 172.18.0.240 on.
pub fn stray_address(index: usize) -> Ipv4Addr {
    host(240 + (index % 15) as u8)
}

fn host(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(UNDERLAY_BASE[0], UNDERLAY_BASE[1], UNDERLAY_BASE[2], last)
}

/// The n-th node's pod CIDR: a /24 of the cluster's pod subnet, as kube-controller-manager assigns them.
pub fn pod_cidr(pod_subnet: Ipv4Net, index: usize) -> Option<Ipv4Net> {
    pod_subnet.subnets(24).ok()?.nth(index)
}

/// The VXLAN between a node and an egress gateway node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tunnel {
    pub vni: u32,
    /// The link's /30: node side .1, gateway side .2.
    pub node_side: Ipv4Net,
    pub gateway_side: Ipv4Net,
    /// The device on the node, leading to the gateway.
    pub node_device: String,
    /// The device on the gateway, coming from the node.
    pub gateway_device: String,
    /// The routing table on the node that sends traffic to this gateway.
    pub table: u32,
}

pub fn tunnel(node: usize, gateway: usize) -> Tunnel {
    let pair = (node * 16 + gateway) as u8;
    let side = |last| Ipv4Net::new(Ipv4Addr::new(100, 64, pair, last), 30).expect("valid prefix");
    Tunnel {
        vni: 1000 + pair as u32,
        node_side: side(1),
        gateway_side: side(2),
        node_device: format!("egress{gateway}"),
        gateway_device: format!("egress-from{node}"),
        table: 100 + gateway as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_get_pod_cidrs_in_order() {
        let subnet: Ipv4Net = "10.244.0.0/16".parse().unwrap();
        assert_eq!(pod_cidr(subnet, 0).unwrap().to_string(), "10.244.0.0/24");
        assert_eq!(pod_cidr(subnet, 2).unwrap().to_string(), "10.244.2.0/24");
    }

    #[test]
    fn tunnels_between_different_pairs_do_not_collide() {
        let (a, b) = (tunnel(1, 2), tunnel(0, 2));
        assert_ne!(a.vni, b.vni);
        assert_ne!(a.node_side, b.node_side);
        assert_eq!(a.table, b.table, "one table per gateway");
        assert!(a.gateway_device.len() <= 15 && a.node_device.len() <= 15, "interface names fit IFNAMSIZ");
    }

    #[test]
    fn egress_ips_do_not_meet_stray_addresses() {
        assert_eq!(egress_ip(39).unwrap().to_string(), "172.18.0.239");
        assert!(egress_ip(40).is_none());
        assert_eq!(stray_address(0).to_string(), "172.18.0.240");
    }
}
