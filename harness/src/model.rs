//! Provider- and CNI-neutral objects the scenarios speak in: namespaces, pods, nodes, egress policies.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Kubernetes-style labels.
pub type Labels = BTreeMap<String, String>;

/// Builds labels from pairs: `labels([("role", "web")])`.
pub fn labels<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Labels {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

/// A `matchLabels` selector; an empty one selects everything, as in Kubernetes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default)]
    pub match_labels: Labels,
}

impl LabelSelector {
    pub fn matches(&self, labels: &Labels) -> bool {
        self.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

/// The role a node plays, as in a kind cluster config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeRole {
    ControlPlane,
    Worker,
}

/// A node of a running cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub role: NodeRole,
    pub labels: Labels,
    /// The node's address on the underlay (kind's Docker network).
    pub address: IpAddr,
}

/// A namespace to create; its name is already unique to the trial.
#[derive(Debug, Clone)]
pub struct NamespaceSpec {
    pub name: String,
    pub labels: Labels,
}

/// A pod to create: where it runs and what it is labelled.
#[derive(Debug, Clone)]
pub struct PodSpec {
    pub name: String,
    pub namespace: String,
    pub labels: Labels,
    pub node: String,
    /// Ports of its node that reach it (`hostPort`, TCP).
    pub host_ports: Vec<HostPort>,
}

/// A pod's TCP port reached on its node's address: `host` on the node, `container` in the pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostPort {
    pub host: u16,
    pub container: u16,
}

/// The port every pod's probe listens on: its HTTP echo, and the UDP listener beside it.
pub const POD_PORT: u16 = 8080;

/// A running pod with its address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    pub name: String,
    pub namespace: String,
    pub labels: Labels,
    pub node: String,
    pub address: IpAddr,
}

/// An egress policy in neutral form: which pods leave the cluster through which IP, and
/// which nodes may carry it. Each CNI profile renders it as its own object (Antrea
/// `Egress` + `ExternalIPPool`, Cilium `CiliumEgressGatewayPolicy`); the lab realizes it
/// with its reference egress gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressPolicy {
    pub name: String,
    pub namespace_selector: LabelSelector,
    pub pod_selector: LabelSelector,
    /// The source address selected pods must be seen with outside the cluster.
    pub egress_ip: IpAddr,
    /// Nodes that may hold the egress IP.
    pub gateway_node_selector: LabelSelector,
    /// Destinations whose traffic keeps the node IP (Cilium `excludedCIDRs`).
    pub excluded_cidrs: Vec<ipnet::Ipv4Net>,
}

impl EgressPolicy {
    /// Whether the policy selects this pod, given its namespace's labels.
    pub fn selects(&self, pod: &Pod, namespace_labels: &Labels) -> bool {
        self.namespace_selector.matches(namespace_labels) && self.pod_selector.matches(&pod.labels)
    }
}

/// Where a realized egress policy stands, as its CNI reports it (Antrea `status.egressNode`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressStatus {
    pub egress_node: String,
    pub egress_ip: IpAddr,
}

/// A backend of a route: a Service by name and port, with its weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedBackend {
    pub service: String,
    pub port: u16,
    pub weight: u32,
}

/// An HTTP route in neutral form: requests under a path prefix are split across weighted
/// backends, and optionally copied to a mirror (Gateway API `HTTPRoute`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRoute {
    pub name: String,
    pub path_prefix: String,
    pub backends: Vec<WeightedBackend>,
    /// A Service every request is also copied to (`RequestMirror`).
    pub mirror_to: Option<(String, u16)>,
    /// Sent back in `X-Route-Generation` by every answer of this version of the route.
    pub generation: u64,
}

/// The response header that tells which version of a route answered.
pub const ROUTE_GENERATION_HEADER: &str = "X-Route-Generation";

impl HttpRoute {
    /// The weights, in backend order.
    pub fn weights(&self) -> Vec<u32> {
        self.backends.iter().map(|b| b.weight).collect()
    }

    /// Sets the weights, in backend order.
    pub fn set_weights(&mut self, weights: &[u32]) {
        for (backend, &weight) in self.backends.iter_mut().zip(weights) {
            backend.weight = weight;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_selector_selects_everything() {
        assert!(LabelSelector::default().matches(&labels([("a", "b")])));
    }

    #[test]
    fn a_selector_needs_every_label() {
        let selector = LabelSelector { match_labels: labels([("role", "web"), ("env", "prod")]) };
        assert!(selector.matches(&labels([("role", "web"), ("env", "prod"), ("x", "y")])));
        assert!(!selector.matches(&labels([("role", "web")])));
        assert!(!selector.matches(&labels([("role", "db"), ("env", "prod")])));
    }
}

/// CPU time and peak memory of a CNI's own processes, as the kernel accounted them: on the
/// lab, the plugin processes a runtime ran (each with what it ran and waited for: IPAM
/// plugins, iptables), summed at their exit; on a cluster, its agents' cgroups.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceUsage {
    pub cpu: std::time::Duration,
    /// The most memory any of them held at once (resident, bytes).
    pub peak_memory_bytes: u64,
    /// How many processes it covers.
    pub processes: u64,
}

impl ResourceUsage {
    /// Both together: CPU summed, the higher peak, processes counted.
    pub fn with(self, other: ResourceUsage) -> ResourceUsage {
        ResourceUsage {
            cpu: self.cpu + other.cpu,
            peak_memory_bytes: self.peak_memory_bytes.max(other.peak_memory_bytes),
            processes: self.processes + other.processes,
        }
    }
}

/// What a command run in a pod, container or namespace printed, and how it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    pub stdout: String,
    pub stderr: String,
    /// How it exited, as a person reads it: "exit status 2", or why that is unknown.
    pub exit: String,
}

impl ExecOutput {
    /// A local process's output, its exit said as the exec paths say it ("exit status 2").
    pub fn from_output(output: &std::process::Output) -> Self {
        let exit = match output.status.code() {
            Some(code) => format!("exit status {code}"),
            None => format!("ended by a signal ({})", output.status),
        };
        Self { stdout: String::from_utf8_lossy(&output.stdout).into_owned(), stderr: String::from_utf8_lossy(&output.stderr).into_owned(), exit }
    }

    /// Its stdout when it exited 0; otherwise an error naming `command`, its exit and stderr.
    pub fn stdout_of_success(self, command: &str) -> crate::Result<String> {
        if self.exit == "exit status 0" {
            return Ok(self.stdout);
        }
        Err(crate::HarnessError::Command { command: command.to_owned(), detail: format!("{}; stderr: {:?}", self.exit, self.stderr.trim()) })
    }
}

/// A command a failed trial's diagnostics bundle runs on every node, its output saved as
/// `nodes/<node>/<name>.txt`: the harness's own (links, routes, rules, iptables, qdiscs) and
/// those a profile adds (its CNI's status tools).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiagnosticCommand {
    /// A file name: letters, digits, `-`, `_`, `.`.
    pub name: String,
    /// The program and its arguments.
    pub run: Vec<String>,
    /// For a command in the CNI's agent pods: the container it runs in (an agent pod has
    /// several: Antrea's `antrea-agent` beside `antrea-ovs`).
    #[serde(default)]
    pub container: Option<String>,
}

/// A CNI's own tool that traces one flow through its datapath, which a failed trial's
/// bundle asks for the flow it traces (profile field `diagnostics.flowTrace`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlowTracer {
    /// Antrea's Traceflow (`crd.antrea.io/v1beta1`): a packet injected at the source pod
    /// and followed through OVS on every node it crosses.
    AntreaTraceflow,
}

impl DiagnosticCommand {
    /// In an agent command's arguments, a failed trial's namespace: the command runs once
    /// per namespace of the trial (`hubble observe --namespace {namespace}`: that trial's
    /// flows, not the node's last few thousand).
    pub const NAMESPACE: &'static str = "{namespace}";

    pub fn new(name: &str, run: &[&str]) -> Self {
        Self { name: name.to_owned(), run: run.iter().map(|a| (*a).to_owned()).collect(), container: None }
    }

    /// What to run for a trial with `namespaces`, each with the file name its output is
    /// saved under: the command as written, or once per namespace (`<name>.<namespace>`)
    /// when it names [`Self::NAMESPACE`].
    pub fn runs_for(&self, namespaces: &[String]) -> Vec<(String, Vec<String>)> {
        if !self.run.iter().any(|a| a.contains(Self::NAMESPACE)) {
            return vec![(self.name.clone(), self.run.clone())];
        }
        namespaces.iter().map(|ns| (format!("{}.{ns}", self.name), self.run.iter().map(|a| a.replace(Self::NAMESPACE, ns)).collect())).collect()
    }

    /// Why it cannot be run as written, if it cannot.
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.name.is_empty() || !self.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) || self.name.starts_with('.') {
            return Err(format!("name: expected a file name of letters, digits, `-`, `_` and `.`, found `{}`", self.name));
        }
        if self.run.first().is_none_or(|p| p.is_empty()) {
            return Err(format!("run: expected the program and its arguments for `{}`, found none", self.name));
        }
        Ok(())
    }
}
