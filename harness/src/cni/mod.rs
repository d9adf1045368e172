//! CNI profiles: everything that differs between network plugins lives here, nowhere else:
//! the pinned version, how it is installed and awaited, what it can do, and how the
//! scenarios' neutral egress policy becomes its own objects.

pub mod egress;
pub mod runtime;

use crate::gateway::{self, GatewayImplementation};

/// A capability a scenario may need from the CNI (and its provider).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// Selected pods leave the cluster with an egress IP held by a gateway node.
    EgressGateway,
    /// When the egress node fails, another node of the pool takes the egress IP over.
    EgressFailover,
    /// Traffic to destinations excluded from an egress policy keeps the node IP.
    EgressExcludedCidrs,
    /// A Gateway API implementation that splits HTTPRoute traffic by backend weights.
    GatewayWeights,
    /// The HTTPRoute RequestMirror filter.
    RequestMirror,
    /// LoadBalancer Services balanced across endpoints (kube-proxy or its replacement).
    LoadBalancerService,
}

impl Feature {
    /// Whether the Gateway API implementation, not the CNI, provides it.
    pub fn is_gateway_feature(self) -> bool {
        matches!(self, Feature::GatewayWeights | Feature::RequestMirror)
    }

    pub fn name(self) -> &'static str {
        match self {
            Feature::EgressGateway => "egress gateway",
            Feature::EgressFailover => "egress failover",
            Feature::EgressExcludedCidrs => "egress excluded CIDRs",
            Feature::GatewayWeights => "Gateway API weighted routes",
            Feature::RequestMirror => "Gateway API request mirroring",
            Feature::LoadBalancerService => "LoadBalancer Services",
        }
    }
}

/// How a CNI is brought into a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installation {
    /// Reference plugin binaries run by the harness as the node's container runtime,
    /// with this conflist (relative to `fixtures/`).
    ReferencePlugins { conflist: &'static str },
    /// A release manifest, applied with server-side apply; `{version}` is filled in.
    Manifest { url: &'static str },
    /// A Helm chart with values. The chart is named by `--repo <repo_url>` (or is an OCI
    /// reference when `repo_url` is empty), so the user's own Helm repositories are untouched.
    Helm { repo_url: &'static str, chart: &'static str, release: &'static str, namespace: &'static str, values: &'static [(&'static str, &'static str)] },
}

/// A workload of the CNI that must be ready before any scenario runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workload {
    pub kind: &'static str,
    pub namespace: &'static str,
    pub name: &'static str,
}

/// A network plugin under test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniProfile {
    pub name: &'static str,
    /// The pinned version; bump it here, in one line.
    pub version: &'static str,
    pub features: &'static [Feature],
    pub installation: Installation,
    /// What must be ready after installation.
    pub readiness: &'static [Workload],
    /// The CNI replaces kube-proxy (kind then creates the cluster without it).
    pub replaces_kube_proxy: bool,
    /// How the neutral egress policy is expressed and how its realization is checked.
    pub egress: egress::EgressDialect,
    /// The Gateway API implementation HTTPRoutes go through by default; its features, not
    /// the CNI's, decide the HTTPRoute scenarios ([`GATEWAY_VARIABLE`](crate::gateway::GATEWAY_VARIABLE) picks another).
    pub gateway: Option<GatewayImplementation>,
}

impl CniProfile {
    pub fn has(&self, feature: Feature) -> bool {
        self.lacks(feature).is_none()
    }

    /// Why a scenario needing `feature` cannot run with this profile, if it cannot: the CNI
    /// lacks it, or, for HTTPRoute features, its Gateway implementation does.
    pub fn lacks(&self, feature: Feature) -> Option<String> {
        if !feature.is_gateway_feature() {
            return (!self.features.contains(&feature)).then(|| format!("CNI {} has no {}", self.name, feature.name()));
        }
        match &self.gateway {
            Some(gateway) => gateway.lacks(feature),
            None => Some(format!("no Gateway API implementation is known for {}", self.name)),
        }
    }

    /// The DaemonSet of the CNI's node agent, whose image says which version really runs.
    pub fn agent(&self) -> Option<&Workload> {
        self.readiness.iter().find(|w| w.kind == "DaemonSet")
    }
}

/// The CNI reference plugins (bridge + host-local, chained with tuning) as Debian ships them,
/// with the lab's reference egress gateway (policy routing over VXLAN to a gateway node
/// that SNATs to the egress IP) and the lab's nginx Gateway. Its version is the installed
/// package's.
pub fn reference() -> CniProfile {
    CniProfile {
        name: "reference",
        version: "as installed",
        features: &[Feature::EgressGateway, Feature::LoadBalancerService],
        installation: Installation::ReferencePlugins { conflist: "cni/reference/10-lab.conflist" },
        readiness: &[],
        replaces_kube_proxy: false,
        egress: egress::EgressDialect::LabReference,
        gateway: Some(gateway::lab_reference_nginx()),
    }
}

/// Antrea, from its release manifest. Egress is on by default since Antrea 1.6.
pub fn antrea() -> CniProfile {
    CniProfile {
        name: "antrea",
        version: "2.2.0",
        features: &[Feature::EgressGateway, Feature::EgressFailover, Feature::LoadBalancerService],
        installation: Installation::Manifest { url: "https://github.com/antrea-io/antrea/releases/download/v{version}/antrea.yml" },
        readiness: &[
            Workload { kind: "DaemonSet", namespace: "kube-system", name: "antrea-agent" },
            Workload { kind: "Deployment", namespace: "kube-system", name: "antrea-controller" },
        ],
        replaces_kube_proxy: false,
        egress: egress::EgressDialect::Antrea,
        // Antrea has no Gateway API implementation; the thesis pairs it with NGINX Gateway Fabric.
        gateway: Some(gateway::nginx_gateway_fabric()),
    }
}

/// Cilium, from its Helm chart, with the egress gateway, BPF masquerading and kube-proxy
/// replacement on, as its egress gateway requires.
pub fn cilium() -> CniProfile {
    CniProfile {
        name: "cilium",
        version: "1.16.6",
        features: &[Feature::EgressGateway, Feature::EgressExcludedCidrs, Feature::LoadBalancerService],
        installation: Installation::Helm {
            repo_url: "https://helm.cilium.io/",
            chart: "cilium",
            release: "cilium",
            namespace: "kube-system",
            values: &[
                ("kubeProxyReplacement", "true"),
                ("egressGateway.enabled", "true"),
                ("bpf.masquerade", "true"),
                ("ipam.mode", "kubernetes"),
                ("image.pullPolicy", "IfNotPresent"),
            ],
        },
        readiness: &[
            Workload { kind: "DaemonSet", namespace: "kube-system", name: "cilium" },
            Workload { kind: "Deployment", namespace: "kube-system", name: "cilium-operator" },
            // Since 1.16 a DaemonSet of its own carries L7 and Gateway traffic.
            Workload { kind: "DaemonSet", namespace: "kube-system", name: "cilium-envoy" },
        ],
        replaces_kube_proxy: true,
        egress: egress::EgressDialect::Cilium,
        gateway: Some(gateway::cilium_gateway()),
    }
}
