//! Faults the lab can inject into its own datapath, so each suite can prove that its
//! assertions catch them. `CNICONF_LAB_FAULTS=gateway-snat-missing,...` injects them by hand.

use crate::error::{HarnessError, Result};

/// One deliberate breakage of the lab datapath.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LabFault {
    /// Nodes do not masquerade pod traffic leaving the cluster.
    NodeMasqueradeOff,
    /// The gateway node forwards selected pods' traffic without the SNAT to the egress IP.
    GatewaySnatMissing,
    /// The gateway SNATs to an address other than the policy's egress IP.
    WrongEgressIp,
    /// The policy route that steers a selected pod's traffic to the gateway is missing.
    PolicyRouteMissing,
    /// The egress gateway ignores the policy's pod selector and takes every pod of the
    /// namespaces the policy selects.
    PodSelectorIgnored,
    /// The gateway ignores the policy's excluded destinations: it SNATs traffic to them too.
    ExcludedCidrsIgnored,
    /// The egress controller never moves an egress IP off a failed node.
    FailoverOff,
    /// The egress controller moves an egress IP off a failed node only after
    /// [`SLOW_FAILOVER_DELAY`](super::egress::SLOW_FAILOVER_DELAY) more.
    SlowFailover,
    /// Nothing listens on the external echo port.
    ExternalEchoDown,
    /// The external host drops everything it receives.
    ExternalUnreachable,
    /// The gateway swaps the weights of a route's first two backends.
    WrongWeights,
    /// The last backend of every route stops answering once the route is applied.
    BackendDown,
    /// The gateway ignores RequestMirror filters.
    MirroringOff,
    /// Every route change is served one version late (a new route not at all).
    StaleConfig,
    /// A Service's random endpoint rules all use probability 1/n instead of 1/(n-i).
    UniformProbabilities,
    /// Every worker's NIC sends at most 1 Gbit/s (a tbf qdisc), as a slow or shared link.
    NicRateLimit,
    /// Every node's FORWARD chain starts with 40,000 rules that match and do nothing, as
    /// a datapath that grew its ruleset per Service or policy does.
    NoOpForwardingRules,
    /// Every pod's veth sends towards its pod at most 1 Gbit/s (a tbf on the node's end),
    /// as a per-pod bandwidth limit would: traffic to pods is slowed, traffic from pods
    /// to outside the cluster and between nodes is not.
    PodVethRateLimit,
}

pub const FAULTS_VARIABLE: &str = "CNICONF_LAB_FAULTS";

impl LabFault {
    /// The faults of the egress datapath (the others break the HTTP Gateway).
    pub const EGRESS: [LabFault; 10] = [
        LabFault::NodeMasqueradeOff,
        LabFault::GatewaySnatMissing,
        LabFault::WrongEgressIp,
        LabFault::PolicyRouteMissing,
        LabFault::PodSelectorIgnored,
        LabFault::ExcludedCidrsIgnored,
        LabFault::FailoverOff,
        LabFault::SlowFailover,
        LabFault::ExternalEchoDown,
        LabFault::ExternalUnreachable,
    ];

    /// The faults of the lab's HTTP Gateway and Service load balancing.
    pub const GATEWAY: [LabFault; 5] =
        [LabFault::WrongWeights, LabFault::BackendDown, LabFault::MirroringOff, LabFault::StaleConfig, LabFault::UniformProbabilities];

    /// The faults that slow the datapath down without breaking it.
    pub const PERFORMANCE: [LabFault; 3] = [LabFault::NicRateLimit, LabFault::NoOpForwardingRules, LabFault::PodVethRateLimit];

    /// Every fault.
    pub fn all() -> impl Iterator<Item = LabFault> {
        Self::EGRESS.into_iter().chain(Self::GATEWAY).chain(Self::PERFORMANCE)
    }

    /// The rate `NicRateLimit` leaves a worker's NIC, and `PodVethRateLimit` a pod's veth,
    /// as tc writes it.
    pub const NIC_RATE: &'static str = "1gbit";

    /// The tc arguments of a rate-limiting fault on `device`.
    pub fn rate_limit(device: &str) -> [&str; 12] {
        ["qdisc", "replace", "dev", device, "root", "tbf", "rate", Self::NIC_RATE, "burst", "256kb", "latency", "50ms"]
    }

    /// How many rules `NoOpForwardingRules` puts in each node's FORWARD chain.
    pub const NO_OP_RULES: usize = 40_000;

    /// The iptables-restore input of `NoOpForwardingRules`: rules without a target match
    /// every packet, count it and let it go on to the next.
    pub fn no_op_forwarding_rules() -> String {
        format!("*filter\n{}COMMIT\n", "-I FORWARD\n".repeat(Self::NO_OP_RULES))
    }

    pub fn name(self) -> &'static str {
        match self {
            LabFault::NodeMasqueradeOff => "node-masquerade-off",
            LabFault::GatewaySnatMissing => "gateway-snat-missing",
            LabFault::WrongEgressIp => "wrong-egress-ip",
            LabFault::PolicyRouteMissing => "policy-route-missing",
            LabFault::PodSelectorIgnored => "pod-selector-ignored",
            LabFault::ExcludedCidrsIgnored => "excluded-cidrs-ignored",
            LabFault::FailoverOff => "failover-off",
            LabFault::SlowFailover => "slow-failover",
            LabFault::ExternalEchoDown => "external-echo-down",
            LabFault::ExternalUnreachable => "external-unreachable",
            LabFault::WrongWeights => "wrong-weights",
            LabFault::BackendDown => "backend-down",
            LabFault::MirroringOff => "mirroring-off",
            LabFault::StaleConfig => "stale-config",
            LabFault::UniformProbabilities => "uniform-probabilities",
            LabFault::NicRateLimit => "nic-rate-limit",
            LabFault::NoOpForwardingRules => "no-op-forwarding-rules",
            LabFault::PodVethRateLimit => "pod-veth-rate-limit",
        }
    }

    /// Parses a comma-separated list, naming the variable and the known faults on error.
    pub fn parse_list(text: &str) -> Result<Vec<LabFault>> {
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|name| {
                Self::all().find(|f| f.name() == name).ok_or_else(|| HarnessError::UnknownFault {
                    name: name.to_owned(),
                    variable: FAULTS_VARIABLE.into(),
                    expected: Self::all().map(LabFault::name).collect::<Vec<_>>().join(", "),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_names_round_trip() {
        let names = LabFault::all().map(LabFault::name).collect::<Vec<_>>().join(",");
        assert_eq!(LabFault::parse_list(&names).unwrap(), LabFault::all().collect::<Vec<_>>());
    }

    #[test]
    fn an_unknown_fault_lists_the_known_ones() {
        let error = LabFault::parse_list("snat-off").unwrap_err().to_string();
        assert!(error.contains("`snat-off`") && error.contains("gateway-snat-missing"), "{error}");
    }
}
