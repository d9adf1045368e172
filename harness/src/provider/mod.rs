//! Providers: where clusters come from. Scenarios see only the [`Cluster`] trait; what
//! differs between the lab, kind and an existing cluster lives behind it.

pub mod cgroup;
pub mod cli;
pub mod components;
pub mod existing;
pub mod external;
pub use crate::host;
pub mod kind;
pub mod kubernetes;
pub mod lab;
pub mod runs;
#[cfg(test)]
pub mod stand_in;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use cni_probe::{LoadReport, Observation};

use crate::cni::{CniProfile, Feature};
use crate::error::{HarnessError, Result};
use crate::model::{EgressPolicy, EgressStatus, HttpRoute, NamespaceSpec, Node, Pod, PodSpec};

/// What a run reports about where it ran.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ClusterInfo {
    pub provider: String,
    pub cluster: String,
    /// Unique to this run (a kept cluster serves many): every object name the run creates
    /// carries it, so two runs, or a run and the cluster's own users, never share a name.
    pub run_id: String,
    pub cni: String,
    pub cni_version: String,
    /// Where `cni_version` comes from: the profile's pin, the image that really runs, a package.
    pub cni_version_source: String,
    pub kernel: String,
    /// From the start of provisioning until the first scenario could run.
    pub ready_in: Duration,
    /// Whether the run certifies the CNI or proves the suites.
    pub purpose: components::Purpose,
    /// What the run is made of: what is under test, and what the harness provides.
    pub components: Vec<components::Component>,
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
    /// The policy's status as its CNI reports it; `None` until it is realized, for the
    /// gateway and for the nodes of `selected` (the pods the policy selects) alike.
    fn egress_status(&self, policy: &EgressPolicy, selected: &[Pod]) -> Result<Option<EgressStatus>>;
    /// The URL of the external echo server, outside the cluster.
    fn external_echo_url(&self) -> String;
    /// A URL on the external host where nothing listens.
    fn external_closed_port_url(&self) -> String;
    /// Requests `url` from inside `pod` with the probe.
    fn request_from(&self, pod: &Pod, url: &str, timeout: Duration) -> Result<Observation>;
    /// Routes HTTP through the cluster's Gateway as `route` says, to Services (pods of the
    /// same name) in `namespace`; replaces an earlier version of the same route.
    fn apply_http_route(&self, namespace: &str, route: &HttpRoute) -> Result<()>;
    /// Exposes the pods of `namespace` matching `selector` (their `port`) as a LoadBalancer
    /// Service on port 80, balanced per connection at random like kube-proxy; returns its
    /// URL outside.
    fn expose_service(&self, namespace: &str, name: &str, selector: &crate::model::Labels, port: u16) -> Result<String>;
    /// The Gateway's URL for `path`, as a client outside the cluster uses it.
    fn gateway_url(&self, path: &str) -> String;
    /// Sends requests to `url` from outside the cluster as `load` says.
    fn load_from_outside(&self, url: &str, load: &cni_probe::LoadOptions) -> Result<LoadReport>;
    /// How many requests whose path starts with `path_prefix` the probe in `pod` answered.
    fn served_requests(&self, pod: &Pod, path_prefix: &str) -> Result<u64>;
    /// Makes a node fail as a real failure does, without warning: it is cut off the
    /// cluster's network (failover scenarios).
    fn fail_node(&self, node: &Node) -> Result<()>;
    /// Undoes [`fail_node`](Self::fail_node): the node is back as it was found.
    fn restore_node(&self, node: &Node) -> Result<()>;
    /// Runs `program args` on `node` (in its network namespace on the lab, in its container
    /// on kind): the primitive families build their node-level operations on (a qdisc, its
    /// counters).
    fn run_on_node(&self, node: &Node, program: &str, args: &[&str]) -> Result<crate::model::ExecOutput>;
    /// Runs the harness machine's own `program` in `node`'s network: what a node's image
    /// may lack (tcpdump for a failure's path trace) on the node's links and packets. On
    /// the lab that is [`run_on_node`](Self::run_on_node) (a node is a namespace of this
    /// machine); kind enters the node container's namespace from the host.
    fn run_in_node_network(&self, node: &Node, program: &str, args: &[&str]) -> Result<crate::model::ExecOutput> {
        self.run_on_node(node, program, args)
    }
    /// Makes the local file `path` readable by [`run_on_node`](Self::run_on_node)'s
    /// programs on `node` and returns its path there (a BPF object for `tc`).
    fn put_file_on_node(&self, node: &Node, path: &std::path::Path) -> Result<String> {
        Err(HarnessError::NotFound { what: "way to put files".into(), wanted: format!("{} on node {}", path.display(), node.name) })
    }
    /// Runs the probe with `args` in `pod`.
    fn run_probe_in(&self, pod: &Pod, args: &[String]) -> Result<crate::model::ExecOutput>;
    /// Runs `program args` in `pod`'s network (a measuring tool: iperf3). Providers whose
    /// pods have only the probe cannot.
    fn run_in_pod(&self, pod: &Pod, program: &str, _args: &[&str]) -> Result<crate::model::ExecOutput> {
        Err(HarnessError::NotFound {
            what: "way to run tools in pods".into(),
            wanted: format!("{program} in pod {}/{} (this provider's pods have only the probe)", pod.namespace, pod.name),
        })
    }
    /// Runs the probe with `args` on the external host, outside the cluster.
    fn run_probe_outside(&self, _args: &[String]) -> Result<crate::model::ExecOutput> {
        Err(HarnessError::NotFound { what: "probe outside".into(), wanted: format!("on the external host of {} clusters", self.info().provider) })
    }
    /// Runs `program args` on the external host, outside the cluster.
    fn run_outside(&self, program: &str, _args: &[&str]) -> Result<crate::model::ExecOutput> {
        Err(HarnessError::NotFound { what: "way to run tools outside".into(), wanted: format!("{program} on the external host") })
    }
    /// Does what replacing the CNI by `with` needs before the switch, which running pods and
    /// their connections do not see (Cilium's pre-flight check), so a scenario holding
    /// connections through the switch need not hold them through this too. The replacement
    /// that follows skips it; one not prepared does it itself. Nothing, where a replacement
    /// needs nothing first (the lab).
    fn prepare_cni_replacement(&self, _with: &CniProfile) -> Result<()> {
        Ok(())
    }
    /// Replaces the cluster's CNI by `with` in place, node by node, while pods run, as an
    /// upgrade (or a rollback) does: nothing is restarted that a real one would not restart
    /// ([`Feature::InPlaceUpgrade`]).
    fn replace_cni(&self, with: &CniProfile) -> Result<()> {
        Err(HarnessError::NotFound { what: "way to replace the CNI in place".into(), wanted: format!("{} on {} clusters", with.name, self.info().provider) })
    }
    /// CNI CHECK of `pod`'s network as a runtime sends it (the cached ADD result as
    /// `prevResult`), by the CNI its node runs now.
    fn check_pod_network(&self, pod: &Pod) -> Result<()> {
        Err(HarnessError::NotFound {
            what: "way to send CNI CHECK".into(),
            wanted: format!("for pod {}/{} on {} clusters", pod.namespace, pod.name, self.info().provider),
        })
    }
    /// Every pod the cluster runs (of every trial), with its address.
    fn pods(&self) -> Result<Vec<Pod>> {
        Err(HarnessError::NotFound { what: "way to list pods".into(), wanted: format!("on {} clusters", self.info().provider) })
    }
    /// Deletes `pod` as the kubelet does: CNI DEL by the CNI its node runs now, then its
    /// network namespace.
    fn delete_pod(&self, pod: &Pod) -> Result<()> {
        Err(HarnessError::NotFound {
            what: "way to delete pods".into(),
            wanted: format!("{}/{} on {} clusters", pod.namespace, pod.name, self.info().provider),
        })
    }
    /// What a CNI could leave on `node`, one line per item: links, addresses, routes,
    /// rules, iptables and nft, qdiscs and filters, IPAM files, BPF pins (as `cni_spec`
    /// reads its nodes).
    fn node_state(&self, node: &Node) -> Result<std::collections::BTreeSet<String>> {
        Err(HarnessError::NotFound { what: "way to read a node's state".into(), wanted: format!("of node {} on {} clusters", node.name, self.info().provider) })
    }
    /// What the provider itself recorded of trial `trial` (its object names carry it), as
    /// files for a failed trial's bundle: name and contents (the lab: every CNI call of
    /// the trial, its reference components' logs and state). Nothing where it keeps none.
    fn own_records(&self, _trial: &str) -> Vec<(String, String)> {
        Vec::new()
    }
    /// What the CNI itself tells of one flow of trial `trial` (Antrea's Traceflow of a TCP
    /// SYN from `client` to `to`), as files for its bundle; nothing where the profile names
    /// no flow tracer or the provider cannot ask one.
    fn flow_records(&self, _trial: &str, _client: &Pod, _to: std::net::SocketAddr) -> Vec<(String, String)> {
        Vec::new()
    }
    /// CPU time and peak memory of the CNI's own processes since the cluster was made
    /// (where the provider can read them: [`Feature::CniResourceUsage`]).
    fn cni_resource_usage(&self) -> Result<crate::model::ResourceUsage> {
        Err(HarnessError::NotFound { what: "reading".into(), wanted: format!("of the CNI's processes on {} clusters", self.info().provider) })
    }
    /// Removes everything the run created. Idempotent.
    fn teardown(&self) -> Result<()>;
}

/// Every iptables rule on `node` with its packet counter (`iptables-save -c`, read there).
pub fn rule_counters_on(cluster: &dyn Cluster, node: &Node) -> Result<std::collections::BTreeMap<String, u64>> {
    let saved = cluster.run_on_node(node, "iptables-save", &["-c"])?.stdout_of_success(&format!("iptables-save -c on node {}", node.name))?;
    Ok(crate::verdict::iptables::rule_counters(&saved))
}

/// Reads what the probe printed (one JSON value); `command` names it in the error, which
/// carries how it exited and its stderr too (a broken image or a missing binary says so there).
pub fn probe_output<T: serde::de::DeserializeOwned>(output: &crate::model::ExecOutput, command: impl FnOnce() -> String) -> Result<T> {
    serde_json::from_str(output.stdout.trim()).map_err(|e| HarnessError::Command {
        command: command(),
        detail: format!("unreadable probe output ({e}); {}; stdout: {:?}; stderr: {:?}", output.exit, output.stdout.trim(), output.stderr.trim()),
    })
}

/// Which provider to use: `CNICONF_PROVIDER`, or the suite's default for its CNI.
#[derive(Debug, Clone)]
pub enum ProviderChoice {
    Lab(lab::LabOptions),
    Kind(kind::KindOptions),
    Existing(existing::ExistingOptions),
}

pub const PROVIDER_VARIABLE: &str = "CNICONF_PROVIDER";
const PROVIDERS: &[&str] = &["lab", "kind", "existing"];

impl ProviderChoice {
    /// The provider named by `CNICONF_PROVIDER`, else the default for `cni`: the lab for the
    /// reference plugins it runs itself, kind for every real CNI.
    pub fn from_env(cni: &CniProfile) -> Result<Self> {
        let default = if cni.runs_on_the_lab() { "lab" } else { "kind" };
        let name = std::env::var(PROVIDER_VARIABLE).ok().filter(|n| !n.is_empty()).unwrap_or_else(|| default.into());
        match name.as_str() {
            "lab" => Ok(ProviderChoice::Lab(lab::LabOptions::from_env()?)),
            "kind" => Ok(ProviderChoice::Kind(kind::KindOptions::from_env())),
            "existing" => Ok(ProviderChoice::Existing(existing::ExistingOptions::from_env()?)),
            _ => Err(HarnessError::UnknownProvider { name, variable: PROVIDER_VARIABLE.into(), expected: PROVIDERS.join(", ") }),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            ProviderChoice::Lab(_) => "lab",
            ProviderChoice::Kind(_) => "kind",
            ProviderChoice::Existing(_) => "existing",
        }
    }

    /// Why no scenario can run here at all (a missing tool), when that means "ignored".
    pub fn unavailable(&self, cni: &CniProfile) -> Option<String> {
        match self {
            ProviderChoice::Lab(_) => lab::unavailable(cni),
            ProviderChoice::Kind(options) => kind::unavailable(cni, options),
            ProviderChoice::Existing(_) => None,
        }
    }

    /// Why this provider cannot host a scenario needing `feature` with `cni`, if it cannot.
    pub fn cannot_host(&self, cni: &CniProfile, feature: Feature) -> Option<String> {
        match self {
            ProviderChoice::Lab(_) => lab::cannot_host(cni, feature),
            ProviderChoice::Kind(_) if feature == Feature::CniResourceUsage && cni.agent().is_none() => Some(format!("profile {} names no agent DaemonSet, whose pods' cgroups would be read", cni.name)),
            ProviderChoice::Kind(_) if feature == Feature::InPlaceUpgrade && cni.runs_on_the_lab() => Some(format!("profile {} is installed by the lab, not on kind", cni.name)),
            ProviderChoice::Kind(_) if feature == Feature::RuntimeCniCalls => Some("on kind, containerd makes the CNI calls: it never sends CHECK (so the harness would be inventing one against another CNI's cached result), and a node's state there churns with kube-proxy and every other pod; the lab, whose runtime the harness is, judges CHECK and DEL across versions".into()),
            ProviderChoice::Kind(_) => None,
            ProviderChoice::Existing(options) => existing::cannot_host(options, feature),
        }
    }

    /// The waits' budgets on this provider: the lab programs its datapath before it reports
    /// a policy realized, so traffic need not be awaited there for long.
    pub fn timeouts(&self) -> crate::Timeouts {
        match self {
            ProviderChoice::Lab(_) => lab::timeouts(),
            _ => crate::Timeouts::default(),
        }
    }

    /// Builds (or connects to) a cluster with `cni`; it is torn down by [`Cluster::teardown`],
    /// by Ctrl-C, or by `cargo xtask gc` after a killed run.
    /// `features` are what the suite's scenarios need (kind installs add-ons for them).
    pub fn provision(&self, cni: &CniProfile, features: &[Feature]) -> Result<Arc<dyn Cluster>> {
        match self {
            ProviderChoice::Lab(options) => Ok(Arc::new(lab::Lab::provision(cni, options)?)),
            ProviderChoice::Kind(options) => Ok(Arc::new(kind::provision(cni, options, features)?)),
            ProviderChoice::Existing(options) => Ok(Arc::new(existing::provision(cni, options)?)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// kind upgrades a CNI it installed (Helm or manifests) in place; CHECK and DEL across
    /// versions, which need the harness as the runtime, stay with the lab.
    #[test]
    fn kind_hosts_an_upgrade_but_not_cni_calls_made_by_the_harness() {
        let kind = ProviderChoice::Kind(kind::KindOptions::from_env());
        for profile in ["antrea-2.1", "cilium-1.15"] {
            let cni = crate::cni::load_profile(profile).unwrap();
            assert_eq!(kind.cannot_host(&cni, Feature::InPlaceUpgrade), None, "{profile}");
            assert!(kind.cannot_host(&cni, Feature::RuntimeCniCalls).is_some_and(|why| why.contains("containerd makes the CNI calls")), "{profile}");
        }
        let lab = ProviderChoice::Lab(lab::LabOptions::default());
        assert_eq!(
            (lab.cannot_host(&crate::cni::reference(), Feature::InPlaceUpgrade), lab.cannot_host(&crate::cni::reference(), Feature::RuntimeCniCalls)),
            (None, None)
        );
        assert!(kind.cannot_host(&crate::cni::reference(), Feature::InPlaceUpgrade).is_some_and(|why| why.contains("installed by the lab")));
    }
}
