//! A stand-in cluster for unit tests of the scenario runner and of scenarios' flows: no
//! traffic, no datapath; node commands and probe runs answer as each test scripts them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::Cluster;
use crate::error::{HarnessError, Result};
use crate::model::{EgressPolicy, EgressStatus, Labels, NamespaceSpec, Node, Pod, PodSpec};
use cni_probe::Observation;

pub struct StandInCluster {
    info: crate::provider::ClusterInfo,
    nodes: Vec<Node>,
    /// The source address the external echo sees, one per request, the last repeated.
    sources: Mutex<Vec<std::net::IpAddr>>,
    /// Answers node commands (none: a scenario here runs none).
    node_commands: Option<Box<NodeCommands>>,
    /// Answers probe runs in pods (none: a scenario here runs none).
    probe_runs: Option<Box<ProbeRuns>>,
    /// Restores a failed node (none: at once).
    restore: Option<Box<dyn Fn(&Node) + Send + Sync>>,
}

/// What a node command answers: the node, the program, its arguments.
pub type NodeCommands = dyn Fn(&Node, &str, &[&str]) -> crate::model::ExecOutput + Send + Sync;
/// What a probe run in a pod answers: the pod, the probe's arguments.
pub type ProbeRuns = dyn Fn(&Pod, &[String]) -> crate::model::ExecOutput + Send + Sync;

impl StandInCluster {
    /// The same stand-in, answering node commands with `answer`.
    pub fn with_node_commands(self, answer: impl Fn(&Node, &str, &[&str]) -> crate::model::ExecOutput + Send + Sync + 'static) -> Self {
        Self { node_commands: Some(Box::new(answer)), ..self }
    }

    /// The same stand-in, answering probe runs in pods with `answer`.
    pub fn with_probe_runs(self, answer: impl Fn(&Pod, &[String]) -> crate::model::ExecOutput + Send + Sync + 'static) -> Self {
        Self { probe_runs: Some(Box::new(answer)), ..self }
    }

    /// The same stand-in, restoring a failed node with `restore` (a slow mend, say).
    pub fn with_restore(self, restore: impl Fn(&Node) + Send + Sync + 'static) -> Self {
        Self { restore: Some(Box::new(restore)), ..self }
    }
}

impl Cluster for StandInCluster {
    fn info(&self) -> &crate::provider::ClusterInfo {
        &self.info
    }
    fn nodes(&self) -> &[Node] {
        &self.nodes
    }
    fn create_namespace(&self, _: &NamespaceSpec) -> Result<()> {
        Ok(())
    }
    fn create_pod(&self, pod: &PodSpec) -> Result<Pod> {
        if !self.nodes.iter().any(|n| n.name == pod.node) {
            return Err(HarnessError::NotReady { what: format!("pod {}", pod.name), detail: "stand-in".into() });
        }
        Ok(Pod {
            name: pod.name.clone(),
            namespace: pod.namespace.clone(),
            labels: pod.labels.clone(),
            node: pod.node.clone(),
            address: "10.244.1.9".parse().unwrap(),
        })
    }
    fn allocate_egress_ip(&self) -> Result<std::net::IpAddr> {
        Ok("192.0.2.1".parse().unwrap())
    }
    fn apply_egress_policy(&self, _: &EgressPolicy) -> Result<()> {
        Ok(())
    }
    fn egress_status(&self, _: &EgressPolicy, _: &[Pod]) -> Result<Option<EgressStatus>> {
        Ok(None)
    }
    fn external_echo_url(&self) -> String {
        "http://192.0.2.2:8080/".into()
    }
    fn external_closed_port_url(&self) -> String {
        "http://192.0.2.2:1/".into()
    }
    fn request_from(&self, _: &Pod, _: &str, _: Duration) -> Result<Observation> {
        let mut sources = self.sources.lock().unwrap();
        let source = if sources.len() > 1 { sources.remove(0) } else { sources[0] };
        Ok(Observation::Answered {
            reply: cni_probe::EchoReply { client: std::net::SocketAddr::new(source, 40000), server: "external".into(), path: "/".into() },
        })
    }
    fn apply_http_route(&self, _: &str, _: &crate::model::HttpRoute) -> Result<()> {
        Ok(())
    }
    fn expose_service(&self, _: &str, _: &str, _: &Labels, _: u16) -> Result<String> {
        Ok("http://192.0.2.4/".into())
    }
    fn gateway_url(&self, path: &str) -> String {
        format!("http://192.0.2.3{path}")
    }
    fn load_from_outside(&self, _: &str, _: &cni_probe::LoadOptions) -> Result<cni_probe::LoadReport> {
        unreachable!("no scenario here sends traffic")
    }
    fn served_requests(&self, _: &Pod, _: &str) -> Result<u64> {
        Ok(0)
    }
    fn fail_node(&self, _: &Node) -> Result<()> {
        Ok(())
    }
    fn restore_node(&self, node: &Node) -> Result<()> {
        if let Some(restore) = &self.restore {
            restore(node);
        }
        Ok(())
    }
    fn run_on_node(&self, node: &Node, program: &str, args: &[&str]) -> Result<crate::model::ExecOutput> {
        match &self.node_commands {
            Some(answer) => Ok(answer(node, program, args)),
            None => {
                Err(HarnessError::NotFound { what: "node commands".into(), wanted: format!("`{program}` on node {} of a stand-in that runs none", node.name) })
            }
        }
    }
    fn run_probe_in(&self, pod: &Pod, args: &[String]) -> Result<crate::model::ExecOutput> {
        Ok(self.probe_runs.as_ref().expect("this stand-in runs no probe")(pod, args))
    }
    fn teardown(&self) -> Result<()> {
        Ok(())
    }
}

pub fn stand_in() -> Arc<dyn Cluster> {
    stand_in_seen_as(vec![], &[])
}

/// A stand-in with `nodes` whose pods are seen outside as `sources`.
pub fn stand_in_seen_as(nodes: Vec<Node>, sources: &[&str]) -> Arc<dyn Cluster> {
    Arc::new(stand_in_with(nodes, sources))
}

/// The same, to be given node commands and probe runs before it is shared.
pub fn stand_in_with(nodes: Vec<Node>, sources: &[&str]) -> StandInCluster {
    StandInCluster {
        node_commands: None,
        probe_runs: None,
        restore: None,
        nodes,
        sources: Mutex::new(sources.iter().map(|s| s.parse().unwrap()).collect()),
        info: crate::provider::ClusterInfo {
            provider: "stand-in".into(),
            cluster: "c".into(),
            run_id: "0a1b2c".into(),
            cni: "none".into(),
            cni_version: "0".into(),
            cni_version_source: "stand-in".into(),
            kernel: "0".into(),
            ready_in: Duration::ZERO,
            purpose: crate::provider::components::Purpose::Certification,
            components: vec![],
        },
    }
}
