//! CNI profiles: everything that differs between network plugins lives here, nowhere else.

pub mod runtime;

/// A capability a scenario may need from the CNI (and its provider).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// Selected pods leave the cluster with an egress IP held by a gateway node.
    EgressGateway,
}

impl Feature {
    pub fn name(self) -> &'static str {
        match self {
            Feature::EgressGateway => "egress gateway",
        }
    }
}

/// How a CNI is brought into a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installation {
    /// Reference plugin binaries run by the harness as the node's container runtime,
    /// with this conflist (relative to `fixtures/`).
    ReferencePlugins { conflist: &'static str },
}

/// A network plugin under test: its name, what it can do and how it is installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniProfile {
    pub name: &'static str,
    pub features: &'static [Feature],
    pub installation: Installation,
}

impl CniProfile {
    pub fn has(&self, feature: Feature) -> bool {
        self.features.contains(&feature)
    }
}

/// The CNI reference plugins (bridge + host-local, chained with tuning) as Debian ships them,
/// with the lab's reference egress gateway: policy routing over VXLAN to a gateway node
/// that SNATs to the egress IP.
pub fn reference() -> CniProfile {
    CniProfile {
        name: "reference",
        features: &[Feature::EgressGateway],
        installation: Installation::ReferencePlugins { conflist: "cni/reference/10-lab.conflist" },
    }
}
