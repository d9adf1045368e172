//! The existing provider: any cluster named by a kubeconfig and context. The run creates
//! (never adopts) objects whose names carry its run id, refuses a name that exists, and
//! deletes only what it created (checked by UID). The external echo is the user's.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::kind::PROBE_IMAGE;
use super::kubernetes::{Environment, KubeCluster};
use crate::cni::{CniProfile, Feature};
use crate::error::{HarnessError, Result};
use crate::model::Node;

/// Where the cluster is and what the user provides around it.
#[derive(Debug, Clone)]
pub struct ExistingOptions {
    pub kubeconfig: PathBuf,
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
        let kubeconfig = variable("CNICONF_KUBECONFIG")
            .or_else(|| variable("KUBECONFIG").and_then(|k| k.split(':').next().map(str::to_owned)))
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".kube/config")))
            .unwrap_or_default();
        let malformed = |name: &str, value: &str, expected: &str| HarnessError::FixtureMalformed {
            path: name.into(),
            detail: format!("`{value}` is not {expected}"),
        };
        let external_echo = variable(ECHO_VARIABLE)
            .map(|v| v.parse().map_err(|_| malformed(ECHO_VARIABLE, &v, "an address:port such as 192.0.2.10:8080")))
            .transpose()?;
        let egress_ips = variable(EGRESS_IPS_VARIABLE)
            .map(|v| {
                v.split(',')
                    .map(|ip| ip.trim().parse().map_err(|_| malformed(EGRESS_IPS_VARIABLE, ip, "an IP address (a comma-separated list is expected)")))
                    .collect::<Result<Vec<_>>>()
            })
            .transpose()?
            .unwrap_or_default();
        Ok(Self {
            kubeconfig,
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
        Feature::GatewayWeights | Feature::RequestMirror | Feature::LoadBalancerService => {
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

    fn teardown(&self) -> Result<()> {
        Ok(())
    }
}

/// Connects to the user's cluster.
pub fn provision(cni: &CniProfile, options: &ExistingOptions) -> Result<KubeCluster> {
    let started = std::time::Instant::now();
    let echo = options.external_echo.ok_or_else(|| HarnessError::NotReady {
        what: "the existing provider".into(),
        detail: format!("set {ECHO_VARIABLE}=<address:port> of an echo outside the cluster, e.g. `docker run -d -p 8080:8080 {PROBE_IMAGE}` on a host the pods reach"),
    })?;
    let runtime = Arc::new(
        tokio::runtime::Runtime::new().map_err(|e| HarnessError::Command { command: "starting a tokio runtime".into(), detail: e.to_string() })?,
    );
    let access = crate::kube_access::KubeAccess::connect(runtime, &options.kubeconfig, options.context.as_deref())?;
    let info = super::ClusterInfo {
        provider: "existing".into(),
        cluster: super::runs::new_cluster_name(),
        run_id: super::runs::new_run_id(),
        cni: cni.name.into(),
        cni_version: format!("{} expected (as installed on the cluster)", cni.version),
        kernel: String::new(),
        ready_in: started.elapsed(),
    };
    let environment = UserEnvironment { options: options.clone(), echo, next_egress_ip: AtomicUsize::new(0) };
    KubeCluster::new(info, access, cni.clone(), Box::new(environment), Default::default())
}
