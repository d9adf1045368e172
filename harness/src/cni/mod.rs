//! CNI profiles: everything that differs between network plugins lives here, nowhere else:
//! the pinned version, how it is installed and awaited, what it can do, and how the
//! scenarios' neutral egress policy becomes its own objects. A profile is a file,
//! `fixtures/cni/<name>/profile.yaml`, with what it needs beside it: a vendor certifies a
//! plugin by writing one, without Rust.

pub mod egress;
pub mod profile;
pub mod result;
pub mod runtime;

use std::path::PathBuf;

use serde::Deserialize;

use crate::gateway::GatewayImplementation;

pub use profile::{known_profiles, load_profile, profile_from_env, CNI_VARIABLE};

/// A capability a scenario may need from the CNI (and its provider).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
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
    /// The node NIC configured with the TSN priority map (the harness does it on nodes it
    /// can reach), with a metadata proxy chained after the CNI where the provider deploys
    /// one (kind); the lab runs whatever the profile's conflist chains.
    TsnPriorityMap,
    /// Measuring tools (iperf3) in pods, on nodes and on the external host.
    PerformanceTools,
    /// Reading the CPU time and memory of the CNI's own processes while traffic flows.
    CniResourceUsage,
}

impl Feature {
    /// Whether the Gateway API implementation, not the CNI, provides it.
    pub fn is_gateway_feature(self) -> bool {
        matches!(self, Feature::GatewayWeights | Feature::RequestMirror)
    }

    /// Whether the provider, not the CNI, provides it: a CNI never lacks it.
    pub fn is_provider_feature(self) -> bool {
        matches!(self, Feature::TsnPriorityMap | Feature::PerformanceTools | Feature::CniResourceUsage)
    }

    pub fn name(self) -> &'static str {
        match self {
            Feature::EgressGateway => "egress gateway",
            Feature::EgressFailover => "egress failover",
            Feature::EgressExcludedCidrs => "egress excluded CIDRs",
            Feature::GatewayWeights => "Gateway API weighted routes",
            Feature::RequestMirror => "Gateway API request mirroring",
            Feature::LoadBalancerService => "LoadBalancer Services",
            Feature::TsnPriorityMap => "TSN priority map on the node NIC",
            Feature::PerformanceTools => "measuring tools (iperf3) in pods, on nodes and outside",
            Feature::CniResourceUsage => "the CPU time and memory of the CNI's own processes",
        }
    }
}

/// A plugin directory of a lab profile that stands for the directory of this build's own
/// binaries (`cni-probe`, `tsn-metadata-proxy`), wherever cargo put them.
pub const HARNESS_BINARIES: &str = "{harness-binaries}";

/// How a CNI is brought into a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installation {
    /// Plugin binaries run by the lab as the node's container runtime, with this conflist;
    /// the plugins are looked up in `plugin_dirs` (`CNI_PATH` overrides them).
    Lab { conflist: PathBuf, plugin_dirs: Vec<PathBuf> },
    /// Manifests, applied in order with server-side apply.
    Manifests { manifests: Vec<Manifest> },
    /// A Helm chart with values. The chart is named by `--repo <repo_url>` (or is an OCI
    /// reference when `repo_url` is empty), so the user's own Helm repositories are untouched.
    Helm { repo_url: String, chart: String, release: String, namespace: String, values: Vec<(String, String)> },
}

/// One manifest of an installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub source: ManifestSource,
    /// CRDs (by name) that must be Established before it is applied: an operator's
    /// custom resources wait for the CRDs its own manifest creates.
    pub wait_for_crds: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestSource {
    /// A release URL; `{version}` is filled in.
    Url(String),
    /// A file beside the profile; `{podSubnet}` is filled in with the cluster's pod CIDR.
    File(PathBuf),
}

/// Reference CNI plugins a CNI expects on every node that the node image lacks (kind's
/// has only what kindnet uses: ptp, host-local, portmap, loopback).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodePlugins {
    /// The containernetworking/plugins release.
    pub version: String,
    pub plugins: Vec<String>,
}

/// A workload that must be ready before any scenario runs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Workload {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// An operator creates it after the install: it is awaited to exist before its rollout.
    #[serde(default)]
    pub created_later: bool,
}

impl Workload {
    pub fn new(kind: &str, namespace: &str, name: &str) -> Self {
        Self { kind: kind.into(), namespace: namespace.into(), name: name.into(), created_later: false }
    }

    /// How messages name it: `DaemonSet kube-system/antrea-agent`.
    pub fn describe(&self) -> String {
        format!("{} {}/{}", self.kind, self.namespace, self.name)
    }

    /// An object naming it, to read it from the API server (DaemonSets and Deployments are `apps/v1`).
    pub fn reference(&self) -> serde_json::Value {
        serde_json::json!({"apiVersion": "apps/v1", "kind": self.kind, "metadata": {"name": self.name, "namespace": self.namespace}})
    }
}

/// A network plugin under test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniProfile {
    pub name: String,
    /// The pinned version; bump it in the profile file, in one line.
    pub version: String,
    pub features: Vec<Feature>,
    pub installation: Installation,
    /// What must be ready after installation.
    pub readiness: Vec<Workload>,
    /// The CNI replaces kube-proxy (kind then creates the cluster without it).
    pub replaces_kube_proxy: bool,
    /// Plugins the run puts on every node before installing the CNI.
    pub node_plugins: Option<NodePlugins>,
    /// How the neutral egress policy is expressed and how its realization is checked.
    pub egress: egress::EgressDialect,
    /// The Gateway API implementation HTTPRoutes go through by default; its features, not
    /// the CNI's, decide the HTTPRoute scenarios ([`GATEWAY_VARIABLE`](crate::gateway::GATEWAY_VARIABLE) picks another).
    pub gateway: Option<GatewayImplementation>,
    /// The profile file it was read from.
    pub source: PathBuf,
    /// A profile that proves the suites rather than certifying its plugins (the reference
    /// plugins with the lab's reference datapath).
    pub self_test: bool,
    /// The kind node image (a Kubernetes release this CNI version supports), pinned by
    /// digest; kind's own default when the profile names none.
    pub kind_node_image: Option<String>,
    /// Kernel modules the CNI needs loaded on every node before it installs.
    pub node_kernel_modules: Vec<String>,
}

impl CniProfile {
    pub fn has(&self, feature: Feature) -> bool {
        self.lacks(feature).is_none()
    }

    /// Why a scenario needing `feature` cannot run with this profile, if it cannot: the CNI
    /// lacks it, or, for HTTPRoute features, its Gateway implementation does.
    pub fn lacks(&self, feature: Feature) -> Option<String> {
        if feature.is_provider_feature() {
            return None;
        }
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

    /// A stand-in for a profile that did not load: the run reports the load error.
    pub fn unloaded(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            version: "unknown".into(),
            features: vec![],
            installation: Installation::Manifests { manifests: vec![] },
            readiness: vec![],
            replaces_kube_proxy: false,
            node_plugins: None,
            egress: egress::EgressDialect::None,
            gateway: None,
            source: PathBuf::new(),
            self_test: false,
            kind_node_image: None,
            node_kernel_modules: vec![],
        }
    }

    /// What a run with this profile is for.
    pub fn purpose(&self) -> crate::provider::components::Purpose {
        match self.self_test {
            true => crate::provider::components::Purpose::SelfTest,
            false => crate::provider::components::Purpose::Certification,
        }
    }

    /// Whether the lab runs it (its plugins, a conflist), rather than a cluster installing it.
    pub fn runs_on_the_lab(&self) -> bool {
        matches!(self.installation, Installation::Lab { .. })
    }
}

/// A profile that ships with the project, by name; panics if its file is broken (the
/// project's own files are tested to load).
fn shipped(name: &str) -> CniProfile {
    load_profile(name).unwrap_or_else(|e| panic!("the shipped profile `{name}` must load: {e}"))
}

/// The CNI reference plugins with the lab's reference datapath (`fixtures/cni/reference`).
pub fn reference() -> CniProfile {
    shipped("reference")
}

/// Antrea (`fixtures/cni/antrea`).
pub fn antrea() -> CniProfile {
    shipped("antrea")
}

/// Cilium (`fixtures/cni/cilium`).
pub fn cilium() -> CniProfile {
    shipped("cilium")
}
