//! The existing provider: any cluster named by a kubeconfig and context. The run creates
//! (never adopts) objects whose names carry its run id, refuses a name that exists, and
//! deletes only what it created (checked by UID). The external echo is the user's.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::kubernetes::{Environment, KubeCluster};
use crate::cni::{CniProfile, Feature};
use crate::error::{HarnessError, Result};
use crate::model::Node;
use crate::tools::PROBE_IMAGE;

/// Where the cluster is and what the user provides around it.
#[derive(Debug, Clone)]
pub struct ExistingOptions {
    /// `CNICONF_KUBECONFIG`, else every file of `KUBECONFIG` (merged as kubectl does), else
    /// `~/.kube/config`.
    pub kubeconfigs: Vec<PathBuf>,
    pub context: Option<String>,
    /// An echo server outside the cluster (`cni-probe serve`, e.g. the probe image on a VM).
    pub external_echo: Option<SocketAddr>,
    /// Egress IPs routable to the echo; for Cilium they must already be on the gateway node.
    pub egress_ips: Vec<IpAddr>,
    /// The probe image pods run, from a registry the cluster can pull from.
    pub probe_image: String,
}

pub const ECHO_VARIABLE: &str = "CNICONF_EXTERNAL_ECHO";
pub const EGRESS_IPS_VARIABLE: &str = "CNICONF_EGRESS_IPS";

impl ExistingOptions {
    pub fn from_env() -> Result<Self> {
        let variable = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let kubeconfigs: Vec<PathBuf> = match (variable("CNICONF_KUBECONFIG"), variable("KUBECONFIG")) {
            (Some(one), _) => vec![PathBuf::from(one)],
            (None, Some(list)) => std::env::split_paths(&list).filter(|p| !p.as_os_str().is_empty()).collect(),
            (None, None) => std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".kube/config")).into_iter().collect(),
        };
        let malformed =
            |name: &str, value: &str, expected: &str| HarnessError::FixtureMalformed { path: name.into(), detail: format!("`{value}` is not {expected}") };
        let external_echo =
            variable(ECHO_VARIABLE).map(|v| v.parse().map_err(|_| malformed(ECHO_VARIABLE, &v, "an address:port such as 192.0.2.10:8080"))).transpose()?;
        let egress_ips = variable(EGRESS_IPS_VARIABLE)
            .map(|v| {
                v.split(',')
                    .map(|ip| ip.trim().parse().map_err(|_| malformed(EGRESS_IPS_VARIABLE, ip, "an IP address (a comma-separated list is expected)")))
                    .collect::<Result<Vec<_>>>()
            })
            .transpose()?
            .unwrap_or_default();
        Ok(Self {
            kubeconfigs,
            context: variable("CNICONF_KUBE_CONTEXT"),
            external_echo,
            egress_ips,
            probe_image: variable("CNICONF_PROBE_IMAGE").unwrap_or_else(|| PROBE_IMAGE.into()),
        })
    }
}

/// Why the existing provider cannot host a scenario needing `feature`, if it cannot.
pub fn cannot_host(options: &ExistingOptions, feature: Feature) -> Option<String> {
    match feature {
        Feature::EgressFailover => Some("the existing provider does not stop nodes of a cluster it does not own".into()),
        Feature::RuntimeCniCalls => Some("the existing cluster's container runtime makes its CNI calls; the harness sends none and reads no node state there".into()),
        Feature::InPlaceUpgrade => Some("an upgrade replaces the CNI of the cluster; the existing provider never changes the CNI of a cluster it does not own".into()),
        Feature::CniResourceUsage => Some("the CNI's agent pods are read from their cgroups on their nodes; the existing provider runs nothing on nodes of a cluster it does not own".into()),
        Feature::PerformanceTools => Some("the performance scenarios run iperf3 on nodes and outside the cluster; the existing provider runs nothing on nodes of a cluster it does not own, and outside it has only the user's echo".into()),
        Feature::TsnPriorityMap => Some("the TSN scenarios configure the node NIC's qdisc and read its counters; the existing provider does not run commands on nodes of a cluster it does not own".into()),
        Feature::GatewayWeights | Feature::RequestMirror | Feature::LoadBalancerService | Feature::HostPort => {
            Some("loads from outside need a probe the harness runs there; the existing provider has only the user's echo".into())
        }
        Feature::EgressGateway | Feature::EgressExcludedCidrs if options.egress_ips.is_empty() => {
            Some(format!("no egress IPs given: set {EGRESS_IPS_VARIABLE} to addresses the external echo can reach"))
        }
        _ => None,
    }
}

struct UserEnvironment {
    options: ExistingOptions,
    echo: SocketAddr,
    next_egress_ip: AtomicUsize,
}

impl Environment for UserEnvironment {
    fn allocate_egress_ip(&self) -> Result<IpAddr> {
        let index = self.next_egress_ip.fetch_add(1, Ordering::SeqCst);
        self.options.egress_ips.get(index).copied().ok_or_else(|| HarnessError::NotFound {
            what: "free egress IP".into(),
            wanted: format!("in {EGRESS_IPS_VARIABLE} ({} given, one per egress scenario)", self.options.egress_ips.len()),
        })
    }

    fn place_egress_ip(&self, _node: &Node, _ip: IpAddr) -> Result<()> {
        // On a cluster we do not own, the operator assigns egress IPs to gateway nodes.
        Ok(())
    }

    fn external_echo(&self) -> SocketAddr {
        self.echo
    }

    fn probe_image(&self) -> String {
        self.options.probe_image.clone()
    }

    fn run_probe_outside(&self, _args: &[String]) -> Result<crate::model::ExecOutput> {
        Err(HarnessError::NotFound { what: "probe outside the cluster".into(), wanted: "on an existing cluster (only the user's echo is there)".into() })
    }

    fn fail_node(&self, node: &Node) -> Result<()> {
        Err(HarnessError::NotFound { what: "way to fail".into(), wanted: format!("node {} of a cluster the harness does not own", node.name) })
    }

    fn restore_node(&self, _node: &Node) -> Result<()> {
        Ok(())
    }

    fn run_on_node(&self, node: &Node, program: &str, _args: &[&str]) -> Result<crate::model::ExecOutput> {
        Err(HarnessError::NotFound { what: "way to run".into(), wanted: format!("`{program}` on node {} of a cluster the harness does not own", node.name) })
    }

    /// Reads only: the user's kubectl, kubeconfig files and context, as the run connects.
    fn describe_pods(&self, namespace: &str) -> Option<Result<String>> {
        Some(super::cli::run(&describe_pods_step(&self.options, namespace)))
    }

    fn teardown(&self) -> Result<()> {
        Ok(())
    }
}

/// `kubectl describe pods` of `namespace` on the user's cluster: the kubeconfig files the run
/// merged (kubectl merges `KUBECONFIG`'s list the same way) and its context, if one was named.
fn describe_pods_step(options: &ExistingOptions, namespace: &str) -> super::cli::CliStep {
    let context: Vec<&str> = options.context.iter().flat_map(|c| ["--context", c.as_str()]).collect();
    let kubeconfig = std::env::join_paths(&options.kubeconfigs).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
    super::kubernetes::describe_pods_step(namespace, &context).with_env("KUBECONFIG", kubeconfig)
}

/// The CNI version that really runs on the cluster, read from the tag of its node agent's
/// image, and where that came from; the profile's pin when it cannot be read (and says so).
pub fn running_version(access: &crate::kube_access::KubeAccess, cni: &CniProfile) -> (String, String) {
    let Some(agent) = cni.agent() else { return (cni.version.clone(), "pinned by the profile (it names no agent DaemonSet to read)".into()) };
    let image =
        access.get(&agent.reference()).map(|found| found.and_then(|d| d["spec"]["template"]["spec"]["containers"][0]["image"].as_str().map(str::to_owned)));
    let place = agent.describe();
    match image {
        Ok(Some(image)) => match version_of_image(&image) {
            Some(version) if version == cni.version => (version, format!("read from the image of {place} ({image}); as the profile pins")),
            Some(version) => (version, format!("read from the image of {place} ({image}); the profile pins {}", cni.version)),
            None => (cni.version.clone(), format!("pinned by the profile; the image of {place} ({image}) carries no version tag")),
        },
        Ok(None) => (cni.version.clone(), format!("pinned by the profile; {place} was not found on the cluster")),
        Err(e) => (cni.version.clone(), format!("pinned by the profile; reading {place} failed: {e}")),
    }
}

/// The version in an image reference's tag: `quay.io/cilium/cilium:v1.16.6@sha256:…` is 1.16.6.
pub fn version_of_image(image: &str) -> Option<String> {
    let without_digest = image.split('@').next()?;
    let (_, tag) = without_digest.rsplit_once(':').filter(|(name, _)| !name.is_empty())?;
    let version = tag.trim_start_matches('v');
    (!tag.contains('/') && version.starts_with(|c: char| c.is_ascii_digit())).then(|| version.to_owned())
}

/// Connects to the user's cluster.
pub fn provision(cni: &CniProfile, options: &ExistingOptions) -> Result<KubeCluster> {
    let started = std::time::Instant::now();
    let echo = options.external_echo.ok_or_else(|| HarnessError::NotReady {
        what: "the existing provider".into(),
        detail: format!(
            "set {ECHO_VARIABLE}=<address:port> of an echo outside the cluster, e.g. `docker run -d -p 8080:8080 {PROBE_IMAGE}` on a host the pods reach"
        ),
    })?;
    let runtime =
        Arc::new(tokio::runtime::Runtime::new().map_err(|e| HarnessError::Command { command: "starting a tokio runtime".into(), detail: e.to_string() })?);
    let access = crate::kube_access::KubeAccess::connect(runtime, &options.kubeconfigs, options.context.as_deref())?;
    let (cni_version, cni_version_source) = running_version(&access, cni);
    let info = super::ClusterInfo {
        provider: "existing".into(),
        cluster: super::runs::new_cluster_name(),
        run_id: super::runs::new_run_id(),
        cni: cni.name.clone(),
        components: super::components::cluster_parts(cni, &cni_version, "running on the user's cluster"),
        purpose: cni.purpose(),
        cni_version,
        cni_version_source,
        kernel: String::new(),
        ready_in: started.elapsed(),
    };
    let environment = UserEnvironment { options: options.clone(), echo, next_egress_ip: AtomicUsize::new(0) };
    KubeCluster::new(info, access, cni.clone(), Box::new(environment), Default::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A failed trial's `kubectl describe pods` names the user's cluster as the run did:
    /// every kubeconfig file (kubectl merges `KUBECONFIG`'s list, first one winning, as the
    /// run's own client does) and the context, never a kubeconfig of the harness's.
    #[test]
    fn describing_a_trial_s_pods_uses_the_user_s_kubeconfigs_and_context() {
        let options = ExistingOptions {
            kubeconfigs: vec!["/home/u/.kube/config".into(), "/tmp/extra.yaml".into()],
            context: Some("prod-eu".into()),
            external_echo: None,
            egress_ips: vec![],
            probe_image: PROBE_IMAGE.into(),
        };
        let step = describe_pods_step(&options, "prod-t3-0a1b2c");
        assert_eq!(step.to_string(), "kubectl --context prod-eu describe pods --namespace prod-t3-0a1b2c");
        assert_eq!(step.env, [("KUBECONFIG".to_owned(), "/home/u/.kube/config:/tmp/extra.yaml".to_owned())]);
        let no_context = describe_pods_step(&ExistingOptions { context: None, ..options }, "prod-t3-0a1b2c");
        assert_eq!(no_context.to_string(), "kubectl describe pods --namespace prod-t3-0a1b2c");
    }

    #[test]
    fn the_version_is_the_images_tag() {
        assert_eq!(
            version_of_image("quay.io/cilium/cilium:v1.16.6@sha256:1e0896b1c4c188b4812c7e0bed7ec3f5631388ca88325c1391a0ef9172c448da").as_deref(),
            Some("1.16.6")
        );
        assert_eq!(version_of_image("antrea/antrea-agent-ubuntu:v2.2.0").as_deref(), Some("2.2.0"));
        assert_eq!(version_of_image("registry:5000/antrea/antrea-agent-ubuntu").as_deref(), None, "a registry port is not a tag");
        assert_eq!(version_of_image("antrea/antrea-agent-ubuntu:latest"), None);
    }

    #[test]
    fn the_existing_provider_reports_the_version_it_finds_running() {
        use crate::kube_access::mock;
        let (access, _seen, _runtime) = mock::api_server(|method, path, _| match (method, path) {
            ("GET", "/apis/apps/v1") => (
                http::StatusCode::OK,
                serde_json::json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "apps/v1", "resources": [
                {"name": "daemonsets", "singularName": "daemonset", "namespaced": true, "kind": "DaemonSet", "verbs": ["get", "list"]}]}),
            ),
            ("GET", "/apis/apps/v1/namespaces/kube-system/daemonsets/antrea-agent") => (
                http::StatusCode::OK,
                serde_json::json!({
                "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "antrea-agent", "namespace": "kube-system"},
                "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "antrea-agent", "image": "antrea/antrea-agent-ubuntu:v2.1.0"}]}}}}),
            ),
            _ => mock::status(404, "NotFound", path),
        });
        let (version, source) = running_version(&access, &crate::cni::antrea());
        assert_eq!(version, "2.1.0", "what runs, not the pin");
        assert!(source.contains("DaemonSet kube-system/antrea-agent") && source.contains("the profile pins 2.2.0"), "{source}");
    }
}
