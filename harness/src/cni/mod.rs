//! CNI profiles: everything that differs between network plugins lives here, nowhere else:
//! the pinned version, how it is installed and awaited, what it can do, and how the
//! scenarios' neutral egress policy becomes its own objects.

pub mod egress;
pub mod runtime;

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
    /// A Helm chart with values.
    Helm { repo_name: &'static str, repo_url: &'static str, chart: &'static str, release: &'static str, namespace: &'static str, values: &'static [(&'static str, &'static str)] },
}

/// A workload of the CNI that must be ready before any scenario runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workload {
    pub kind: &'static str,
    pub namespace: &'static str,
    pub name: &'static str,
}

/// How a CNI offers the Gateway API: its GatewayClass, and what else must be installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewaySupport {
    pub class: &'static str,
    /// Values added to the CNI's own Helm install (Cilium's built-in Gateway API).
    pub cni_values: &'static [(&'static str, &'static str)],
    /// A separate implementation to install (NGINX Gateway Fabric next to Antrea).
    pub implementation: Option<Installation>,
    pub implementation_version: &'static str,
    pub readiness: &'static [Workload],
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
    /// How HTTPRoutes are served (on clusters with an API server).
    pub gateway: Option<GatewaySupport>,
}

impl CniProfile {
    pub fn has(&self, feature: Feature) -> bool {
        self.features.contains(&feature)
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
        features: &[Feature::EgressGateway, Feature::GatewayWeights, Feature::RequestMirror, Feature::LoadBalancerService],
        installation: Installation::ReferencePlugins { conflist: "cni/reference/10-lab.conflist" },
        readiness: &[],
        replaces_kube_proxy: false,
        egress: egress::EgressDialect::LabReference,
        gateway: None,
    }
}

/// Antrea, from its release manifest. Egress is on by default since Antrea 1.6.
pub fn antrea() -> CniProfile {
    CniProfile {
        name: "antrea",
        version: "2.2.0",
        features: &[Feature::EgressGateway, Feature::EgressFailover, Feature::GatewayWeights, Feature::RequestMirror, Feature::LoadBalancerService],
        installation: Installation::Manifest { url: "https://github.com/antrea-io/antrea/releases/download/v{version}/antrea.yml" },
        readiness: &[
            Workload { kind: "DaemonSet", namespace: "kube-system", name: "antrea-agent" },
            Workload { kind: "Deployment", namespace: "kube-system", name: "antrea-controller" },
        ],
        replaces_kube_proxy: false,
        egress: egress::EgressDialect::Antrea,
        // Antrea has no Gateway API implementation; the thesis pairs it with NGINX Gateway Fabric.
        gateway: Some(GatewaySupport {
            class: "nginx",
            cni_values: &[],
            implementation: Some(Installation::Helm {
                repo_name: "",
                repo_url: "",
                chart: "oci://ghcr.io/nginx/charts/nginx-gateway-fabric",
                release: "ngf",
                namespace: "nginx-gateway",
                values: &[("service.type", "LoadBalancer")],
            }),
            implementation_version: "1.6.2",
            readiness: &[Workload { kind: "Deployment", namespace: "nginx-gateway", name: "ngf-nginx-gateway-fabric" }],
        }),
    }
}

/// Cilium, from its Helm chart, with the egress gateway, BPF masquerading and kube-proxy
/// replacement on, as its egress gateway requires.
pub fn cilium() -> CniProfile {
    CniProfile {
        name: "cilium",
        version: "1.16.6",
        features: &[Feature::EgressGateway, Feature::EgressExcludedCidrs, Feature::GatewayWeights, Feature::RequestMirror, Feature::LoadBalancerService],
        installation: Installation::Helm {
            repo_name: "cilium",
            repo_url: "https://helm.cilium.io/",
            chart: "cilium/cilium",
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
        ],
        replaces_kube_proxy: true,
        egress: egress::EgressDialect::Cilium,
        gateway: Some(GatewaySupport {
            class: "cilium",
            cni_values: &[("gatewayAPI.enabled", "true")],
            implementation: None,
            implementation_version: "",
            readiness: &[],
        }),
    }
}
