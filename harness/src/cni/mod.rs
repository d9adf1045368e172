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

pub use crate::install::{Feature, Installation, Manifest, ManifestSource, NodeFile, Workload};
pub use profile::{known_profiles, load_profile, profile_from_env, CNI_VARIABLE};

/// A plugin directory of a lab profile that stands for the directory of this build's own
/// binaries (`cni-probe`, `tsn-metadata-proxy`), wherever cargo put them.
pub const HARNESS_BINARIES: &str = "{harness-binaries}";

/// A plugin directory of a lab profile that stands for Debian unstable's reference plugins
/// as `cargo xtask deps` unpacks them (`target/debian-unstable/...`): an upgrade's newer
/// version beside the machine's own.
pub const DEBIAN_UNSTABLE_PLUGINS: &str = "{debian-unstable-plugins}";

/// Whether a profile's plugin directory is one of the placeholders, not a path.
pub fn is_plugin_dir_placeholder(dir: &std::path::Path) -> bool {
    [HARNESS_BINARIES, DEBIAN_UNSTABLE_PLUGINS].iter().any(|p| dir.as_os_str() == *p)
}

/// The directory a profile's plugin directory names, `harness_binaries` being where this
/// build's own binaries are.
pub fn resolve_plugin_dir(dir: &std::path::Path, harness_binaries: &std::path::Path) -> std::path::PathBuf {
    match dir.to_str() {
        Some(HARNESS_BINARIES) => harness_binaries.to_owned(),
        Some(DEBIAN_UNSTABLE_PLUGINS) => crate::host::unstable_plugins_root().join("usr/lib/cni"),
        _ => dir.to_owned(),
    }
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
    /// The BPF filesystem its plugins find at a node's `/sys/fs/bpf`.
    pub bpffs: BpfFilesystem,
    /// Commands a failed trial's bundle runs on every node, beside the harness's own
    /// (the CNI's status tools: `cilium-dbg status`, `antctl get ...`).
    pub node_collectors: Vec<crate::model::DiagnosticCommand>,
    /// The plugins' log files on a node (profile field `diagnostics.logs`).
    pub plugin_logs: Vec<PathBuf>,
    /// Commands a failed trial's bundle runs in the CNI agent's pods on the trial's nodes.
    pub agent_collectors: Vec<crate::model::DiagnosticCommand>,
    /// The CNI's own flow tracer, asked about a failed trial's flow (Antrea's Traceflow).
    pub flow_tracer: Option<crate::model::FlowTracer>,
    /// How a cluster running another version is upgraded (or rolled back) to this one, as
    /// the CNI's own upgrade guide says, beyond installing it over the running one.
    pub upgrade: UpgradeProcedure,
}

/// What an in-place upgrade to a profile does besides applying its installation over the
/// running one and awaiting its workloads' rollouts (a DaemonSet rolls node by node).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpgradeProcedure {
    /// Manifest installations: the objects carrying this label selector are applied (and
    /// `first_readiness` rolled out) before the rest, as Antrea asks of its Controller.
    pub first_selector: Option<String>,
    pub first_readiness: Vec<Workload>,
    /// Helm installations: a pre-flight release installed, awaited and uninstalled before
    /// the upgrade (Cilium's pre-flight check pre-pulls the new images).
    pub preflight: Option<HelmPreflight>,
    /// Helm installations: values given to the upgrade only; `{initialMinor}` is the
    /// `major.minor` of the version the cluster was first made with (Cilium's
    /// `upgradeCompatibility`, which its upgrade guide sets to the initial install's).
    pub values: Vec<(String, String)>,
}

/// A Helm release installed from the same chart before an upgrade, then removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelmPreflight {
    pub release: String,
    pub values: Vec<(String, String)>,
    pub readiness: Vec<Workload>,
}

/// Which BPF filesystem a node's plugins see at `/sys/fs/bpf`. Either lasts across every
/// plugin call for the cluster's life and goes with the cluster (and `cargo xtask gc`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BpfFilesystem {
    /// One per node, as a kind node gets by mounting its own (the default).
    #[default]
    PerNode,
    /// One for the whole cluster, as a kind config that mounts the host's `/sys/fs/bpf`
    /// into every node gives: a plugin finds every node's pins.
    Shared,
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
            bpffs: BpfFilesystem::PerNode,
            node_collectors: vec![],
            plugin_logs: vec![],
            agent_collectors: vec![],
            flow_tracer: None,
            upgrade: UpgradeProcedure::default(),
        }
    }

    /// What a run with this profile is for.
    pub fn purpose(&self) -> crate::install::Purpose {
        match self.self_test {
            true => crate::install::Purpose::SelfTest,
            false => crate::install::Purpose::Certification,
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
