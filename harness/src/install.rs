//! What gets installed on a cluster and what it offers, in the words every layer above
//! shares: the features scenarios need, how a CNI or Gateway implementation is installed,
//! the workloads awaited after, and what a run is for.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

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
    /// A pod's `hostPort`: its node's address on that port reaches the pod (the portmap
    /// plugin, or the CNI's own).
    HostPort,
    /// The node NIC configured with the TSN priority map (the harness does it on nodes it
    /// can reach), with a metadata proxy chained after the CNI where the provider deploys
    /// one (kind); the lab runs whatever the profile's conflist chains.
    TsnPriorityMap,
    /// Measuring tools (iperf3) in pods, on nodes and on the external host.
    PerformanceTools,
    /// Reading the CPU time and memory of the CNI's own processes while traffic flows.
    CniResourceUsage,
    /// Replacing the CNI in place while pods run (an upgrade to another profile, and back).
    InPlaceUpgrade,
    /// The harness itself sends CNI CHECK to a pod as a runtime does (its cached ADD result
    /// as `prevResult`) and reads a node's state around a DEL (`cni_spec`'s snapshot): the
    /// lab, whose runtime it is. On kind, containerd makes the CNI calls.
    RuntimeCniCalls,
}

impl Feature {
    /// Whether the Gateway API implementation, not the CNI, provides it.
    pub fn is_gateway_feature(self) -> bool {
        matches!(self, Feature::GatewayWeights | Feature::RequestMirror)
    }

    /// Whether the provider, not the CNI, provides it: a CNI never lacks it.
    pub fn is_provider_feature(self) -> bool {
        matches!(self, Feature::TsnPriorityMap | Feature::PerformanceTools | Feature::CniResourceUsage | Feature::InPlaceUpgrade | Feature::RuntimeCniCalls)
    }

    pub fn name(self) -> &'static str {
        match self {
            Feature::EgressGateway => "egress gateway",
            Feature::EgressFailover => "egress failover",
            Feature::EgressExcludedCidrs => "egress excluded CIDRs",
            Feature::GatewayWeights => "Gateway API weighted routes",
            Feature::RequestMirror => "Gateway API request mirroring",
            Feature::LoadBalancerService => "LoadBalancer Services",
            Feature::HostPort => "hostPort (a pod reached on its node's address)",
            Feature::TsnPriorityMap => "TSN priority map on the node NIC",
            Feature::PerformanceTools => "measuring tools (iperf3) in pods, on nodes and outside",
            Feature::CniResourceUsage => "the CPU time and memory of the CNI's own processes",
            Feature::InPlaceUpgrade => "an in-place CNI upgrade and rollback under running pods",
            Feature::RuntimeCniCalls => "CNI CHECK sent to pods and node state read by the harness, as the runtime",
        }
    }
}

/// How a CNI is brought into a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installation {
    /// Plugin binaries run by the lab as the node's container runtime, with this conflist;
    /// the plugins are looked up in `plugin_dirs` (`CNI_PATH` overrides them).
    /// `on_install`: a program the lab runs on each node (in its network namespace) when it
    /// installs or replaces this CNI there, as a DaemonSet's install container runs.
    Lab { conflist: PathBuf, plugin_dirs: Vec<PathBuf>, on_install: Option<PathBuf>, node_files: Vec<NodeFile> },
    /// Manifests, applied in order with server-side apply.
    Manifests { manifests: Vec<Manifest> },
    /// A Helm chart with values. The chart is named by `--repo <repo_url>` (or is an OCI
    /// reference when `repo_url` is empty), so the user's own Helm repositories are untouched.
    Helm { repo_url: String, chart: String, release: String, namespace: String, values: Vec<(String, String)> },
}

/// A file or directory a DaemonSet would install on each node (profile field
/// `install.lab.nodeFiles`): `from` on this machine (made absolute from the profile's
/// directory), `to` where the node's plugins find it, in one of the node's own directories
/// (its `/opt` view, usually).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFile {
    pub from: PathBuf,
    pub to: PathBuf,
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
    /// The chart renders it only when a value is at least a version (Cilium 1.16's
    /// `cilium-envoy` DaemonSet: `upgradeCompatibility`, default 1.16, at least 1.16): an
    /// install or upgrade whose values say otherwise does not await it.
    #[serde(default)]
    pub rendered_when: Option<RenderedWhen>,
}

/// A chart's condition on one value, compared as a version: `value` (or `default` when the
/// values do not set it) at least `at_least`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RenderedWhen {
    pub value: String,
    pub default: String,
    pub at_least: String,
}

impl Workload {
    pub fn new(kind: &str, namespace: &str, name: &str) -> Self {
        Self { kind: kind.into(), namespace: namespace.into(), name: name.into(), created_later: false, rendered_when: None }
    }

    /// Whether a chart given `values` renders it.
    pub fn rendered_with(&self, values: &[(String, String)]) -> bool {
        let Some(when) = &self.rendered_when else { return true };
        let set = values.iter().rev().find(|(key, _)| *key == when.value).map_or(when.default.as_str(), |(_, v)| v.as_str());
        let numbers = |v: &str| v.trim_start_matches('v').split('.').map(|n| n.parse::<u64>().unwrap_or(0)).collect::<Vec<_>>();
        numbers(set) >= numbers(&when.at_least)
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

/// Whether a run certifies a CNI, or proves the suites themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Purpose {
    Certification,
    /// The reference plugins with the lab's reference datapath: the suites proving themselves.
    SelfTest,
}

impl Purpose {
    pub fn title(self) -> &'static str {
        match self {
            Purpose::Certification => "certification",
            Purpose::SelfTest => "self-test of the suites (not a certification of the plugins)",
        }
    }
}
