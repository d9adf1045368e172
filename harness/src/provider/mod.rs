//! Providers: where clusters come from. Scenarios see only the [`Cluster`] trait; what
//! differs between the lab, kind and an existing cluster lives behind it.

pub mod cli;
pub mod external;
pub mod host;
pub mod kind;
pub mod lab;
pub mod runs;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use cni_probe::Observation;

use crate::cni::{CniProfile, Feature};
use crate::error::{HarnessError, Result};
use crate::model::{EgressPolicy, EgressStatus, NamespaceSpec, Node, Pod, PodSpec};

/// What a run reports about where it ran.
#[derive(Debug, Clone)]
pub struct ClusterInfo {
    pub provider: String,
    pub cluster: String,
    pub cni: String,
    pub cni_version: String,
    pub kernel: String,
    /// From the start of provisioning until the first scenario could run.
    pub ready_in: Duration,
}

/// A running cluster, as scenarios use it. Calls may come from several trials at once.
pub trait Cluster: Send + Sync {
    fn info(&self) -> &ClusterInfo;
    fn nodes(&self) -> &[Node];
    fn create_namespace(&self, namespace: &NamespaceSpec) -> Result<()>;
    /// Creates a pod and returns once its network is ready.
    fn create_pod(&self, pod: &PodSpec) -> Result<Pod>;
    /// An address the cluster's egress can use, unique within the run.
    fn allocate_egress_ip(&self) -> Result<IpAddr>;
    fn apply_egress_policy(&self, policy: &EgressPolicy) -> Result<()>;
    /// The policy's status as its CNI reports it; `None` until it is realized.
    fn egress_status(&self, policy: &EgressPolicy) -> Result<Option<EgressStatus>>;
    /// The URL of the external echo server, outside the cluster.
    fn external_echo_url(&self) -> String;
    /// A URL on the external host where nothing listens.
    fn external_closed_port_url(&self) -> String;
    /// Requests `url` from inside `pod` with the probe.
    fn request_from(&self, pod: &Pod, url: &str, timeout: Duration) -> Result<Observation>;
    /// Removes everything the run created. Idempotent.
    fn teardown(&self) -> Result<()>;
}

/// Which provider to use, from `CNICONF_PROVIDER` (default: `lab`).
#[derive(Debug, Clone)]
pub enum ProviderChoice {
    Lab(lab::LabOptions),
}

pub const PROVIDER_VARIABLE: &str = "CNICONF_PROVIDER";
const PROVIDERS: &[&str] = &["lab"];

impl ProviderChoice {
    pub fn from_env() -> Result<Self> {
        let name = std::env::var(PROVIDER_VARIABLE).unwrap_or_else(|_| "lab".into());
        match name.as_str() {
            "lab" => Ok(ProviderChoice::Lab(lab::LabOptions::from_env()?)),
            _ => Err(HarnessError::UnknownProvider {
                name,
                variable: PROVIDER_VARIABLE.into(),
                expected: PROVIDERS.join(", "),
            }),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            ProviderChoice::Lab(_) => "lab",
        }
    }

    /// Why this provider cannot host a scenario needing `feature` with `cni`, if it cannot.
    pub fn cannot_host(&self, cni: &CniProfile, feature: Feature) -> Option<String> {
        match self {
            ProviderChoice::Lab(_) => lab::cannot_host(cni, feature),
        }
    }

    /// Builds a cluster with `cni`; it is torn down by [`Cluster::teardown`], by Ctrl-C,
    /// or by `cargo xtask gc` after a killed run.
    pub fn provision(&self, cni: &CniProfile) -> Result<Arc<dyn Cluster>> {
        match self {
            ProviderChoice::Lab(options) => Ok(Arc::new(lab::Lab::provision(cni, options)?)),
        }
    }
}
