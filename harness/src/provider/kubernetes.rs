//! A [`Cluster`] on a real API server, shared by the kind and existing providers: pods are
//! probe containers, policies are the CNI profile's objects, probes run through exec.
//! What differs between kind and an existing cluster sits behind [`Environment`].

use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cni_probe::{LoadReport, Observation};
use serde_json::{json, Value};

use super::{Cluster, ClusterInfo};
use crate::cni::CniProfile;
use crate::error::{HarnessError, Result};
use crate::kube_access::KubeAccess;
use crate::model::{EgressPolicy, EgressStatus, HttpRoute, NamespaceSpec, Node, NodeRole, Pod, PodSpec};

/// Every namespace a run creates carries this label with the run's id, so a person can see
/// whose it is. Teardown does not select by it: it deletes exactly what the run created.
pub const RUN_LABEL: &str = "cni-conformance.run";

/// Budgets of the waits on a real API server.
#[derive(Debug, Clone)]
pub struct KubeTimeouts {
    pub pod_ready: Duration,
    pub crd_established: Duration,
    /// A Gateway or LoadBalancer Service getting its address.
    pub address_assigned: Duration,
}

impl Default for KubeTimeouts {
    fn default() -> Self {
        Self { pod_ready: Duration::from_secs(180), crd_established: Duration::from_secs(60), address_assigned: Duration::from_secs(120) }
    }
}

/// Where the cluster's Gateway lives. One Gateway per cluster, shared by every process and
/// run on it, each with routes of its own: NGINX Gateway Fabric 1.6 serves one Gateway
/// per GatewayClass and ignores the others (its compatibility page; `prepare_requests.go`),
/// so a Gateway per process would leave all processes but one without an address.
pub const GATEWAY_NAMESPACE: &str = "cniconf-gateway";

/// The cluster's Gateway: one HTTP listener that takes routes from every namespace. It
/// belongs to the cluster, like the implementation serving it: no process deletes it (a
/// disposable cluster takes it along; a kept one, or one a crashed run left it on, reuses it).
pub fn gateway_object(class: &str) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "conformance", "namespace": GATEWAY_NAMESPACE},
        "spec": {
            "gatewayClassName": class,
            "listeners": [{"name": "http", "protocol": "HTTP", "port": 80, "allowedRoutes": {"namespaces": {"from": "All"}}}],
        },
    })
}

/// A Service on `port` selecting the probe pods `selector` names, to their `target_port`
/// (8080, the HTTP echo; or another of the probe's ports, such as its hold echo).
pub fn service_object(namespace: &str, name: &str, port: u16, target_port: u16, selector: &crate::model::Labels, load_balancer: bool) -> Value {
    let port_name = if target_port == 8080 { "http" } else { "tcp" };
    let mut service = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": selector, "ports": [{"name": port_name, "port": port, "targetPort": target_port}]},
    });
    if load_balancer {
        service["spec"]["type"] = json!("LoadBalancer");
    }
    service
}

/// The route's Services (one per backend and the mirror) and its HTTPRoute, attached to
/// the cluster's Gateway, with its generation in a response header.
pub fn route_objects(namespace: &str, route: &HttpRoute) -> Vec<Value> {
    let app = |service: &str| crate::model::labels([("app", service)]);
    let mut objects: Vec<Value> = route.backends.iter().map(|b| service_object(namespace, &b.service, b.port, 8080, &app(&b.service), false)).collect();
    let mut filters = vec![json!({
        "type": "ResponseHeaderModifier",
        "responseHeaderModifier": {"add": [{"name": crate::model::ROUTE_GENERATION_HEADER, "value": route.generation.to_string()}]},
    })];
    if let Some((service, port)) = &route.mirror_to {
        objects.push(service_object(namespace, service, *port, 8080, &app(service), false));
        filters.push(json!({"type": "RequestMirror", "requestMirror": {"backendRef": {"name": service, "port": port}}}));
    }
    objects.push(json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": route.name, "namespace": namespace},
        "spec": {
            "parentRefs": [{"name": "conformance", "namespace": GATEWAY_NAMESPACE}],
            "rules": [{
                "matches": [{"path": {"type": "PathPrefix", "value": route.path_prefix}}],
                "filters": filters,
                "backendRefs": route.backends.iter().map(|b| json!({"kind": "Service", "name": b.service, "port": b.port, "weight": b.weight})).collect::<Vec<_>>(),
            }],
        },
    }));
    objects
}

/// How long a Traceflow may take to finish: Antrea's own default timeout is 20 s; the
/// bundle's whole budget is `diagnostics::LIMITS.time`.
const TRACEFLOW_TIMEOUT_SECONDS: u64 = 10;

/// Antrea's Traceflow of one TCP SYN from `client` to `to`, as `crd.antrea.io/v1beta1`
/// defines it (`build/charts/antrea/crds/traceflow.yaml`: `source.{namespace,pod}`,
/// `destination.ip`, `packet.ipHeader.protocol`, `packet.transportHeader.tcp.{dstPort,
/// flags}`, `timeout` 1-300 s). Cluster-scoped; `name` carries the trial.
pub fn traceflow_object(name: &str, client: &Pod, to: SocketAddr) -> Value {
    json!({
        "apiVersion": "crd.antrea.io/v1beta1",
        "kind": "Traceflow",
        "metadata": {"name": name},
        "spec": {
            "source": {"namespace": client.namespace, "pod": client.name},
            "destination": {"ip": to.ip().to_string()},
            "packet": {"ipHeader": {"protocol": 6}, "transportHeader": {"tcp": {"dstPort": to.port(), "flags": 2}}},
            "timeout": TRACEFLOW_TIMEOUT_SECONDS,
        },
    })
}

/// A Traceflow's status as a reader follows the packet: its phase (and why it failed),
/// then each node's observations in order (component, action, and what it changed:
/// translated addresses, the tunnel, the Egress and its IP and node, a policy).
pub fn render_traceflow(traceflow: &Value) -> String {
    let status = &traceflow["status"];
    let text = |v: &Value| v.as_str().map(str::to_owned).or_else(|| v.as_u64().map(|n| n.to_string()));
    let spec = &traceflow["spec"];
    let mut out = format!(
        "Traceflow {} (crd.antrea.io/v1beta1): TCP SYN from pod {}/{} to {}:{}\nphase: {}{}\n",
        text(&traceflow["metadata"]["name"]).unwrap_or_default(),
        text(&spec["source"]["namespace"]).unwrap_or_default(),
        text(&spec["source"]["pod"]).unwrap_or_default(),
        text(&spec["destination"]["ip"]).unwrap_or_default(),
        text(&spec["packet"]["transportHeader"]["tcp"]["dstPort"]).unwrap_or_default(),
        text(&status["phase"]).unwrap_or_else(|| "none reported".into()),
        text(&status["reason"]).map(|r| format!(" ({r})")).unwrap_or_default(),
    );
    for result in status["results"].as_array().into_iter().flatten() {
        out.push_str(&format!("node {} ({}):\n", text(&result["node"]).unwrap_or_default(), text(&result["role"]).unwrap_or_default()));
        for observation in result["observations"].as_array().into_iter().flatten() {
            let mut line = format!("  {} {}", text(&observation["component"]).unwrap_or_default(), text(&observation["action"]).unwrap_or_default());
            for field in [
                "componentInfo",
                "pod",
                "networkPolicy",
                "networkPolicyRule",
                "translatedSrcIP",
                "translatedDstIP",
                "tunnelDstIP",
                "egress",
                "egressIP",
                "egressNode",
            ] {
                if let Some(value) = text(&observation[field]).filter(|v| !v.is_empty()) {
                    line.push_str(&format!(" {field}={value}"));
                }
            }
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

/// How long `kubectl describe pods` of one namespace may take in a failed trial's bundle.
const DESCRIBE_PODS: Duration = Duration::from_secs(10);

/// `kubectl describe pods` of `namespace`, with `cluster` the arguments that name the
/// cluster (`--kubeconfig <file>`, `--context <name>`).
pub fn describe_pods_step(namespace: &str, cluster: &[&str]) -> super::cli::CliStep {
    let args = cluster.iter().copied().chain(["describe", "pods", "--namespace", namespace]);
    super::cli::CliStep::new(format!("describing the pods of namespace {namespace}"), "kubectl", args, DESCRIBE_PODS)
}

/// What a provider adds around an API server.
pub trait Environment: Send + Sync {
    /// An egress IP routable from the external echo, unique within the run.
    fn allocate_egress_ip(&self) -> Result<IpAddr>;
    /// Puts `ip` on `node`'s interface, for CNIs that expect it there (Cilium).
    fn place_egress_ip(&self, node: &Node, ip: IpAddr) -> Result<()>;
    /// Where the external echo listens.
    fn external_echo(&self) -> SocketAddr;
    /// The probe image pods run.
    fn probe_image(&self) -> String;
    /// The iperf3 image every pod runs beside the probe, where performance tools were asked for.
    fn iperf3_image(&self) -> Option<String> {
        None
    }
    /// Runs `program args` outside the cluster (where the external echo runs).
    fn run_outside(&self, program: &str, _args: &[&str]) -> Result<crate::model::ExecOutput> {
        Err(HarnessError::NotFound { what: "way to run".into(), wanted: format!("`{program}` outside a cluster the harness does not own") })
    }
    /// Makes a node fail without warning (for failover scenarios).
    fn fail_node(&self, node: &Node) -> Result<()>;
    /// `kubectl describe pods` of `namespace` ([`describe_pods_step`]), where the
    /// environment runs kubectl against the cluster (kind: with the run's own kubeconfig;
    /// existing: the user's kubeconfig and context); `None` where it does not.
    fn describe_pods(&self, _namespace: &str) -> Option<Result<String>> {
        None
    }
    /// Does what an upgrade from `running` to `with` needs before its switch and running
    /// pods do not see (Cilium's pre-flight check); [`Self::replace_cni`] then skips it.
    fn prepare_cni_replacement(&self, _initial: &CniProfile, _running: &CniProfile, _with: &CniProfile) -> Result<()> {
        Ok(())
    }
    /// Upgrades (or rolls back) the cluster's CNI in place from `running` to `with`; the
    /// cluster was made with `initial`.
    fn replace_cni(&self, _initial: &CniProfile, running: &CniProfile, with: &CniProfile) -> Result<()> {
        Err(HarnessError::UpgradeRefused {
            from: running.name.clone(),
            to: with.name.clone(),
            why: "this provider never changes the CNI of a cluster it does not own".into(),
        })
    }
    /// Brings a failed node back as it was.
    fn restore_node(&self, node: &Node) -> Result<()>;
    /// Runs `program args` on a node (its container on kind).
    fn run_on_node(&self, node: &Node, program: &str, args: &[&str]) -> Result<crate::model::ExecOutput>;
    /// Runs the node's `program` in `pod`'s network namespace, through the node the pod is
    /// on (a priority trace's pod hop: `tc` on the pod's `eth0`); the pod's own containers
    /// run only the probe. Where nodes cannot be reached (an existing cluster), it says so.
    fn run_in_pod_network(&self, pod: &Pod, program: &str, _args: &[&str]) -> Result<crate::model::ExecOutput> {
        Err(HarnessError::NotFound {
            what: format!("`{program}` in pod {}/{}", pod.namespace, pod.name),
            wanted: "a way into the pod's network through its node: the harness cannot reach this cluster's nodes, and pods run only the probe (and iperf3 where performance tools were asked for), so this hop is not read here".into(),
        })
    }
    /// Runs the harness machine's `program` in a node's network (see
    /// [`Cluster::run_in_node_network`]); where it cannot, as [`Self::run_on_node`].
    fn run_in_node_network(&self, node: &Node, program: &str, args: &[&str]) -> Result<crate::model::ExecOutput> {
        self.run_on_node(node, program, args)
    }
    /// Puts a local file on a node; its path there.
    fn put_file_on_node(&self, node: &Node, path: &std::path::Path) -> Result<String> {
        Err(HarnessError::NotFound {
            what: "way to put files".into(),
            wanted: format!("{} on node {} of a cluster the harness does not own", path.display(), node.name),
        })
    }
    /// Runs the probe with `args` outside the cluster (where the external echo runs) and
    /// returns what it printed and how it exited.
    fn run_probe_outside(&self, args: &[String]) -> Result<crate::model::ExecOutput>;
    /// Removes what the provider made (the kind cluster, the echo container).
    fn teardown(&self) -> Result<()>;
}

/// A cluster reached through kube-rs.
pub struct KubeCluster {
    info: ClusterInfo,
    access: KubeAccess,
    cni: CniProfile,
    /// The profile the cluster's CNI runs now: `cni` until an upgrade replaces it.
    running: Mutex<CniProfile>,
    nodes: Vec<Node>,
    environment: Box<dyn Environment>,
    timeouts: KubeTimeouts,
    /// What this run created (namespaces, policies, its Gateway), each with the UID the API
    /// server gave it: teardown deletes these and nothing else.
    created: Mutex<Vec<(Value, String)>>,
    /// The run's Gateway address, or why it has none: set once by the first trial that
    /// needs it, so later trials neither wait again nor hide the first failure.
    gateway_address: std::sync::OnceLock<std::result::Result<IpAddr, String>>,
    torn_down: std::sync::atomic::AtomicBool,
}

impl KubeCluster {
    /// Connects the pieces; on failure the environment is torn down before the error returns.
    pub fn new(mut info: ClusterInfo, access: KubeAccess, cni: CniProfile, environment: Box<dyn Environment>, timeouts: KubeTimeouts) -> Result<Self> {
        let (nodes, kernel) = match list_nodes(&access) {
            Ok(listed) => listed,
            Err(e) => {
                let _ = environment.teardown();
                return Err(e);
            }
        };
        info.kernel = kernel;
        Ok(Self {
            info,
            access,
            running: Mutex::new(cni.clone()),
            cni,
            nodes,
            environment,
            timeouts,
            created: Mutex::new(vec![]),
            gateway_address: Default::default(),
            torn_down: Default::default(),
        })
    }

    pub fn access(&self) -> &KubeAccess {
        &self.access
    }

    /// Creates `objects` in order, remembering each as the run's own for teardown.
    fn create_owned(&self, objects: &[Value]) -> Result<()> {
        for object in objects {
            let uid = self.access.create(object, self.timeouts.crd_established)?;
            self.created.lock().unwrap_or_else(|e| e.into_inner()).push((object.clone(), uid));
        }
        Ok(())
    }

    /// Polls `object` until `address_of` finds an address in it, within the address budget.
    fn await_address(&self, object: &Value, what: &str, address_of: impl Fn(&Value) -> Option<IpAddr>) -> Result<IpAddr> {
        let budget = crate::deadline::budget(self.timeouts.address_assigned, "KubeTimeouts::address_assigned");
        let deadline = Instant::now() + budget.duration;
        loop {
            if let Some(address) = self.access.get(object)?.as_ref().and_then(&address_of) {
                return Ok(address);
            }
            if Instant::now() >= deadline {
                return Err(budget.timed_out(&format!("{what} to get an address (is MetalLB installed?)")));
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// Creates a Traceflow of the flow, waits until Antrea reports it finished (or its
    /// timeout and a little more passed), deletes it, and renders what it saw.
    fn traceflow(&self, name: &str, client: &Pod, to: SocketAddr) -> Result<String> {
        let object = traceflow_object(name, client, to);
        let uid = self.access.create(&object, self.timeouts.crd_established)?;
        // Never past the bundle's own deadline (its time on this thread).
        let budget = crate::deadline::budget(Duration::from_secs(TRACEFLOW_TIMEOUT_SECONDS + 2), "the Traceflow's timeout");
        let deadline = Instant::now() + budget.duration;
        let finished = loop {
            let seen = self.access.get(&object);
            match &seen {
                Ok(Some(found)) if matches!(found["status"]["phase"].as_str(), Some("Succeeded" | "Failed")) => break seen,
                _ if Instant::now() >= deadline => break seen,
                _ => std::thread::sleep(Duration::from_millis(500)),
            }
        };
        let deleted = self.access.delete_owned(&object, &uid);
        let mut text = match finished? {
            Some(found) => render_traceflow(&found),
            None => format!("Traceflow {name} disappeared before it finished\n"),
        };
        if let Err(e) = deleted {
            text.push_str(&format!("(could not delete it: {e})\n"));
        }
        Ok(text)
    }

    /// The cluster's Gateway, made on first use if no one made it yet; its address. The
    /// outcome, a failure too, is remembered: every trial gets the first one's answer.
    fn gateway(&self) -> Result<IpAddr> {
        let outcome = self.gateway_address.get_or_init(|| self.claim_gateway().map_err(|e| e.to_string()));
        outcome.clone().map_err(|first| HarnessError::NotReady { what: format!("the cluster's Gateway in namespace {GATEWAY_NAMESPACE}"), detail: first })
    }

    /// Applies the cluster's Gateway (the same object from every process, so applying it
    /// again changes nothing) while holding the cluster's lock where processes share one.
    fn claim_gateway(&self) -> Result<IpAddr> {
        let support = self
            .cni
            .gateway
            .as_ref()
            .ok_or_else(|| HarnessError::NotFound { what: "Gateway API implementation".into(), wanted: format!("for {}", self.cni.name) })?;
        let gateway = gateway_object(support.class);
        {
            let _claimed = super::runs::cluster_lock(&self.info.cluster);
            let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": GATEWAY_NAMESPACE}});
            self.access.apply(&[namespace, gateway.clone()], self.timeouts.crd_established)?;
        }
        self.await_address(&gateway, "the cluster's Gateway", |g| g["status"]["addresses"][0]["value"].as_str()?.parse().ok())
    }
}

/// The nodes, with their role, labels and InternalIP, and the first node's kernel.
fn list_nodes(access: &KubeAccess) -> Result<(Vec<Node>, String)> {
    use k8s_openapi::api::core::v1::Node as KubeNode;
    let api: kube::Api<KubeNode> = kube::Api::all(access.client().clone());
    let listed =
        access.block_on(api.list(&Default::default())).map_err(|e| HarnessError::Command { command: "listing nodes".into(), detail: e.to_string() })?;
    let kernel = listed.items.iter().find_map(|n| Some(n.status.as_ref()?.node_info.as_ref()?.kernel_version.clone())).unwrap_or_default();
    let mut nodes: Vec<Node> = listed.items.iter().filter_map(node_of).collect();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((nodes, kernel))
}

fn node_of(node: &k8s_openapi::api::core::v1::Node) -> Option<Node> {
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let address = node.status.as_ref()?.addresses.as_ref()?.iter().find(|a| a.type_ == "InternalIP")?.address.parse().ok()?;
    let role = if labels.contains_key("node-role.kubernetes.io/control-plane") { NodeRole::ControlPlane } else { NodeRole::Worker };
    Some(Node { name: node.metadata.name.clone()?, role, labels: labels.into_iter().collect(), address })
}

/// The namespace object of a trial, labelled with the run's id.
pub fn namespace_object(namespace: &NamespaceSpec, run: &str) -> Value {
    let mut labels = namespace.labels.clone();
    labels.insert(RUN_LABEL.into(), run.into());
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace.name, "labels": labels}})
}

/// A probe pod pinned to its node; it serves the echo and is exec'd into to make requests.
/// With `iperf3` (an image), an `iperf3` container beside the probe serves throughput tests
/// on [`IPERF3_PORT`](crate::tools::IPERF3_PORT) and is exec'd into for clients.
pub fn pod_object(pod: &PodSpec, image: &str, iperf3: Option<&str>) -> Value {
    let mut object = probe_pod_object(pod, image);
    if let Some(iperf3) = iperf3 {
        let port = crate::tools::IPERF3_PORT.to_string();
        object["spec"]["containers"].as_array_mut().expect("a pod has containers").push(json!({
            "name": "iperf3",
            "image": iperf3,
            "imagePullPolicy": "IfNotPresent",
            "args": ["-s", "-p", port, "--forceflush"],
            "readinessProbe": {"tcpSocket": {"port": crate::tools::IPERF3_PORT}, "periodSeconds": 1},
        }));
    }
    object
}

fn probe_pod_object(pod: &PodSpec, image: &str) -> Value {
    let mut object = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": pod.name, "namespace": pod.namespace, "labels": pod.labels},
        "spec": {
            "nodeName": pod.node,
            "terminationGracePeriodSeconds": 1,
            // Scenarios may place pods on the control plane (failover keeps them off the failing node).
            "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}],
            "containers": [{
                "name": "probe",
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "args": ["serve", "--listen", "0.0.0.0:8080", "--name", pod.name],
                "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
            }],
        },
    });
    if !pod.host_ports.is_empty() {
        let ports: Vec<Value> = pod.host_ports.iter().map(|p| json!({"containerPort": p.container, "hostPort": p.host, "protocol": "TCP"})).collect();
        object["spec"]["containers"][0]["ports"] = Value::Array(ports);
    }
    object
}

impl Cluster for KubeCluster {
    fn info(&self) -> &ClusterInfo {
        &self.info
    }

    fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    fn create_namespace(&self, namespace: &NamespaceSpec) -> Result<()> {
        self.create_owned(&[namespace_object(namespace, &self.info.run_id)])
    }

    fn create_pod(&self, spec: &PodSpec) -> Result<Pod> {
        self.access.apply(&[pod_object(spec, &self.environment.probe_image(), self.environment.iperf3_image().as_deref())], self.timeouts.crd_established)?;
        let ready = self.access.wait_pod_ready(&spec.namespace, &spec.name, self.timeouts.pod_ready, "KubeTimeouts::pod_ready").map_err(|e| {
            // The probe's own log usually says why (image missing, bind failed).
            match self.access.logs(&spec.namespace, &spec.name) {
                Ok(log) if !log.trim().is_empty() => {
                    HarnessError::NotReady { what: format!("pod {}/{}", spec.namespace, spec.name), detail: format!("{e}; its log: {}", log.trim()) }
                }
                _ => e,
            }
        })?;
        let address = ready
            .status
            .and_then(|s| s.pod_ip)
            .and_then(|ip| ip.parse().ok())
            .ok_or_else(|| HarnessError::NotReady { what: format!("pod {}/{}", spec.namespace, spec.name), detail: "Ready but without a pod IP".into() })?;
        Ok(Pod { name: spec.name.clone(), namespace: spec.namespace.clone(), labels: spec.labels.clone(), node: spec.node.clone(), address })
    }

    fn allocate_egress_ip(&self) -> Result<IpAddr> {
        self.environment.allocate_egress_ip()
    }

    fn apply_egress_policy(&self, policy: &EgressPolicy) -> Result<()> {
        if !self.cni.egress.assigns_egress_ip() {
            let gateway = self.cni.egress.gateway_node(policy, &self.nodes)?;
            self.environment.place_egress_ip(gateway, policy.egress_ip)?;
        }
        // Cluster-scoped and named for the run: created, never adopted from another run.
        self.create_owned(&self.cni.egress.render(policy))
    }

    fn egress_status(&self, policy: &EgressPolicy, selected: &[Pod]) -> Result<Option<EgressStatus>> {
        self.cni.egress.realized(&self.access, policy, &self.nodes, selected)
    }

    fn external_echo_url(&self) -> String {
        format!("http://{}/", self.environment.external_echo())
    }

    fn external_closed_port_url(&self) -> String {
        let echo = self.environment.external_echo();
        format!("http://{}:{}/", echo.ip(), echo.port() + 1)
    }

    fn request_from(&self, pod: &Pod, url: &str, timeout: Duration) -> Result<Observation> {
        let timeout_ms = timeout.as_millis().to_string();
        let output = self.access.exec(&pod.namespace, &pod.name, Some("probe"), &["/cni-probe", "get", url, "--timeout-ms", &timeout_ms])?;
        super::probe_output(&output, || format!("cni-probe get {url} in pod {}/{}", pod.namespace, pod.name))
    }

    fn apply_http_route(&self, namespace: &str, route: &HttpRoute) -> Result<()> {
        self.gateway()?;
        self.access.apply(&route_objects(namespace, route), self.timeouts.crd_established)
    }

    fn expose_service(&self, namespace: &str, name: &str, selector: &crate::model::Labels, port: u16) -> Result<String> {
        let service = service_object(namespace, name, 80, port, selector, true);
        self.access.apply(std::slice::from_ref(&service), self.timeouts.crd_established)?;
        let address =
            self.await_address(&service, &format!("Service {namespace}/{name}"), |s| s["status"]["loadBalancer"]["ingress"][0]["ip"].as_str()?.parse().ok())?;
        Ok(format!("http://{address}/"))
    }

    fn gateway_url(&self, path: &str) -> String {
        match self.gateway() {
            Ok(address) => format!("http://{address}{path}"),
            Err(e) => format!("http://gateway-without-address{path} ({e})"),
        }
    }

    fn load_from_outside(&self, url: &str, load: &cni_probe::LoadOptions) -> Result<LoadReport> {
        let output = self.environment.run_probe_outside(&load.to_args(url))?;
        super::probe_output(&output, || format!("cni-probe load {url} outside the cluster"))
    }

    fn served_requests(&self, pod: &Pod, path_prefix: &str) -> Result<u64> {
        let url = cni_probe::served_url("http://127.0.0.1:8080", path_prefix);
        let output = self.access.exec(&pod.namespace, &pod.name, Some("probe"), &["/cni-probe", "served", &url])?;
        let served: cni_probe::ServedRequests = super::probe_output(&output, || format!("cni-probe served in pod {}/{}", pod.namespace, pod.name))?;
        Ok(served.requests)
    }

    fn fail_node(&self, node: &Node) -> Result<()> {
        self.environment.fail_node(node)
    }

    fn restore_node(&self, node: &Node) -> Result<()> {
        self.environment.restore_node(node)
    }

    fn run_on_node(&self, node: &Node, program: &str, args: &[&str]) -> Result<crate::model::ExecOutput> {
        self.environment.run_on_node(node, program, args)
    }

    fn run_in_node_network(&self, node: &Node, program: &str, args: &[&str]) -> Result<crate::model::ExecOutput> {
        self.environment.run_in_node_network(node, program, args)
    }

    fn put_file_on_node(&self, node: &Node, path: &std::path::Path) -> Result<String> {
        self.environment.put_file_on_node(node, path)
    }

    /// An upgrade as the cluster's environment makes it; the CNI is taken to run `with` only
    /// once every step succeeded (a failed one is rolled back by applying the old again).
    fn prepare_cni_replacement(&self, with: &CniProfile) -> Result<()> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        self.environment.prepare_cni_replacement(&self.cni, &running, with)
    }

    fn replace_cni(&self, with: &CniProfile) -> Result<()> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        self.environment.replace_cni(&self.cni, &running, with)?;
        *running = with.clone();
        Ok(())
    }

    fn pods(&self) -> Result<Vec<Pod>> {
        self.access.pod_network_pods()
    }

    fn run_probe_in(&self, pod: &Pod, args: &[String]) -> Result<crate::model::ExecOutput> {
        let mut command = vec!["/cni-probe"];
        command.extend(args.iter().map(String::as_str));
        self.access.exec(&pod.namespace, &pod.name, Some("probe"), &command)
    }

    /// iperf3 runs in the pod's `iperf3` container (see [`pod_object`]); anything else (a
    /// priority trace's `tc`) in the pod's network through its node, where the environment
    /// can reach nodes.
    fn run_in_pod(&self, pod: &Pod, program: &str, args: &[&str]) -> Result<crate::model::ExecOutput> {
        if program != "iperf3" {
            return self.environment.run_in_pod_network(pod, program, args);
        }
        if self.environment.iperf3_image().is_none() {
            return Err(HarnessError::NotFound {
                what: format!("`{program}` in pod {}/{}", pod.namespace, pod.name),
                wanted:
                    "an iperf3 container beside the probe (pods have one only where performance tools were asked for; nothing else runs in pods but the probe)"
                        .into(),
            });
        }
        let mut command = vec!["/usr/bin/iperf3"];
        command.extend_from_slice(args);
        self.access.exec(&pod.namespace, &pod.name, Some("iperf3"), &command)
    }

    fn run_outside(&self, program: &str, args: &[&str]) -> Result<crate::model::ExecOutput> {
        self.environment.run_outside(program, args)
    }

    fn run_probe_outside(&self, args: &[String]) -> Result<crate::model::ExecOutput> {
        self.environment.run_probe_outside(args)
    }

    /// The CNI's agent pods (its DaemonSet's), each read from its cgroup on its node.
    fn cni_resource_usage(&self) -> Result<crate::model::ResourceUsage> {
        let agent = self.cni.agent().ok_or_else(|| HarnessError::NotFound {
            what: "agent DaemonSet".into(),
            wanted: format!("in profile {} (a CNI's processes are read from its agent pods' cgroups)", self.cni.name),
        })?;
        let place = agent.describe();
        let found = self.access.get(&agent.reference())?.ok_or_else(|| HarnessError::NotFound { what: place.clone(), wanted: "on the cluster".into() })?;
        let selector: std::collections::BTreeMap<String, String> = serde_json::from_value(found["spec"]["selector"]["matchLabels"].clone())
            .map_err(|e| HarnessError::NotFound { what: format!("spec.selector.matchLabels of {place}"), wanted: e.to_string() })?;
        let pods = self.access.pods_labelled(&agent.namespace, &selector)?;
        if pods.is_empty() {
            return Err(HarnessError::NotFound { what: format!("pods of {place}"), wanted: format!("labelled {selector:?}") });
        }
        pods.iter().try_fold(crate::model::ResourceUsage::default(), |total, pod| {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let on = pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
            let node = self.nodes.iter().find(|n| n.name == on).ok_or_else(|| HarnessError::NotFound {
                what: format!("node of agent pod {}/{name}", agent.namespace),
                wanted: format!("`{on}` among the cluster's nodes"),
            })?;
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            let reading = format!("reading the cgroup of agent pod {}/{name} on node {on}", agent.namespace);
            let printed = self.environment.run_on_node(node, "sh", &["-c", &super::cgroup::reading_script(&uid)])?.stdout_of_success(&reading)?;
            let usage = super::cgroup::parse_reading(&printed).map_err(|detail| HarnessError::Command { command: reading, detail })?;
            Ok(total.with(usage))
        })
    }

    /// The trial's namespaces as the API shows them (pods with their status, events, routes
    /// with their status), the shared Gateway, and the CNI agent's logs on the trial's
    /// nodes (its previous container's too).
    fn own_records(&self, trial: &str) -> Vec<(String, String)> {
        let agent = self.cni.agent().map(|a| (a.namespace.as_str(), a.name.as_str()));
        let mut records = self.access.trial_records(trial, agent, &self.cni.agent_collectors, GATEWAY_NAMESPACE);
        // Each trial namespace's pods as a person reads them, where kubectl can be run.
        let namespaces: Vec<String> = records.iter().filter_map(|(name, _)| name.strip_prefix("api/")?.strip_suffix("/pods.json").map(str::to_owned)).collect();
        for namespace in namespaces {
            if let Some(described) = self.environment.describe_pods(&namespace) {
                records.push((
                    format!("api/{namespace}/describe-pods.txt"),
                    described.unwrap_or_else(|e| format!("kubectl describe pods --namespace {namespace}: {e}\n")),
                ));
            }
        }
        // The BPF programs attached with tcx on each node's links, which the bundle's
        // `bpftool net` (Debian's 7.1, where a node has one) does not list: read by the probe
        // in the node's network, where the environment reaches it (kind's helper container).
        for node in &self.nodes {
            let reading = format!("cni-probe bpf-attachments in node {}'s network", node.name);
            let text = match self.environment.run_in_node_network(node, crate::tools::PROBE, &["bpf-attachments"]).and_then(|o| o.stdout_of_success(&reading)) {
                Ok(listed) if listed.trim().is_empty() => "no tcx program on any link of the node\n".to_owned(),
                Ok(listed) => listed,
                Err(e) => format!("{e}\n"),
            };
            records.push((format!("nodes/{}/bpf-tcx.txt", node.name), text));
        }
        // The plugins' own logs on each node (profile field `diagnostics.logs`), their last
        // 64 KiB as the lab keeps them, read where the environment reaches a node's files
        // (a kind node's container); elsewhere the reason why not.
        for node in &self.nodes {
            for log in &self.cni.plugin_logs {
                let path = log.display().to_string();
                let reading = format!("tail -c 65536 {path} on node {}", node.name);
                let text = self
                    .environment
                    .run_on_node(node, "tail", &["-c", "65536", &path])
                    .and_then(|output| output.stdout_of_success(&reading))
                    .unwrap_or_else(|e| format!("{e}\n"));
                records.push((format!("nodes/{}/logs{path}", node.name), text));
            }
        }
        records
    }

    fn flow_records(&self, trial: &str, client: &Pod, to: SocketAddr) -> Vec<(String, String)> {
        match self.cni.flow_tracer {
            Some(crate::model::FlowTracer::AntreaTraceflow) => {
                let text = self
                    .traceflow(&format!("cniconf-{trial}"), client, to)
                    .unwrap_or_else(|e| format!("no Traceflow of pod {}/{} -> {to}: {e}\n", client.namespace, client.name));
                vec![("traceflow.txt".to_owned(), text)]
            }
            None => Vec::new(),
        }
    }

    fn teardown(&self) -> Result<()> {
        if self.torn_down.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        let started = Instant::now();
        let mut problems = Vec::new();
        for (object, uid) in self.created.lock().unwrap_or_else(|e| e.into_inner()).drain(..).rev() {
            if let Err(e) = self.access.delete_owned(&object, &uid) {
                problems.push(e.to_string());
            }
        }
        if let Err(e) = self.environment.teardown() {
            problems.push(e.to_string());
        }
        tracing::info!("removed the run's objects from {} in {:.1}s", self.info.cluster, started.elapsed().as_secs_f64());
        match problems.is_empty() {
            true => Ok(()),
            false => Err(HarnessError::Command { command: format!("tearing down {}", self.info.cluster), detail: problems.join("; ") }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::labels;

    #[test]
    fn a_probe_pod_is_pinned_to_its_node_and_serves_the_echo() {
        let spec = PodSpec { name: "web".into(), namespace: "prod-t3".into(), labels: labels([("role", "web")]), node: "c-worker".into(), host_ports: vec![] };
        insta::assert_snapshot!("probe_pod", crate::cni::egress::to_yaml(&[pod_object(&spec, "cni-probe:0.1.0", None)]));
        insta::assert_snapshot!("probe_pod_with_iperf3", crate::cni::egress::to_yaml(&[pod_object(&spec, "cni-probe:0.1.0", Some("cni-iperf3:0.1.0"))]));
        let reached = PodSpec { host_ports: vec![crate::model::HostPort { host: 18090, container: 8090 }], ..spec };
        insta::assert_snapshot!("probe_pod_with_a_host_port", crate::cni::egress::to_yaml(&[pod_object(&reached, "cni-probe:0.1.0", None)]));
    }

    #[test]
    fn a_mirroring_route_becomes_services_and_an_httproute_on_the_runs_gateway() {
        let mut route = crate::fixtures::load_http_route(&crate::fixtures::fixture_path("canary/weather-mirror-route.yaml")).unwrap();
        route.name = "weather-mirror-route-t8".into();
        route.path_prefix = "/t8/getPaidForecast".into();
        route.generation = 1;
        let objects = route_objects("paid-t8", &route);
        insta::assert_snapshot!("mirror_route_objects", crate::cni::egress::to_yaml(&objects));
        insta::assert_snapshot!("gateway_object", crate::cni::egress::to_yaml(&[gateway_object("nginx")]));
    }

    /// What an upgrade asked of the environment: (initial, running, with).
    type Upgrades = std::sync::Arc<Mutex<Vec<(String, String, String)>>>;

    /// An environment with nothing around the API server but what a test scripts: node
    /// commands' answers, and upgrades recorded (those to the named profile failing).
    #[derive(Default)]
    struct NoEnvironment {
        node_commands: Option<fn(&Node, &str, &[&str]) -> crate::model::ExecOutput>,
        upgrades: Option<(Upgrades, &'static str)>,
        describes_pods: bool,
    }

    impl Environment for NoEnvironment {
        fn allocate_egress_ip(&self) -> Result<IpAddr> {
            Ok("192.0.2.200".parse().unwrap())
        }
        fn place_egress_ip(&self, _: &Node, _: IpAddr) -> Result<()> {
            Ok(())
        }
        fn external_echo(&self) -> SocketAddr {
            "192.0.2.10:8080".parse().unwrap()
        }
        fn probe_image(&self) -> String {
            "cni-probe:test".into()
        }
        fn fail_node(&self, _: &Node) -> Result<()> {
            Ok(())
        }
        fn restore_node(&self, _: &Node) -> Result<()> {
            Ok(())
        }
        fn replace_cni(&self, initial: &CniProfile, running: &CniProfile, with: &CniProfile) -> Result<()> {
            let (asked, fail_to) = self.upgrades.as_ref().expect("no upgrades here");
            asked.lock().unwrap().push((initial.name.clone(), running.name.clone(), with.name.clone()));
            match with.name == *fail_to {
                true => Err(HarnessError::Command { command: format!("helm upgrade to {}", with.name), detail: "UPGRADE FAILED".into() }),
                false => Ok(()),
            }
        }
        fn run_on_node(&self, node: &Node, program: &str, args: &[&str]) -> Result<crate::model::ExecOutput> {
            Ok(self.node_commands.expect("no node commands here")(node, program, args))
        }
        fn describe_pods(&self, namespace: &str) -> Option<Result<String>> {
            self.describes_pods.then(|| Ok(format!("Name:         web\nNamespace:    {namespace}\nEvents:       <none>\n")))
        }
        fn run_probe_outside(&self, _: &[String]) -> Result<crate::model::ExecOutput> {
            unreachable!("no traffic here")
        }
        fn teardown(&self) -> Result<()> {
            Ok(())
        }
    }

    fn info() -> ClusterInfo {
        ClusterInfo {
            provider: "kind".into(),
            cluster: "cniconf-0a1b2c".into(),
            run_id: "0a1b2c".into(),
            cni: "antrea".into(),
            cni_version: "2.2.0".into(),
            cni_version_source: "pinned".into(),
            kernel: String::new(),
            ready_in: Duration::ZERO,
            purpose: crate::provider::components::Purpose::Certification,
            components: vec![],
        }
    }

    #[test]
    fn without_performance_tools_nothing_but_the_probe_runs_in_pods_or_outside() {
        use crate::kube_access::mock;
        let (access, seen, _runtime) = mock::api_server(|_, path, _| match path {
            "/api/v1/nodes" => (http::StatusCode::OK, mock::empty_list("Node")),
            _ => mock::status(404, "NotFound", "not here"),
        });
        let cluster = KubeCluster::new(info(), access, crate::cni::antrea(), Box::new(NoEnvironment::default()), KubeTimeouts::default()).unwrap();
        let pod =
            Pod { name: "client".into(), namespace: "perf-t1".into(), labels: Default::default(), node: "w1".into(), address: "10.244.1.2".parse().unwrap() };
        let asked = seen.lock().unwrap().len();
        let error = cluster.run_in_pod(&pod, "iperf3", &["-c", "10.244.2.2"]).unwrap_err().to_string();
        assert!(error.contains("`iperf3` in pod perf-t1/client") && error.contains("only where performance tools were asked for"), "{error}");
        assert_eq!(seen.lock().unwrap().len(), asked, "nothing was exec'd");
        // A priority trace's pod hop says why it is not read.
        let tc = cluster.run_in_pod(&pod, "tc", &["-s", "class", "show", "dev", "eth0"]).unwrap_err().to_string();
        assert!(
            tc.contains("`tc` in pod perf-t1/client") && tc.contains("cannot reach this cluster's nodes") && tc.contains("this hop is not read here"),
            "{tc}"
        );
        let outside = cluster.run_outside("iperf3", &["-s"]).unwrap_err().to_string();
        assert!(outside.contains("outside a cluster the harness does not own"), "{outside}");
    }

    /// A failed trial's records on a Kubernetes cluster, against a scripted API server: its
    /// namespace's pods, events and routes, the shared Gateway, and the agent's logs on the
    /// nodes its pods ran on only (Antrea's `antrea-agent` DaemonSet in kube-system), the
    /// previous container's too; what the server refuses is written down, not raised.
    #[test]
    fn a_failed_trial_s_records_come_from_its_namespaces_and_the_agent_on_its_nodes() {
        use crate::kube_access::mock;
        use serde_json::json;
        let list = |kind: &str, items: serde_json::Value| json!({"apiVersion": "v1", "kind": format!("{kind}List"), "metadata": {"resourceVersion": "1"}, "items": items});
        let agent_pod = |name: &str, node: &str, last_state: serde_json::Value| json!({"metadata": {"name": name, "namespace": "kube-system", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "antrea-agent", "uid": "u", "controller": true}]}, "spec": {"nodeName": node, "containers": [{"name": "antrea-agent"}]}, "status": {"containerStatuses": [{"name": "antrea-agent", "image": "antrea", "imageID": "", "ready": true, "restartCount": 1, "lastState": last_state}]}});
        let (access, seen, _runtime) = mock::api_server(move |_, path, _| match path {
            "/api/v1/nodes" => (http::StatusCode::OK, mock::empty_list("Node")),
            "/api/v1/namespaces" => {
                (http::StatusCode::OK, list("Namespace", json!([{"metadata": {"name": "prod-t3-0a1b2c"}}, {"metadata": {"name": "prod-t13-0a1b2c"}}])))
            }
            "/api/v1/namespaces/prod-t3-0a1b2c/pods" => (
                http::StatusCode::OK,
                list(
                    "Pod",
                    json!([{"metadata": {"name": "web", "namespace": "prod-t3-0a1b2c"}, "spec": {"nodeName": "kind-worker", "containers": [{"name": "probe"}]}, "status": {"phase": "Running"}}]),
                ),
            ),
            "/api/v1/namespaces/prod-t3-0a1b2c/events" => (
                http::StatusCode::OK,
                list(
                    "Event",
                    json!([{"metadata": {"name": "e1"}, "involvedObject": {"kind": "Pod", "name": "web"}, "type": "Warning", "reason": "FailedCreatePodSandBox", "message": "plugin type=\"antrea\" failed (add)"}]),
                ),
            ),
            "/apis/gateway.networking.k8s.io/v1/namespaces/prod-t3-0a1b2c/httproutes" => {
                mock::status(403, "Forbidden", "httproutes is forbidden: User cannot list resource")
            }
            "/apis/gateway.networking.k8s.io/v1/namespaces/cniconf-gateway/gateways" => {
                mock::status(404, "NotFound", "the server could not find the requested resource")
            }
            "/api/v1/namespaces/kube-system/pods" => {
                let restarted = json!({"terminated": {"exitCode": 2, "containerID": "containerd://0a1b"}});
                (
                    http::StatusCode::OK,
                    list("Pod", json!([agent_pod("antrea-agent-a", "kind-worker", restarted), agent_pod("antrea-agent-b", "kind-worker2", json!({}))])),
                )
            }
            "/api/v1/namespaces/kube-system/pods/antrea-agent-a/log" => (http::StatusCode::OK, json!("I1205 agent started")),
            _ => mock::status(404, "NotFound", "not here"),
        });
        let cluster = KubeCluster::new(
            info(),
            access,
            crate::cni::antrea(),
            Box::new(NoEnvironment { describes_pods: true, ..Default::default() }),
            KubeTimeouts::default(),
        )
        .unwrap();
        let records: std::collections::BTreeMap<String, String> = cluster.own_records("t3-0a1b2c").into_iter().collect();
        assert!(
            records.get("api/prod-t3-0a1b2c/describe-pods.txt").is_some_and(|d| d.contains("Namespace:    prod-t3-0a1b2c")),
            "kubectl describe of the trial's pods: {records:#?}"
        );
        let names: Vec<&str> = records.keys().map(String::as_str).collect();
        assert!(names.contains(&"api/prod-t3-0a1b2c/pods.json") && names.contains(&"api/prod-t3-0a1b2c/events.txt"), "{names:?}");
        assert!(!names.iter().any(|n| n.contains("t13")), "t13 is another trial: {names:?}");
        assert!(
            records["api/prod-t3-0a1b2c/events.txt"].contains("Warning FailedCreatePodSandBox Pod/web: plugin type=\"antrea\" failed (add)"),
            "{records:#?}"
        );
        assert!(records.get("agents/antrea-agent-a/antrea-agent.log").is_some_and(|l| l.contains("agent started")), "{records:#?}");
        assert!(!names.iter().any(|n| n.contains("antrea-agent-b")), "the agent on a node the trial did not use: {names:?}");
        let logs: Vec<String> = seen.lock().unwrap().iter().filter(|s| s.uri.contains("/log")).map(|s| s.uri.clone()).collect();
        assert!(logs.iter().any(|u| u.contains("previous=true")) && logs.iter().all(|u| u.contains("container=antrea-agent")), "{logs:?}");
        assert!(
            !records.get("api/errors.txt").is_some_and(|e| e.contains("previous container")),
            "a restarted container's previous log is asked for and found: {records:#?}"
        );
        // A refused list is written down, not raised; a Gateway API the cluster lacks (404) is no error.
        assert!(
            records["api/errors.txt"].contains("listing httproutes in prod-t3-0a1b2c: ") && !records["api/errors.txt"].contains("gateways"),
            "{records:#?}"
        );
        // The agent's commands (antctl) were run on the agent the trial used.
        let execs = |seen: &Mutex<Vec<crate::kube_access::mock::Seen>>| seen.lock().unwrap().iter().filter(|s| s.uri.contains("/exec")).count();
        assert!(execs(&seen) > 0 && records.contains_key("agents/antrea-agent-a/agentinfo.txt"), "{records:#?}");
        // Once the bundle's time is spent, they are skipped with the reason, never run past it.
        let before = execs(&seen);
        let spent = crate::deadline::enter(crate::deadline::TrialClock::starting_now(Duration::ZERO), "LIMITS.time");
        let records: std::collections::BTreeMap<String, String> = cluster.own_records("t3-0a1b2c").into_iter().collect();
        drop(spent);
        assert_eq!(execs(&seen), before, "no agent command run after the bundle's time");
        assert!(
            records
                .get("agents/antrea-agent-a/agentinfo.txt")
                .is_some_and(|t| t.contains("# skipped: no time left (AGENT_COMMAND_BUDGET, cut to the 0.0s left of LIMITS.time)")),
            "{records:#?}"
        );
    }

    /// A profile's `diagnostics.logs` reach a kind bundle as they reach a lab one: each
    /// node's log, its last 64 KiB read on the node (`tail -c`, `docker exec` on kind), as
    /// `nodes/<node>/logs/<path>`; a log a node lacks says why.
    #[test]
    fn a_profile_s_plugin_logs_and_each_node_s_tcx_programs_are_read_into_the_bundle() {
        use crate::kube_access::mock;
        let (access, _seen, _runtime) = mock::api_server(|_, path, _| match path {
            "/api/v1/nodes" => (http::StatusCode::OK, mock::empty_list("Node")),
            _ => (http::StatusCode::OK, mock::empty_list("Namespace")),
        });
        fn on_node(node: &Node, program: &str, args: &[&str]) -> crate::model::ExecOutput {
            match (node.name.as_str(), program, args) {
                ("kind-worker", "tail", ["-c", "65536", "/tmp/cni-inspect.log"]) => {
                    crate::model::ExecOutput { stdout: "ADD failed: no map\n".into(), stderr: String::new(), exit: "exit status 0".into() }
                }
                (_, "tail", _) => crate::model::ExecOutput {
                    stdout: String::new(),
                    stderr: "tail: cannot open '/tmp/cni-inspect.log': No such file or directory".into(),
                    exit: "exit status 1".into(),
                },
                ("kind-worker", "cni-probe", ["bpf-attachments"]) => {
                    crate::model::ExecOutput { stdout: "tcx egress on eth0: restore_prio\n".into(), stderr: String::new(), exit: "exit status 0".into() }
                }
                (_, "cni-probe", ["bpf-attachments"]) => {
                    crate::model::ExecOutput { stdout: String::new(), stderr: String::new(), exit: "exit status 0".into() }
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        let cni = CniProfile { plugin_logs: vec!["/tmp/cni-inspect.log".into()], ..crate::cni::antrea() };
        let mut cluster =
            KubeCluster::new(info(), access, cni, Box::new(NoEnvironment { node_commands: Some(on_node), ..Default::default() }), KubeTimeouts::default())
                .unwrap();
        cluster.nodes = ["kind-worker", "kind-worker2"]
            .map(|name| Node { name: name.into(), role: crate::model::NodeRole::Worker, labels: Default::default(), address: "172.18.0.3".parse().unwrap() })
            .to_vec();
        let records: std::collections::BTreeMap<String, String> = cluster.own_records("t3-0a1b2c").into_iter().collect();
        assert_eq!(records.get("nodes/kind-worker/logs/tmp/cni-inspect.log").map(String::as_str), Some("ADD failed: no map\n"), "{records:#?}");
        assert!(records.get("nodes/kind-worker2/logs/tmp/cni-inspect.log").is_some_and(|t| t.contains("No such file or directory")), "{records:#?}");
        // And each node's tcx programs, read by the probe in the node's network.
        assert_eq!(records.get("nodes/kind-worker/bpf-tcx.txt").map(String::as_str), Some("tcx egress on eth0: restore_prio\n"), "{records:#?}");
        assert_eq!(records.get("nodes/kind-worker2/bpf-tcx.txt").map(String::as_str), Some("no tcx program on any link of the node\n"), "{records:#?}");
    }

    /// An agent container that never restarted has no previous log: the kubelet answers
    /// 400 "previous terminated container ... not found" (pkg/kubelet/kubelet_pods.go,
    /// `validateContainerLogStatus`), so asking would put a false error in every bundle.
    /// Only a container whose last state is terminated is asked.
    #[test]
    fn a_bundle_asks_no_previous_log_of_an_agent_that_never_restarted() {
        use crate::kube_access::mock;
        use serde_json::json;
        let list = |kind: &str, items: serde_json::Value| json!({"apiVersion": "v1", "kind": format!("{kind}List"), "metadata": {"resourceVersion": "1"}, "items": items});
        let (access, seen, _runtime) = mock::api_server(move |_, path, _| match path {
            "/api/v1/nodes" => (http::StatusCode::OK, mock::empty_list("Node")),
            "/api/v1/namespaces" => (http::StatusCode::OK, list("Namespace", json!([{"metadata": {"name": "prod-t3-0a1b2c"}}]))),
            "/api/v1/namespaces/prod-t3-0a1b2c/pods" => (
                http::StatusCode::OK,
                list(
                    "Pod",
                    json!([{"metadata": {"name": "web", "namespace": "prod-t3-0a1b2c"}, "spec": {"nodeName": "kind-worker", "containers": [{"name": "probe"}]}}]),
                ),
            ),
            "/api/v1/namespaces/kube-system/pods" => (
                http::StatusCode::OK,
                list(
                    "Pod",
                    json!([{"metadata": {"name": "antrea-agent-a", "namespace": "kube-system", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "antrea-agent", "uid": "u", "controller": true}]}, "spec": {"nodeName": "kind-worker", "containers": [{"name": "antrea-agent"}]}, "status": {"containerStatuses": [{"name": "antrea-agent", "image": "antrea", "imageID": "", "ready": true, "restartCount": 0, "lastState": {}}]}}]),
                ),
            ),
            "/api/v1/namespaces/kube-system/pods/antrea-agent-a/log" => (http::StatusCode::OK, json!("I1205 agent started")),
            _ => mock::status(404, "NotFound", "not here"),
        });
        let cluster = KubeCluster::new(info(), access, crate::cni::antrea(), Box::new(NoEnvironment::default()), KubeTimeouts::default()).unwrap();
        let records: std::collections::BTreeMap<String, String> = cluster.own_records("t3-0a1b2c").into_iter().collect();
        assert!(records.get("agents/antrea-agent-a/antrea-agent.log").is_some_and(|l| l.contains("agent started")), "{records:#?}");
        let asked: Vec<String> = seen.lock().unwrap().iter().filter(|s| s.uri.contains("/log")).map(|s| s.uri.clone()).collect();
        assert!(!asked.iter().any(|u| u.contains("previous=true")), "{asked:?}");
        assert!(!records.get("api/errors.txt").is_some_and(|e| e.contains("previous")), "no false error: {records:#?}");
    }

    /// A failed flow on Antrea gets a Traceflow (`crd.antrea.io/v1beta1`, its CRD's fields at
    /// v2.2: `build/charts/antrea/crds/traceflow.yaml`): created with the flow's source pod,
    /// destination and a TCP SYN, followed until Antrea reports it finished, deleted (only
    /// if it is still ours), and rendered node by node. A CNI without a flow tracer asks nothing.
    #[test]
    fn a_failed_flow_on_antrea_gets_a_traceflow_followed_to_its_end_and_deleted() {
        use crate::kube_access::mock;
        let polls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = polls.clone();
        let (access, seen, _runtime) = mock::api_server(move |method, path, body| match (method, path) {
            (_, "/api/v1/nodes") => (http::StatusCode::OK, mock::empty_list("Node")),
            (_, "/apis/crd.antrea.io/v1beta1") => (
                http::StatusCode::OK,
                json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "crd.antrea.io/v1beta1", "resources": [
                    {"name": "traceflows", "singularName": "traceflow", "namespaced": false, "kind": "Traceflow", "verbs": ["create", "get", "list", "delete"]}
                ]}),
            ),
            ("POST", "/apis/crd.antrea.io/v1beta1/traceflows") => {
                let mut created = body.clone();
                created["metadata"]["uid"] = json!("tf-uid");
                (http::StatusCode::CREATED, created)
            }
            ("GET", "/apis/crd.antrea.io/v1beta1/traceflows/cniconf-t3-0a1b2c") => {
                // The first run finishes on the second look; later ones never do.
                let phase = if counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 1 { "Succeeded" } else { "Running" };
                (
                    http::StatusCode::OK,
                    json!({
                        "apiVersion": "crd.antrea.io/v1beta1", "kind": "Traceflow",
                        "metadata": {"name": "cniconf-t3-0a1b2c", "uid": "tf-uid"},
                        "spec": traceflow_object("cniconf-t3-0a1b2c", &web(), "172.18.0.100:8080".parse().unwrap())["spec"],
                        "status": {"phase": phase, "results": [
                            {"node": "kind-worker", "role": "sender", "observations": [
                                {"component": "SpoofGuard", "action": "Forwarded"},
                                {"component": "Egress", "action": "MarkedForSNAT", "egress": "egress-prod-web-t3-0a1b2c", "egressIP": "172.18.0.200", "egressNode": "kind-worker2"},
                                {"component": "Forwarding", "componentInfo": "Output", "action": "ForwardedToEgressNode", "tunnelDstIP": "172.18.0.3"}
                            ]},
                            {"node": "kind-worker2", "role": "receiver", "observations": [{"component": "Forwarding", "action": "ForwardedOutOfOverlay", "translatedSrcIP": "172.18.0.200"}]}
                        ]}
                    }),
                )
            }
            ("DELETE", "/apis/crd.antrea.io/v1beta1/traceflows/cniconf-t3-0a1b2c") => {
                (http::StatusCode::OK, json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}))
            }
            _ => mock::status(404, "NotFound", "not here"),
        });
        let cluster = KubeCluster::new(info(), access, crate::cni::antrea(), Box::new(NoEnvironment::default()), KubeTimeouts::default()).unwrap();
        let records = cluster.flow_records("t3-0a1b2c", &web(), "172.18.0.100:8080".parse().unwrap());
        let [(name, text)] = records.as_slice() else { panic!("one record: {records:?}") };
        assert_eq!(name, "traceflow.txt");
        assert!(text.contains("TCP SYN from pod prod-t3-0a1b2c/web to 172.18.0.100:8080\nphase: Succeeded"), "{text}");
        assert!(text.contains("node kind-worker (sender):\n  SpoofGuard Forwarded\n  Egress MarkedForSNAT egress=egress-prod-web-t3-0a1b2c egressIP=172.18.0.200 egressNode=kind-worker2"), "{text}");
        assert!(text.contains("node kind-worker2 (receiver):\n  Forwarding ForwardedOutOfOverlay translatedSrcIP=172.18.0.200"), "{text}");
        assert!(polls.load(std::sync::atomic::Ordering::SeqCst) >= 2, "followed until it finished");
        let seen = seen.lock().unwrap().clone();
        let created = seen.iter().find(|s| s.method == "POST").expect("the Traceflow was created");
        assert_eq!(
            created.body["spec"],
            json!({"source": {"namespace": "prod-t3-0a1b2c", "pod": "web"}, "destination": {"ip": "172.18.0.100"}, "packet": {"ipHeader": {"protocol": 6}, "transportHeader": {"tcp": {"dstPort": 8080, "flags": 2}}}, "timeout": 10})
        );
        let deleted = seen.iter().find(|s| s.method == "DELETE").expect("the Traceflow was deleted");
        assert_eq!(deleted.body["preconditions"]["uid"], "tf-uid", "only if it is still ours");
        // A Traceflow that never finishes is followed no longer than the bundle's time: with
        // none left, one look, then it is deleted and rendered as it stood.
        let looked = polls.load(std::sync::atomic::Ordering::SeqCst);
        let spent = crate::deadline::enter(crate::deadline::TrialClock::starting_now(Duration::ZERO), "LIMITS.time");
        let records = cluster.flow_records("t3-0a1b2c", &web(), "172.18.0.100:8080".parse().unwrap());
        drop(spent);
        assert_eq!(polls.load(std::sync::atomic::Ordering::SeqCst), looked + 1, "one look with no time left");
        assert!(records[0].1.contains("phase: Running"), "{records:?}");
        let without = KubeCluster::new(
            info(),
            mock::api_server(|_, _, _| (http::StatusCode::OK, mock::empty_list("Node"))).0,
            crate::cni::cilium(),
            Box::new(NoEnvironment::default()),
            KubeTimeouts::default(),
        )
        .unwrap();
        assert!(without.flow_records("t3-0a1b2c", &web(), "172.18.0.100:8080".parse().unwrap()).is_empty(), "Cilium's profile names no flow tracer");
    }

    fn web() -> Pod {
        Pod {
            name: "web".into(),
            namespace: "prod-t3-0a1b2c".into(),
            labels: Default::default(),
            node: "kind-worker".into(),
            address: "10.244.1.4".parse().unwrap(),
        }
    }

    /// Every command answered as a pod cgroup read on that node would be.
    fn cgroup_reads(node: &Node, program: &str, args: &[&str]) -> crate::model::ExecOutput {
        assert_eq!((program, args[0]), ("sh", "-c"));
        let (cpu, peak) = match node.name.as_str() {
            "c-worker" if args[1].contains("pod0a1b_w1") => (2_000_000, 50 << 20),
            "c-worker2" if args[1].contains("pod0a1b_w2") => (3_000_000, 70 << 20),
            other => panic!("node {other} was asked for another pod's cgroup: {}", args[1]),
        };
        crate::model::ExecOutput {
            stdout: format!("cgroup /sys/fs/cgroup/x\nusage_usec {cpu}\nmemory.peak {peak}\n"),
            stderr: String::new(),
            exit: "exit status 0".into(),
        }
    }

    #[test]
    fn the_cni_s_usage_is_its_agent_pods_cgroups_summed_over_their_nodes() {
        use crate::kube_access::mock;
        let node = |name: &str, ip: &str| json!({"metadata": {"name": name, "labels": {}}, "status": {"addresses": [{"type": "InternalIP", "address": ip}]}});
        let agent = |name: &str, uid: &str, on: &str| json!({"metadata": {"name": name, "namespace": "kube-system", "uid": uid}, "spec": {"nodeName": on, "containers": [{"name": "antrea-agent"}]}});
        let (access, seen, _runtime) = mock::api_server(move |_, path, _| match path {
            "/api/v1/nodes" => (
                http::StatusCode::OK,
                json!({"apiVersion": "v1", "kind": "NodeList", "metadata": {}, "items": [node("c-worker", "172.18.0.3"), node("c-worker2", "172.18.0.4")]}),
            ),
            "/apis/apps/v1" => (
                http::StatusCode::OK,
                json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "apps/v1", "resources": [
                {"name": "daemonsets", "singularName": "daemonset", "namespaced": true, "kind": "DaemonSet", "verbs": ["get", "list"]}]}),
            ),
            "/apis/apps/v1/namespaces/kube-system/daemonsets/antrea-agent" => (
                http::StatusCode::OK,
                json!({
                "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "antrea-agent", "namespace": "kube-system"},
                "spec": {"selector": {"matchLabels": {"app": "antrea", "component": "antrea-agent"}}, "template": {"spec": {"containers": [{"name": "antrea-agent"}]}}}}),
            ),
            "/api/v1/namespaces/kube-system/pods" => (
                http::StatusCode::OK,
                json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [agent("antrea-agent-a", "0a1b-w1", "c-worker"), agent("antrea-agent-b", "0a1b-w2", "c-worker2")]}),
            ),
            other => mock::status(404, "NotFound", other),
        });
        let cluster = KubeCluster::new(
            info(),
            access,
            crate::cni::antrea(),
            Box::new(NoEnvironment { node_commands: Some(cgroup_reads), ..Default::default() }),
            KubeTimeouts::default(),
        )
        .unwrap();
        let usage = cluster.cni_resource_usage().unwrap();
        assert_eq!(usage, crate::model::ResourceUsage { cpu: Duration::from_secs(5), peak_memory_bytes: 70 << 20, processes: 2 });
        let listed = seen.lock().unwrap().iter().find(|s| s.uri.starts_with("/api/v1/namespaces/kube-system/pods")).map(|s| s.uri.clone()).unwrap();
        assert!(listed.contains("labelSelector=app%3Dantrea%2Ccomponent%3Dantrea-agent"), "the DaemonSet's own selector: {listed}");
    }

    #[test]
    fn a_pod_with_iperf3_reads_back_as_a_kubernetes_pod_with_both_containers() {
        let spec = PodSpec { name: "server".into(), namespace: "perf-t1".into(), labels: Default::default(), node: "c-worker2".into(), host_ports: vec![] };
        let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(pod_object(&spec, "cni-probe:0.1.0", Some("cni-iperf3:0.1.0"))).unwrap();
        let containers = pod.spec.unwrap().containers;
        let iperf3 = containers.iter().find(|c| c.name == "iperf3").expect("the iperf3 container");
        assert_eq!(containers.len(), 2);
        assert_eq!(
            iperf3.readiness_probe.as_ref().and_then(|p| p.tcp_socket.as_ref()).map(|t| t.port.clone()),
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(5201))
        );
    }

    #[test]
    fn a_gateway_that_failed_is_not_awaited_again_by_every_trial() {
        use crate::kube_access::mock;
        let (access, seen, _runtime) = mock::api_server(|_, path, _| match path {
            "/api/v1/nodes" => (http::StatusCode::OK, mock::empty_list("Node")),
            _ => mock::status(403, "Forbidden", "namespaces is forbidden: User cannot create"),
        });
        let cluster = KubeCluster::new(
            info(),
            access,
            crate::cni::antrea(),
            Box::new(NoEnvironment::default()),
            KubeTimeouts { crd_established: Duration::from_millis(200), ..Default::default() },
        )
        .unwrap();
        let first = cluster.apply_http_route("weather-t1", &route()).unwrap_err().to_string();
        let asked = seen.lock().unwrap().len();
        let second = cluster.apply_http_route("weather-t2", &route()).unwrap_err().to_string();
        assert_eq!(seen.lock().unwrap().len(), asked, "the second trial asked the API server nothing");
        assert!(first.contains("the cluster's Gateway") && first.contains("forbidden") && second == first, "{first}\n{second}");
    }

    /// NGINX Gateway Fabric 1.6 serves one Gateway per class (its compatibility page;
    /// `internal/mode/static/state/graph` picks one and ignores the rest): every process on
    /// a cluster must ask for the same Gateway, and no process's teardown may remove it
    /// from under the others.
    #[test]
    fn every_process_on_a_cluster_claims_the_one_gateway_and_none_removes_it() {
        use crate::kube_access::mock;
        let (access, seen, _runtime) = mock::api_server(|_, path, _| match path {
            "/api/v1/nodes" => (http::StatusCode::OK, mock::empty_list("Node")),
            "/api/v1" => (http::StatusCode::OK, mock::core_v1_resources()),
            _ => mock::status(403, "Forbidden", "forbidden here: only the requests are looked at"),
        });
        let timeouts = KubeTimeouts { crd_established: Duration::from_millis(200), ..Default::default() };
        let mut second_info = info();
        second_info.run_id = "9f8e7d".into();
        let processes = [
            KubeCluster::new(info(), access.clone(), crate::cni::antrea(), Box::new(NoEnvironment::default()), timeouts.clone()).unwrap(),
            KubeCluster::new(second_info, access, crate::cni::antrea(), Box::new(NoEnvironment::default()), timeouts).unwrap(),
        ];
        let mut asked = vec![];
        for (index, process) in processes.iter().enumerate() {
            let before = seen.lock().unwrap().len();
            let _ = process.apply_http_route(&format!("weather-t{index}"), &route());
            asked.push(seen.lock().unwrap()[before..].iter().map(|s| format!("{} {}", s.method, s.uri.split('?').next().unwrap())).collect::<Vec<_>>());
        }
        assert_eq!(asked[0], asked[1], "both processes ask for the same Gateway");
        assert!(asked[0].iter().any(|r| r.contains(&format!("/namespaces/{GATEWAY_NAMESPACE}"))), "{asked:#?}");
        let before = seen.lock().unwrap().len();
        processes.iter().for_each(|p| p.teardown().unwrap());
        let removed: Vec<String> = seen.lock().unwrap()[before..].iter().filter(|s| s.method == "DELETE").map(|s| s.uri.clone()).collect();
        assert!(!removed.iter().any(|uri| uri.contains(GATEWAY_NAMESPACE)), "{removed:#?}");
    }

    fn route() -> HttpRoute {
        crate::fixtures::load_http_route(&crate::fixtures::fixture_path("canary/current-weather-route.yaml")).unwrap()
    }

    /// An API server that already holds namespace `prod-t1` (someone else's) and answers
    /// creates with fresh UIDs, conflicts on names that exist, and deletes.
    fn server_with_a_foreign_namespace() -> (KubeAccess, std::sync::Arc<Mutex<Vec<crate::kube_access::mock::Seen>>>, std::sync::Arc<tokio::runtime::Runtime>) {
        use crate::kube_access::mock;
        let existing = Mutex::new(vec!["prod-t1".to_owned()]);
        mock::api_server(move |method, path, body| match (method, path) {
            ("GET", "/api/v1") => (http::StatusCode::OK, mock::core_v1_resources()),
            ("GET", "/api/v1/nodes") => (http::StatusCode::OK, mock::empty_list("Node")),
            ("POST", "/api/v1/namespaces") => {
                let name = body["metadata"]["name"].as_str().unwrap().to_owned();
                let mut existing = existing.lock().unwrap();
                if existing.contains(&name) {
                    return mock::status(409, "AlreadyExists", &format!("namespaces \"{name}\" already exists"));
                }
                existing.push(name.clone());
                let mut created = body.clone();
                created["metadata"]["uid"] = json!(format!("uid-{name}"));
                (http::StatusCode::CREATED, created)
            }
            ("DELETE", _) => (http::StatusCode::OK, json!({"kind": "Status", "apiVersion": "v1", "status": "Success"})),
            _ => mock::status(404, "NotFound", path),
        })
    }

    #[test]
    fn a_namespace_of_the_same_base_name_is_never_adopted_or_deleted() {
        let (access, seen, _runtime) = server_with_a_foreign_namespace();
        let cluster: std::sync::Arc<dyn Cluster> =
            std::sync::Arc::new(KubeCluster::new(info(), access, crate::cni::antrea(), Box::new(NoEnvironment::default()), Default::default()).unwrap());
        let scenario = crate::Scenario {
            name: "s",
            sentence: "s",
            requires: &[],
            disruptive: false,
            body: |cx| {
                let name = cx.namespace("prod", crate::model::labels([("env", "prod")]))?;
                Err(HarnessError::NotFound { what: "end".into(), wanted: name })
            },
        };
        let outcome = crate::scenario::run_scenario(&cluster, &scenario, &Default::default(), "t1");
        assert!(matches!(&outcome, crate::report::TrialOutcome::Error(m) if m.ends_with("prod-t1-0a1b2c")), "a run-unique name: {outcome:?}");
        cluster.teardown().unwrap();
        let seen = seen.lock().unwrap();
        let touched: Vec<String> = seen.iter().filter(|s| s.method != "GET").map(|s| format!("{} {}", s.method, s.uri)).collect();
        assert!(!touched.iter().any(|t| t.ends_with("/namespaces/prod-t1") || t.contains("prod-t1?")), "prod-t1 untouched: {touched:#?}");
        assert!(!touched.iter().any(|t| t.contains("labelSelector")), "nothing deleted by label: {touched:#?}");
        assert!(!touched.iter().any(|t| t.starts_with("PATCH")), "nothing applied over: {touched:#?}");
        let delete = seen.iter().find(|s| s.method == "DELETE").expect("the run's own namespace is deleted");
        assert!(delete.uri.starts_with("/api/v1/namespaces/prod-t1-0a1b2c"), "{}", delete.uri);
        assert_eq!(delete.body["preconditions"]["uid"], "uid-prod-t1-0a1b2c", "only if it is still the one the run created");
    }

    #[test]
    fn a_name_that_exists_is_refused_and_left_alone() {
        let (access, seen, _runtime) = server_with_a_foreign_namespace();
        let cluster = KubeCluster::new(info(), access, crate::cni::antrea(), Box::new(NoEnvironment::default()), Default::default()).unwrap();
        let error = cluster.create_namespace(&NamespaceSpec { name: "prod-t1".into(), labels: Default::default() }).unwrap_err().to_string();
        assert!(error.contains("Namespace prod-t1 already exists") && error.contains("never adopts"), "{error}");
        cluster.teardown().unwrap();
        assert!(!seen.lock().unwrap().iter().any(|s| s.method == "DELETE"), "nothing the run did not create is deleted");
    }

    #[test]
    fn trial_namespaces_carry_the_run_label() {
        let namespace = NamespaceSpec { name: "prod-t3".into(), labels: labels([("env", "prod")]) };
        let object = namespace_object(&namespace, "cniconf-0a1b2c");
        assert_eq!(object["metadata"]["labels"][RUN_LABEL], "cniconf-0a1b2c");
        assert_eq!(object["metadata"]["labels"]["env"], "prod");
    }
}
