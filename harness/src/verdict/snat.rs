//! Egress SNAT verdicts: was a pod's traffic seen outside with the expected source address?

use std::net::IpAddr;

use cni_probe::Observation;

use super::{Evidence, FailureReason, Verdict};
use crate::model::{Node, Pod};

/// What an address is, seen from one client pod. Golden files hold these, never addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressRole {
    /// The node the client pod runs on.
    OwnNode,
    /// Another node of the cluster.
    OtherNode,
    /// An egress IP of a policy.
    EgressIp,
    /// A pod's own address (no SNAT happened).
    Pod,
    /// None of the above.
    Unknown,
}

impl AddressRole {
    pub fn name(self) -> &'static str {
        match self {
            AddressRole::OwnNode => "own-node",
            AddressRole::OtherNode => "other-node",
            AddressRole::EgressIp => "egress-ip",
            AddressRole::Pod => "pod",
            AddressRole::Unknown => "unknown",
        }
    }
}

/// Everything a trial knows the addresses of, to name what an observed address is.
#[derive(Debug, Clone, Default)]
pub struct AddressBook {
    pub nodes: Vec<Node>,
    pub pods: Vec<Pod>,
    /// Egress IPs with the policy each belongs to.
    pub egress_ips: Vec<(IpAddr, String)>,
}

impl AddressBook {
    /// The role of `address` from `client`'s point of view, and a readable description.
    pub fn describe(&self, address: IpAddr, client: &Pod) -> (AddressRole, String) {
        if let Some(node) = self.nodes.iter().find(|n| n.address == address) {
            let role = if node.name == client.node { AddressRole::OwnNode } else { AddressRole::OtherNode };
            return (role, format!("{address}, node {}", node.name));
        }
        if let Some((_, policy)) = self.egress_ips.iter().find(|(ip, _)| *ip == address) {
            return (AddressRole::EgressIp, format!("{address}, egress IP of {policy}"));
        }
        if let Some(pod) = self.pods.iter().find(|p| p.address == address) {
            return (AddressRole::Pod, format!("{address}, pod {}/{}", pod.namespace, pod.name));
        }
        (AddressRole::Unknown, format!("{address}, not a node, pod or egress IP of this trial"))
    }
}

/// The source address a check expects, with where to look if it is not seen.
#[derive(Debug, Clone)]
pub struct ExpectedSource {
    pub address: IpAddr,
    pub role: AddressRole,
    pub description: String,
    pub look_at: String,
}

impl ExpectedSource {
    /// The client's own node: plain masquerade.
    pub fn node_of(client: &Pod, book: &AddressBook) -> Option<Self> {
        let node = book.nodes.iter().find(|n| n.name == client.node)?;
        Some(Self {
            address: node.address,
            role: AddressRole::OwnNode,
            description: format!("{}, node {}", node.address, node.name),
            look_at: format!("the masquerade rule for pod traffic on node {} (nat POSTROUTING)", node.name),
        })
    }

    /// The egress IP of a policy, carried by `gateway_node`.
    pub fn egress_ip(address: IpAddr, policy: &str, gateway_node: &str) -> Self {
        Self {
            address,
            role: AddressRole::EgressIp,
            description: format!("{address}, egress IP of {policy}"),
            look_at: format!("{policy}: the route from the pod's node to gateway node {gateway_node} and the SNAT there"),
        }
    }
}

const CHECK: &str = "source address seen by the external host";

/// Was `observation` (a request from `client` to an external echo) answered with the expected source?
pub fn source_address(expected: &ExpectedSource, observation: &Observation, client: &Pod, book: &AddressBook) -> Verdict {
    let expected_evidence = Evidence::new(expected.role.name(), expected.description.clone());
    let (observed, reason) = match observation {
        Observation::Answered { reply } => {
            let (role, detail) = book.describe(reply.client.ip(), client);
            let reason = (reply.client.ip() != expected.address).then_some(FailureReason::WrongSource);
            (Evidence::new(role.name(), detail), reason)
        }
        other => super::reach::unanswered(other),
    };
    Verdict {
        statistics: Vec::new(),
        counters: Vec::new(),
        figures: Vec::new(),
        check: CHECK.into(),
        subject: format!("pod {}/{}", client.namespace, client.name),
        passed: reason.is_none(),
        expected: expected_evidence,
        observed,
        reason,
        look_at: super::reach::look_at(client, observation, &expected.look_at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{labels, NodeRole};
    use cni_probe::EchoReply;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn book() -> AddressBook {
        let node = |name: &str, address| Node { name: name.into(), role: NodeRole::Worker, labels: labels([]), address: ip(address) };
        AddressBook {
            nodes: vec![node("worker", "172.18.0.3"), node("worker2", "172.18.0.4")],
            pods: vec![client()],
            egress_ips: vec![(ip("172.18.0.200"), "Egress egress-prod-web".into())],
        }
    }

    fn client() -> Pod {
        Pod { name: "web".into(), namespace: "prod".into(), labels: labels([]), node: "worker".into(), address: ip("10.244.1.2") }
    }

    fn seen_from(source: &str) -> Observation {
        Observation::Answered { reply: EchoReply { client: format!("{source}:40000").parse().unwrap(), server: "external".into(), path: "/".into() } }
    }

    fn egress() -> ExpectedSource {
        ExpectedSource::egress_ip(ip("172.18.0.200"), "Egress egress-prod-web", "worker2")
    }

    #[test]
    fn the_expected_source_passes() {
        let verdict = source_address(&egress(), &seen_from("172.18.0.200"), &client(), &book());
        assert!(verdict.passed, "{}", verdict.message());
        assert_eq!(verdict.observed.role, "egress-ip");
    }

    #[test]
    fn the_node_ip_where_the_egress_ip_was_expected_is_a_wrong_source() {
        let verdict = source_address(&egress(), &seen_from("172.18.0.3"), &client(), &book());
        assert_eq!(verdict.reason, Some(FailureReason::WrongSource));
        assert_eq!(verdict.observed.role, "own-node");
        let message = verdict.message();
        assert!(message.contains("expected egress-ip (172.18.0.200") && message.contains("observed own-node (172.18.0.3, node worker)"), "{message}");
    }

    #[test]
    fn an_unnatted_pod_address_is_named_as_the_pod() {
        let expected = ExpectedSource::node_of(&client(), &book()).unwrap();
        let verdict = source_address(&expected, &seen_from("10.244.1.2"), &client(), &book());
        assert_eq!((verdict.reason, verdict.observed.role.as_str()), (Some(FailureReason::WrongSource), "pod"));
    }

    #[test]
    fn a_stranger_address_is_unknown() {
        let verdict = source_address(&egress(), &seen_from("172.18.0.250"), &client(), &book());
        assert_eq!(verdict.observed.role, "unknown");
    }

    #[test]
    fn no_answer_is_not_a_wrong_source() {
        let timed_out = Observation::TimedOut { detail: "timeout".into() };
        let verdict = source_address(&egress(), &timed_out, &client(), &book());
        assert_eq!(verdict.reason, Some(FailureReason::TimedOut));
        assert!(
            verdict.look_at.starts_with("first pod prod/web") && verdict.look_at.ends_with("and the SNAT there"),
            "the pod's own network first, then the policy: {}",
            verdict.look_at
        );
        let refused = Observation::Refused { detail: "refused".into() };
        assert_eq!(source_address(&egress(), &refused, &client(), &book()).reason, Some(FailureReason::Refused));
    }
}
