//! The kind provider's cluster lifecycle, driven through the `kind`, `kubectl`, `helm` and
//! `docker` command lines: a disposable cluster per CNI, named for the run, with its
//! kubeconfig in a private file (never merged into the user's own), deleted when the suite
//! ends; or, with `CNICONF_KEEP_CLUSTER=1`, kept and reused between runs.

use std::path::{Path, PathBuf};
use std::time::Duration;

pub mod bpffs;
mod running_cni;
pub use running_cni::{RunningCni, RUNNING_CNI};

use serde_json::Value;

use super::cli::{self, CliStep};
use super::runs;
use crate::cni::{CniProfile, Installation, ManifestSource};
use crate::error::{HarnessError, Result};
use crate::fixtures;

pub use crate::tools::{IPERF3_IMAGE, PROBE_IMAGE, TSN_PROXY_IMAGE};

/// How long each kind of step may take.
#[derive(Debug, Clone)]
pub struct KindTimeouts {
    pub create_cluster: Duration,
    pub install_cni: Duration,
    pub cni_ready: Duration,
    pub load_image: Duration,
    pub delete_cluster: Duration,
    /// A validating webhook (MetalLB's) starting to serve after its Deployment rolled out.
    pub webhook_ready: Duration,
}

impl Default for KindTimeouts {
    fn default() -> Self {
        Self {
            create_cluster: Duration::from_secs(300),
            install_cni: Duration::from_secs(300),
            cni_ready: Duration::from_secs(600),
            load_image: Duration::from_secs(180),
            delete_cluster: Duration::from_secs(120),
            webhook_ready: Duration::from_secs(120),
        }
    }
}

/// What a plan of CLI steps may take, each at most its own budget.
fn planned_budget(steps: &[CliStep]) -> Duration {
    steps.iter().map(|step| step.timeout).sum()
}

/// How to build a kind cluster.
#[derive(Debug, Clone)]
pub struct KindOptions {
    pub kind_config: PathBuf,
    /// Keep the cluster after the run and reuse it next time (`CNICONF_KEEP_CLUSTER=1`).
    pub keep: bool,
    /// A run of one process per test (nextest): its processes share one cluster, deleted
    /// when the runner ends.
    pub shared_run: Option<runs::MultiProcessRun>,
    /// Fail, rather than ignore, scenarios when a tool is missing (`CNICONF_REQUIRE_TOOLS=1`).
    pub require_tools: bool,
    pub timeouts: KindTimeouts,
}

pub const KEEP_VARIABLE: &str = "CNICONF_KEEP_CLUSTER";
pub const REQUIRE_TOOLS_VARIABLE: &str = "CNICONF_REQUIRE_TOOLS";

impl KindOptions {
    pub fn from_env() -> Self {
        let flag = |name: &str| std::env::var(name).is_ok_and(|v| v == "1" || v == "true");
        Self {
            kind_config: std::env::var_os("CNICONF_KIND_CONFIG").map(PathBuf::from).unwrap_or_else(|| fixtures::fixture_path("cluster/kind.yaml")),
            keep: flag(KEEP_VARIABLE),
            shared_run: runs::multi_process_run(),
            require_tools: flag(REQUIRE_TOOLS_VARIABLE),
            timeouts: KindTimeouts::default(),
        }
    }
}

/// The tools a kind run of `cni` needs: (tool, what for, how to get it).
pub fn required_tools(cni: &CniProfile) -> Vec<(&'static str, &'static str, &'static str)> {
    let mut tools = vec![
        ("kind", "creating and deleting clusters", "install it from https://kind.sigs.k8s.io/docs/user/quick-start/#installation"),
        ("docker", "kind's nodes and the external echo container", "install Docker Engine from https://docs.docker.com/engine/install/"),
        ("kubectl", "installing the CNI and waiting for it", "install it from https://kubernetes.io/docs/tasks/tools/"),
    ];
    if matches!(cni.installation, Installation::Helm { .. }) {
        tools.push(("helm", "installing the CNI's chart", "install it from https://helm.sh/docs/intro/install/"));
    }
    tools
}

/// The first missing tool as an error, if any.
pub fn missing_tool(cni: &CniProfile) -> Option<HarnessError> {
    required_tools(cni).into_iter().find(|(tool, ..)| !super::host::on_path(tool)).map(|(tool, purpose, install)| HarnessError::MissingTool {
        tool: tool.into(),
        purpose: purpose.into(),
        install: install.into(),
    })
}

/// The oldest kubectl the plan for `cni` works with, and why: a workload an operator makes
/// later is awaited with `kubectl wait --for=create`, which kubectl 1.31 added
/// (kubernetes/kubernetes#125868).
pub fn kubectl_needed(cni: &CniProfile) -> Option<((u32, u32), String)> {
    let later = cni.readiness.iter().find(|w| w.created_later)?;
    Some((
        (1, 31),
        format!(
            "the {} plan waits for {} to be created with `kubectl wait --for=create`, added in kubectl 1.31 (kubernetes/kubernetes#125868)",
            cni.name,
            later.describe()
        ),
    ))
}

/// kubectl's client version, from `kubectl version --client -o json` (`minor` may carry a
/// `+`, as vendors' builds print it).
pub fn kubectl_client_version(printed: &str) -> Option<(u32, u32)> {
    let version: Value = serde_json::from_str(printed).ok()?;
    let number = |field: &str| version["clientVersion"][field].as_str()?.trim_end_matches('+').parse().ok();
    Some((number("major")?, number("minor")?))
}

/// Fails, before anything is created, when the installed kubectl is older than the plan needs.
fn check_kubectl(cni: &CniProfile, timeouts: &KindTimeouts) -> Result<()> {
    let Some(((major, minor), why)) = kubectl_needed(cni) else { return Ok(()) };
    let printed = cli::run(&CliStep::new("reading kubectl's version", "kubectl", ["version", "--client", "-o", "json"], timeouts.delete_cluster))?;
    let found = kubectl_client_version(&printed).ok_or_else(|| HarnessError::NotFound {
        what: "kubectl client version".into(),
        wanted: format!("clientVersion.major and .minor in `kubectl version --client -o json` (it printed {:?})", printed.trim()),
    })?;
    if found < (major, minor) {
        return Err(HarnessError::ToolTooOld {
            tool: "kubectl".into(),
            found: format!("{}.{}", found.0, found.1),
            needed: format!("{major}.{minor}"),
            purpose: why,
            install: "install a newer kubectl from https://kubernetes.io/docs/tasks/tools/".into(),
        });
    }
    Ok(())
}

/// Why scenarios are ignored rather than run: a missing tool, unless the user asked for failures.
pub fn unavailable(cni: &CniProfile, options: &KindOptions) -> Option<String> {
    if options.require_tools {
        return None;
    }
    missing_tool(cni).map(|e| format!("{e} (set {REQUIRE_TOOLS_VARIABLE}=1 to fail instead of ignoring)"))
}

/// The cluster name: run-unique, or, when kept for reuse, named for what it holds: the
/// CNI and a digest of everything installed (the profile with its pinned versions and
/// Gateway implementation, the add-ons and their versions, the kind config). A cluster kept
/// by an egress run is therefore never reused by a canary run that needs Gateway API.
/// A cluster shared by the processes of one multi-process run is named for the run and what
/// it holds: `cniconf-nx-<digest>`.
pub fn cluster_name(cni: &CniProfile, keep: bool, shared_run: Option<&runs::MultiProcessRun>, addons: Addons, kind_config: &str) -> String {
    let gateway = cni.gateway.as_ref().filter(|_| addons.gateway_api);
    let holds = format!("{cni:?}|{gateway:?}|{addons:?}|{GATEWAY_API_VERSION}|{METALLB_VERSION}|{kind_config}");
    match (keep, shared_run) {
        (true, _) => format!("{}keep-{}-{:08x}", runs::NAME_PREFIX, cni.name, fnv1a(holds.as_bytes()) as u32),
        (false, Some(run)) => format!("{}nx-{}-{:08x}", runs::NAME_PREFIX, cni.name, fnv1a(format!("{}|{holds}", run.id).as_bytes()) as u32),
        (false, None) => runs::new_cluster_name(),
    }
}

/// FNV-1a: a digest that stays the same across Rust releases (std's hasher does not).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}

/// The kind config for `cni`: the fixture's cluster, with the default CNI disabled, for a
/// CNI that replaces kube-proxy kube-proxy off, and every node on the profile's pinned node
/// image (kind's `nodes[].image`).
pub fn render_kind_config(path: &Path, cni: &CniProfile) -> Result<String> {
    fixtures::load_kind_config(path)?;
    let text = std::fs::read_to_string(path).map_err(|source| HarnessError::FixtureUnreadable { path: path.to_owned(), source })?;
    let mut config: Value = serde_saphyr::from_str_with_options(&text, serde_saphyr::options! { strict_booleans: true })
        .map_err(|e| HarnessError::FixtureMalformed { path: path.to_owned(), detail: e.to_string() })?;
    let networking = config.as_object_mut().expect("checked by load_kind_config").entry("networking").or_insert_with(|| Value::Object(Default::default()));
    networking["disableDefaultCNI"] = Value::Bool(true);
    if cni.replaces_kube_proxy {
        networking["kubeProxyMode"] = Value::String("none".into());
    }
    for node in config["nodes"].as_array_mut().into_iter().flatten().filter_map(Value::as_object_mut) {
        if let Some(image) = &cni.kind_node_image {
            node.insert("image".into(), Value::String(image.clone()));
        }
        // A shared BPF filesystem is a directory of the cluster's own in the host's, mounted
        // into every node (kind `extraMounts`) as a metadata proxy's own kind config mounts the
        // host's; per node, the plan mounts one in each. The cluster's name is filled in once
        // it is known (it may be a digest of this text).
        if cni.bpffs == crate::cni::BpfFilesystem::Shared {
            let mounts = node.entry("extraMounts").or_insert_with(|| Value::Array(vec![]));
            if let Some(mounts) = mounts.as_array_mut() {
                let on_host = bpffs::of_cluster(bpffs::HOST_BPFFS, bpffs::CLUSTER_PLACEHOLDER);
                mounts.push(serde_json::json!({"hostPath": on_host, "containerPath": "/sys/fs/bpf"}));
            }
        }
    }
    Ok(serde_saphyr::to_string(&config).expect("JSON values serialize"))
}

/// Where files the harness puts on kind's nodes go.
///
/// Not under /tmp: kind runs its nodes with `--tmpfs /tmp` (kind
/// `pkg/cluster/internal/providers/docker/provision.go`), which `docker cp` cannot write
/// into (moby #22020) and which Docker mounts `noexec`, so the probe could not run there.
pub const NODE_FILES: &str = "/opt/cni-conformance";

/// Gateway API CRDs, standard channel, installed before the CNI so its controllers see them.
pub const GATEWAY_API_VERSION: &str = "v1.2.1";
/// MetalLB gives LoadBalancer Services and Gateways addresses on kind's network (thesis ch. 4).
pub const METALLB_VERSION: &str = "v0.14.9";

/// What a suite needs besides the CNI, from its scenarios' features.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Addons {
    pub gateway_api: bool,
    pub load_balancer: bool,
    /// A TSN metadata proxy chained after the CNI on every node, and bpffs mounted there.
    pub tsn_proxy: bool,
    /// iperf3 beside every pod (a sidecar), on nodes and on the external host, from the
    /// project's iperf3 image, loaded into the nodes.
    pub performance_tools: bool,
}

impl Addons {
    pub fn for_features(features: &[crate::cni::Feature]) -> Self {
        use crate::cni::Feature;
        let gateway_api = features.iter().any(|f| matches!(f, Feature::GatewayWeights | Feature::RequestMirror));
        Self {
            gateway_api,
            load_balancer: gateway_api || features.contains(&Feature::LoadBalancerService),
            tsn_proxy: features.contains(&Feature::TsnPriorityMap),
            performance_tools: features.contains(&Feature::PerformanceTools),
        }
    }
}

/// Files of one kind run, in its private state directory.
#[derive(Debug, Clone)]
pub struct RunFiles {
    pub kind_config: PathBuf,
    pub kubeconfig: PathBuf,
    /// MetalLB's address pool on kind's network, written once the network exists.
    pub address_pool: PathBuf,
    /// The TSN metadata proxy's DaemonSet.
    pub tsn_proxy: PathBuf,
    pub dir: PathBuf,
}

impl RunFiles {
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            kind_config: dir.join("kind.yaml"),
            kubeconfig: dir.join("kubeconfig"),
            address_pool: dir.join("metallb-pool.yaml"),
            tsn_proxy: dir.join("tsn-metadata-proxy.yaml"),
            dir: dir.to_owned(),
        }
    }

    /// The profile's manifest `index` as this cluster applies it (files beside a profile
    /// get the cluster's pod CIDR filled in).
    pub fn manifest(&self, index: usize) -> PathBuf {
        self.dir.join(format!("manifest-{index}.yaml"))
    }
}

/// Writes the profile's file manifests for this cluster, `{podSubnet}` filled in.
pub fn render_manifests(cni: &CniProfile, files: &RunFiles, pod_subnet: &str) -> Result<()> {
    let Installation::Manifests { manifests } = &cni.installation else { return Ok(()) };
    for (i, manifest) in manifests.iter().enumerate() {
        if let ManifestSource::File(path) = &manifest.source {
            let text = std::fs::read_to_string(path).map_err(|source| HarnessError::FixtureUnreadable { path: path.clone(), source })?;
            std::fs::write(files.manifest(i), text.replace("{podSubnet}", pod_subnet))
                .map_err(|e| HarnessError::Command { command: format!("write {}", files.manifest(i).display()), detail: e.to_string() })?;
        }
    }
    Ok(())
}

/// The kind config's node container names for `cluster` and its pod CIDR (kind's default
/// when it names none).
pub fn cluster_shape(kind_config: &Path, cluster: &str) -> Result<(Vec<String>, String)> {
    let config = fixtures::load_kind_config(kind_config)?;
    let pod_subnet = config.networking.pod_subnet.map(|s| s.to_string()).unwrap_or_else(|| "10.244.0.0/16".into());
    Ok((config.node_names(cluster), pod_subnet))
}

/// MetalLB's pool: .240 to .250 of the first /24 of kind's network (egress IPs use .200 to .239).
pub fn address_pool_objects(subnet: ipnet::Ipv4Net) -> Vec<Value> {
    let base = u32::from(subnet.network());
    let (first, last) = (std::net::Ipv4Addr::from(base + 240), std::net::Ipv4Addr::from(base + 250));
    vec![
        serde_json::json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": {"name": "cni-conformance", "namespace": "metallb-system"}, "spec": {"addresses": [format!("{first}-{last}")]}}),
        serde_json::json!({"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement", "metadata": {"name": "cni-conformance", "namespace": "metallb-system"}, "spec": {"ipAddressPools": ["cni-conformance"]}}),
    ]
}

/// Every command a kind run makes, in order: what `provision` executes and what the
/// snapshot tests show a reviewer.
#[derive(Debug, Clone)]
pub struct KindPlan {
    pub create: CliStep,
    /// Writes the private kubeconfig of a kept cluster that already exists.
    pub export_kubeconfig: CliStep,
    /// On a new cluster: the CNI and add-ons, each followed by waiting for it.
    pub install: Vec<CliStep>,
    /// On a kept cluster being reused: only the waits.
    pub await_ready: Vec<CliStep>,
    /// The probe image, and with the `performance_tools` add-on the iperf3 image.
    pub load_images: Vec<CliStep>,
    /// With the `tsn_proxy` add-on, after the probe image: see [`tsn_proxy_steps`].
    pub tsn_proxy: Vec<CliStep>,
    /// Before a new cluster is created: that what it needs of the Docker host is there
    /// (its BPF filesystem, for a profile whose nodes share one).
    pub before_create: Vec<CliStep>,
    pub delete: CliStep,
    /// After the cluster is deleted: what it left on the Docker host (its directory in the
    /// host's BPF filesystem).
    pub after_delete: Vec<CliStep>,
}

impl KindPlan {
    pub fn new(cluster: &str, cni: &CniProfile, files: &RunFiles, timeouts: &KindTimeouts, addons: Addons, nodes: &[String]) -> Self {
        let kubeconfig = files.kubeconfig.display().to_string();
        let kubectl = |purpose: String, args: Vec<String>, timeout| kubectl_step(&kubeconfig, purpose, args, timeout);
        let apply = |purpose: String, source: String| kubectl(purpose, vec!["apply".into(), "--server-side".into(), "-f".into(), source], timeouts.install_cni);
        let gateway = cni.gateway.as_ref().filter(|_| addons.gateway_api);
        let shared_bpffs = cni.bpffs == crate::cni::BpfFilesystem::Shared;
        let helm_install = |name: &str, version: &str, installation: &Installation, extra: &[(String, String)]| {
            helm_step(&kubeconfig, HelmVerb::Install, name, version, installation, extra, timeouts.install_cni)
        };
        // The kernel modules the CNI needs, on a new cluster and on a kept one reused: a module
        // is the host's, and the host may have rebooted (or unloaded it) since.
        let modules: Vec<CliStep> = cni
            .node_kernel_modules
            .iter()
            .flat_map(|module| {
                nodes.iter().map(move |node| {
                    CliStep::new(
                        format!("loading kernel module {module} on node {node} ({} needs it)", cni.name),
                        "docker",
                        ["exec", node, "sh", "-c", &load_module_script(module)],
                        timeouts.install_cni,
                    )
                })
            })
            .collect();
        let mut install = modules.clone();
        if let Some(needed) = &cni.node_plugins {
            // From the containernetworking/plugins release, for the node's architecture.
            let (version, plugins) = (&needed.version, needed.plugins.iter().map(|p| format!("./{p}")).collect::<Vec<_>>().join(" "));
            let script = format!(
                "set -e; arch=$(uname -m | sed 's/x86_64/amd64/;s/aarch64/arm64/'); curl -fsSL https://github.com/containernetworking/plugins/releases/download/v{version}/cni-plugins-linux-$arch-v{version}.tgz | tar -xz -C /opt/cni/bin {plugins}"
            );
            for node in nodes {
                install.push(CliStep::new(
                    format!("putting CNI plugins {} v{version} on node {node}", needed.plugins.join(", ")),
                    "docker",
                    ["exec", node, "sh", "-c", &script],
                    timeouts.install_cni,
                ));
            }
        }
        if addons.gateway_api {
            install.push(apply(
                format!("installing the Gateway API {GATEWAY_API_VERSION} CRDs"),
                format!("https://github.com/kubernetes-sigs/gateway-api/releases/download/{GATEWAY_API_VERSION}/standard-install.yaml"),
            ));
            for (gateway, crds) in gateway.iter().flat_map(|g| g.extra_crds.iter().map(move |crds| (g, crds))) {
                install.push(apply(format!("installing CRDs {} needs: {}", gateway.name, crds.why), crds.url.replace("{gateway_api}", GATEWAY_API_VERSION)));
            }
        }
        match &cni.installation {
            Installation::Lab { .. } => {}
            Installation::Manifests { manifests } => {
                for (i, manifest) in manifests.iter().enumerate() {
                    for crd in &manifest.wait_for_crds {
                        install.push(kubectl(
                            format!("waiting for CRD {crd} to be established"),
                            vec![
                                "wait".into(),
                                "--for=condition=Established".into(),
                                format!("crd/{crd}"),
                                format!("--timeout={}s", timeouts.cni_ready.as_secs()),
                            ],
                            timeouts.cni_ready,
                        ));
                    }
                    let source = match &manifest.source {
                        ManifestSource::Url(url) => url.replace("{version}", &cni.version),
                        ManifestSource::File(_) => files.manifest(i).display().to_string(),
                    };
                    install.push(apply(format!("installing {} {}", cni.name, cni.version), source));
                }
            }
            helm @ Installation::Helm { .. } => {
                install.extend(helm_install(&cni.name, &cni.version, helm, &cni_helm_values(cluster, cni, gateway)));
            }
        }
        let rollout = |w: &crate::cni::Workload| rollout_steps(&kubeconfig, w, timeouts);
        // Installing: only when the cluster is new. Waiting: also when a kept one is reused.
        // What the chart renders with the install's values (manifests render everything).
        let values = cni_helm_values(cluster, cni, gateway);
        let rendered = || cni.readiness.iter().filter(|w| w.rendered_with(&values));
        install.extend(rendered().flat_map(rollout));
        let mut await_ready: Vec<CliStep> = modules.into_iter().chain(rendered().flat_map(rollout)).collect();
        if addons.load_balancer {
            install.push(apply(
                format!("installing MetalLB {METALLB_VERSION}"),
                format!("https://raw.githubusercontent.com/metallb/metallb/{METALLB_VERSION}/config/manifests/metallb-native.yaml"),
            ));
            // The controller serves the pool's validating webhook; the speakers answer ARP for
            // the addresses in L2 mode. Both must run before a pool means anything.
            install.extend(metallb_workloads().iter().flat_map(rollout));
            // Rolled out is not yet serving: the webhook's endpoint and certificate follow a
            // moment later, so the pool is retried on the webhook's own errors, within a budget.
            install.push(apply("giving MetalLB addresses on kind's network".into(), files.address_pool.display().to_string()).retried_on(
                WEBHOOK_NOT_READY,
                timeouts.webhook_ready,
                "KindTimeouts::webhook_ready",
            ));
            await_ready.extend(metallb_workloads().iter().flat_map(rollout));
        }
        if let Some(gateway) = gateway {
            if let Some(implementation) = &gateway.installation {
                install.extend(helm_install(&format!("the Gateway API implementation {}", gateway.name), gateway.version, implementation, &[]));
            }
            install.extend(gateway.readiness.iter().flat_map(rollout));
            await_ready.extend(gateway.readiness.iter().flat_map(rollout));
        }
        Self {
            create: CliStep::new(
                format!("creating kind cluster {cluster}"),
                "kind",
                ["create", "cluster", "--name", cluster, "--config", &files.kind_config.display().to_string(), "--kubeconfig", &kubeconfig],
                timeouts.create_cluster,
            ),
            export_kubeconfig: CliStep::new(
                format!("reusing kept kind cluster {cluster}"),
                "kind",
                ["export", "kubeconfig", "--name", cluster, "--kubeconfig", &kubeconfig],
                timeouts.create_cluster,
            ),
            install,
            await_ready,
            load_images: std::iter::once(PROBE_IMAGE)
                .chain(addons.performance_tools.then_some(IPERF3_IMAGE))
                .map(|image| {
                    CliStep::new(format!("loading {image} into {cluster}"), "kind", ["load", "docker-image", image, "--name", cluster], timeouts.load_image)
                })
                .collect(),
            tsn_proxy: Vec::new(),
            before_create: shared_bpffs.then(|| bpffs::check_step(bpffs::HOST_BPFFS, timeouts.load_image)).into_iter().collect(),
            delete: CliStep::new(
                format!("deleting kind cluster {cluster}"),
                "kind",
                ["delete", "cluster", "--name", cluster, "--kubeconfig", &kubeconfig],
                timeouts.delete_cluster,
            ),
            after_delete: shared_bpffs.then(|| bpffs::remove_step(bpffs::HOST_BPFFS, cluster, timeouts.delete_cluster)).into_iter().collect(),
        }
    }
}

/// `kubectl --kubeconfig <kubeconfig> args...`.
fn kubectl_step(kubeconfig: &str, purpose: String, args: Vec<String>, timeout: std::time::Duration) -> CliStep {
    let mut all = vec!["--kubeconfig".to_owned(), kubeconfig.to_owned()];
    all.extend(args);
    CliStep::new(purpose, "kubectl", all, timeout)
}

/// Waiting for `workload` to be rolled out (a DaemonSet: on every node, one node after
/// another as its update strategy says), within the CNI readiness budget.
fn rollout_steps(kubeconfig: &str, workload: &crate::cni::Workload, timeouts: &KindTimeouts) -> Vec<CliStep> {
    let target = format!("{}/{}", workload.kind.to_lowercase(), workload.name);
    let timeout_flag = format!("--timeout={}s", timeouts.cni_ready.as_secs());
    let mut steps = Vec::new();
    if workload.created_later {
        // An operator makes it later: `rollout status` of a missing object fails at once.
        steps.push(kubectl_step(
            kubeconfig,
            format!("waiting for {} to be created", workload.describe()),
            vec!["--namespace".into(), workload.namespace.clone(), "wait".into(), "--for=create".into(), target.clone(), timeout_flag.clone()],
            timeouts.cni_ready,
        ));
    }
    steps.push(kubectl_step(
        kubeconfig,
        format!("waiting for {}", workload.describe()),
        vec!["--namespace".into(), workload.namespace.clone(), "rollout".into(), "status".into(), target, timeout_flag],
        timeouts.cni_ready,
    ));
    steps
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HelmVerb {
    Install,
    Upgrade,
}

/// `helm install` (or `upgrade`) of `installation` at `version`, with its values and then
/// `extra`. `--repo` names the chart's repository for this command only: the user's own
/// Helm repositories (`helm repo add`) are left as they were.
fn helm_step(
    kubeconfig: &str,
    verb: HelmVerb,
    name: &str,
    version: &str,
    installation: &Installation,
    extra: &[(String, String)],
    timeout: std::time::Duration,
) -> Option<CliStep> {
    let Installation::Helm { repo_url, chart, release, namespace, values } = installation else { return None };
    let (command, purpose) = match verb {
        HelmVerb::Install => ("install", "installing"),
        HelmVerb::Upgrade => ("upgrade", "upgrading in place to"),
    };
    let mut args: Vec<String> = ["--kubeconfig", kubeconfig, command, release, chart].map(str::to_owned).into();
    if !repo_url.is_empty() {
        args.extend(["--repo".to_owned(), repo_url.clone()]);
    }
    args.extend(["--version", version, "--namespace", namespace].map(str::to_owned));
    if verb == HelmVerb::Install {
        args.push("--create-namespace".into());
    }
    for (key, value) in values.iter().chain(extra) {
        args.extend(["--set".to_owned(), format!("{key}={value}")]);
    }
    Some(CliStep::new(format!("{purpose} {name} {version}"), "helm", args, timeout))
}

/// The values a CNI's chart gets on this cluster beside its profile's: the API server's
/// address where it replaces kube-proxy, and what its Gateway API support needs.
fn cni_helm_values(cluster: &str, cni: &CniProfile, gateway: Option<&crate::gateway::GatewayImplementation>) -> Vec<(String, String)> {
    let mut extra: Vec<(String, String)> = Vec::new();
    if cni.replaces_kube_proxy {
        // Without kube-proxy the agent must reach the API server directly.
        extra.push(("k8sServiceHost".into(), format!("{cluster}-control-plane")));
        extra.push(("k8sServicePort".into(), "6443".into()));
    }
    extra.extend(gateway.into_iter().flat_map(|g| g.cni_values.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))));
    extra
}

/// An in-place upgrade's commands in two parts: what the CNI's guide has done before the
/// switch, which running pods and their connections do not see (Cilium's pre-flight check
/// pulls the new images and checks the new agent's policies), and the switch itself.
#[derive(Debug, Clone)]
pub struct UpgradePlan {
    pub preparation: Vec<CliStep>,
    pub switch: Vec<CliStep>,
}

impl UpgradePlan {
    /// Every step in order: the preparation, then the switch.
    pub fn all_steps(self) -> Vec<CliStep> {
        [self.preparation, self.switch].concat()
    }
}

/// The commands that upgrade (or roll back) the CNI of kind cluster `cluster` in place
/// from `running` to `to`, as the CNI's own upgrade guide does it: the profile's upgrade
/// procedure first (Antrea's Controller before its Agents; Cilium's pre-flight check),
/// then its installation applied over the running one (`kubectl apply` of the release
/// manifests, or `helm upgrade` of the same release), then every workload awaited. The
/// agent DaemonSet replaces its pods node by node, as its rolling update does; nothing
/// else is restarted. `addons` are the cluster's, as [`KindPlan::new`] installed them;
/// `initial` is what the cluster was made with (`{initialMinor}` in upgrade values).
pub fn upgrade_plan(
    cluster: &str,
    initial: &CniProfile,
    running: &CniProfile,
    to: &CniProfile,
    files: &RunFiles,
    timeouts: &KindTimeouts,
    addons: Addons,
) -> Result<UpgradePlan> {
    let kubeconfig = files.kubeconfig.display().to_string();
    let refused =
        |why: String| HarnessError::UpgradeRefused { from: format!("{} {}", running.name, running.version), to: format!("{} {}", to.name, to.version), why };
    let (mut preparation, mut steps) = (Vec::new(), Vec::new());
    // The values `to`'s chart is upgraded with: what it renders, and so what is awaited.
    let mut upgraded_with: Vec<(String, String)> = Vec::new();
    match (&running.installation, &to.installation) {
        (Installation::Manifests { .. }, Installation::Manifests { manifests }) => {
            let sources = manifests
                .iter()
                .map(|m| match &m.source {
                    ManifestSource::Url(url) => Ok(url.replace("{version}", &to.version)),
                    ManifestSource::File(path) => Err(refused(format!(
                        "{} installs {} from a file beside its profile; only release manifests (URLs) are upgraded in place",
                        to.source.display(),
                        path.display()
                    ))),
                })
                .collect::<Result<Vec<_>>>()?;
            let apply = |purpose: String, source: &str, selector: Option<&str>| {
                let mut args: Vec<String> = ["apply", "--server-side", "-f", source].map(str::to_owned).into();
                args.extend(selector.into_iter().flat_map(|s| ["--selector".to_owned(), s.to_owned()]));
                kubectl_step(&kubeconfig, purpose, args, timeouts.install_cni)
            };
            if let Some(selector) = &to.upgrade.first_selector {
                steps.extend(sources.iter().map(|source| {
                    apply(format!("upgrading {} to {} first: the objects its selector {selector} picks", to.name, to.version), source, Some(selector))
                }));
                steps.extend(to.upgrade.first_readiness.iter().flat_map(|w| rollout_steps(&kubeconfig, w, timeouts)));
            }
            steps.extend(sources.iter().map(|source| apply(format!("upgrading in place to {} {}", to.name, to.version), source, None)));
        }
        (
            Installation::Helm { chart: from_chart, release: from_release, namespace: from_namespace, .. },
            helm @ Installation::Helm { repo_url, chart, release, namespace, .. },
        ) => {
            if (from_chart, from_release, from_namespace) != (chart, release, namespace) {
                return Err(refused(format!("an in-place upgrade keeps the Helm release: {from_release} of chart {from_chart} in {from_namespace} is running, {} names {release} of {chart} in {namespace}", to.source.display())));
            }
            // The Gateway support the cluster was made with (a CNI's own Gateway API is
            // switched on by its values) stays as it was installed, whatever `to` names.
            let gateway = initial.gateway.as_ref().filter(|_| addons.gateway_api);
            let cluster_values = cni_helm_values(cluster, to, gateway);
            if let Some(preflight) = &to.upgrade.preflight {
                let check = Installation::Helm {
                    repo_url: repo_url.clone(),
                    chart: chart.clone(),
                    release: preflight.release.clone(),
                    namespace: namespace.clone(),
                    values: preflight.values.clone(),
                };
                let api_server: Vec<(String, String)> = cluster_values.iter().filter(|(k, _)| k.starts_with("k8sService")).cloned().collect();
                preparation.extend(helm_step(
                    &kubeconfig,
                    HelmVerb::Install,
                    &format!("the pre-flight check of {}", to.name),
                    &to.version,
                    &check,
                    &api_server,
                    timeouts.install_cni,
                ));
                preparation.extend(preflight.readiness.iter().flat_map(|w| rollout_steps(&kubeconfig, w, timeouts)));
                preparation.push(CliStep::new(
                    format!("removing the pre-flight check of {} {}", to.name, to.version),
                    "helm",
                    ["--kubeconfig", &kubeconfig, "uninstall", &preflight.release, "--namespace", namespace, "--wait"],
                    timeouts.install_cni,
                ));
            }
            let initial_minor = initial.version.split('.').take(2).collect::<Vec<_>>().join(".");
            let mut values = cluster_values;
            values.extend(to.upgrade.values.iter().map(|(k, v)| (k.clone(), v.replace("{initialMinor}", &initial_minor))));
            steps.extend(helm_step(&kubeconfig, HelmVerb::Upgrade, &to.name, &to.version, helm, &values, timeouts.install_cni));
            upgraded_with = values;
        }
        (running_installation, to_installation) => {
            let how = |i: &Installation| match i {
                Installation::Lab { .. } => "by the lab",
                Installation::Manifests { .. } => "by manifests",
                Installation::Helm { .. } => "by Helm",
            };
            return Err(refused(format!(
                "{} is installed {}, {} {}: an in-place upgrade keeps the way the CNI is installed",
                running.name,
                how(running_installation),
                to.name,
                how(to_installation)
            )));
        }
    }
    // Cilium 1.16 upgraded with `upgradeCompatibility=1.15` renders no `cilium-envoy`
    // DaemonSet (its chart's `envoyDaemonSetEnabled`): nothing to await there.
    steps.extend(to.readiness.iter().filter(|w| w.rendered_with(&upgraded_with)).flat_map(|w| rollout_steps(&kubeconfig, w, timeouts)));
    Ok(UpgradePlan { preparation, switch: steps })
}

/// A user's own proxy image (its entrypoint takes the reference proxy's `install`
/// arguments: `--bin-dir`, `--conf-dir`, `--entry`).
pub const TSN_PROXY_IMAGE_VARIABLE: &str = "CNICONF_TSN_PROXY_IMAGE";
/// A user's own conflist entry for the proxy (JSON), chained after the CNI's plugins.
pub const TSN_PROXY_ENTRY_VARIABLE: &str = "CNICONF_TSN_PROXY_ENTRY";

/// Which metadata proxy a kind run chains after the CNI, as the paper's DaemonSet does.
#[derive(Debug, Clone, PartialEq)]
pub struct TsnProxyDeployment {
    pub image: String,
    /// The conflist entry, e.g. `{"type": "tsn-metadata-proxy", "nic": "eth0"}`.
    pub entry: Value,
}

impl Default for TsnProxyDeployment {
    fn default() -> Self {
        Self { image: TSN_PROXY_IMAGE.into(), entry: serde_json::json!({ "type": "tsn-metadata-proxy", "nic": crate::tools::NODE_NIC }) }
    }
}

impl TsnProxyDeployment {
    /// The reference proxy, or the user's image and entry from the environment.
    pub fn from_env() -> Result<Self> {
        Self::with(std::env::var(TSN_PROXY_IMAGE_VARIABLE).ok(), std::env::var(TSN_PROXY_ENTRY_VARIABLE).ok())
    }

    /// The reference proxy with what a user gave in its place (`image`, `entry` as JSON).
    pub fn with(image: Option<String>, entry: Option<String>) -> Result<Self> {
        let mut deployment = Self::default();
        if let Some(image) = image {
            deployment.image = image;
        }
        if let Some(entry) = entry {
            deployment.entry = serde_json::from_str::<Value>(&entry).ok().filter(|e| e.get("type").and_then(Value::as_str).is_some()).ok_or_else(|| {
                HarnessError::UnknownName {
                    what: "conflist entry".into(),
                    name: entry.clone(),
                    variable: TSN_PROXY_ENTRY_VARIABLE.into(),
                    expected: "a JSON object with the plugin's `type`, e.g. {\"type\": \"tsn-metadata-proxy\", \"nic\": \"eth0\"}".into(),
                }
            })?;
        }
        Ok(deployment)
    }

    /// The DaemonSet that installs the plugin binary on every node and chains the entry
    /// into the CNI's conflist (the paper's node initialization, steps 2 and 3). The
    /// restorer is attached by the plugin's first ADD on each node.
    pub fn daemonset(&self) -> Value {
        let labels = serde_json::json!({ "app.kubernetes.io/name": "tsn-metadata-proxy" });
        serde_json::json!({
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": { "name": "tsn-metadata-proxy", "namespace": "kube-system", "labels": labels },
            "spec": {
                "selector": { "matchLabels": labels },
                "template": {
                    "metadata": { "labels": labels },
                    "spec": {
                        "hostNetwork": true,
                        "tolerations": [{ "operator": "Exists" }],
                        "containers": [{
                            "name": "install",
                            "image": self.image,
                            "imagePullPolicy": "IfNotPresent",
                            "args": ["install", "--bin-dir", "/host/opt/cni/bin", "--conf-dir", "/host/etc/cni/net.d", "--entry", self.entry.to_string()],
                            "volumeMounts": [
                                { "name": "cni-bin", "mountPath": "/host/opt/cni/bin" },
                                { "name": "cni-conf", "mountPath": "/host/etc/cni/net.d" }
                            ]
                        }],
                        "volumes": [
                            { "name": "cni-bin", "hostPath": { "path": "/opt/cni/bin", "type": "Directory" } },
                            { "name": "cni-conf", "hostPath": { "path": "/etc/cni/net.d", "type": "Directory" } }
                        ]
                    }
                }
            }
        })
    }
}

/// Loads `module` in a kind node (privileged, with the host's /lib/modules mounted, kind
/// `provision.go`; its base image has kmod) unless it is loaded; otherwise fails saying so.
fn load_module_script(module: &str) -> String {
    format!(
        "test -d /sys/module/{module} || modprobe {module} || {{ echo 'kernel module {module} is not loaded on the Docker host and the node cannot load it: run `sudo modprobe {module}` on the host (Docker 27.3 and later no longer load it, moby #48492)' >&2; exit 1; }}"
    )
}

/// The proxy's steps, after the CNI is ready and the probe image loaded: its image into
/// the nodes, a BPF filesystem on every node (kind's nodes have none at /sys/fs/bpf), the
/// DaemonSet (`files.tsn_proxy`), and its rollout.
pub fn tsn_proxy_steps(cluster: &str, files: &RunFiles, timeouts: &KindTimeouts, nodes: &[String], deployment: &TsnProxyDeployment) -> Vec<CliStep> {
    let kubeconfig = files.kubeconfig.display().to_string();
    let mut steps = vec![CliStep::new(
        format!("loading {} into {cluster}", deployment.image),
        "kind",
        ["load", "docker-image", &deployment.image, "--name", cluster],
        timeouts.load_image,
    )];
    for node in nodes {
        steps.push(CliStep::new(
            format!("mounting a BPF filesystem at /sys/fs/bpf on node {node}"),
            "docker",
            // By its type: a directory of sysfs, or another filesystem mounted there, is none.
            ["exec", node, "sh", "-c", "[ \"$(stat -f -c %T /sys/fs/bpf)\" = bpf_fs ] || mount -t bpf bpf /sys/fs/bpf"],
            timeouts.install_cni,
        ));
    }
    steps.push(CliStep::new(
        "chaining the TSN metadata proxy after the CNI on every node",
        "kubectl",
        ["--kubeconfig", &kubeconfig, "apply", "--server-side", "-f", &files.tsn_proxy.display().to_string()],
        timeouts.install_cni,
    ));
    steps.push(CliStep::new(
        "waiting for DaemonSet kube-system/tsn-metadata-proxy",
        "kubectl",
        [
            "--kubeconfig",
            &kubeconfig,
            "--namespace",
            "kube-system",
            "rollout",
            "status",
            "daemonset/tsn-metadata-proxy",
            &format!("--timeout={}s", timeouts.cni_ready.as_secs()),
        ],
        timeouts.cni_ready,
    ));
    steps
}

/// MetalLB's workloads in `metallb-native.yaml`: the controller (IPAM and the webhook) and
/// the speaker DaemonSet (ARP in L2 mode).
fn metallb_workloads() -> [crate::cni::Workload; 2] {
    [crate::cni::Workload::new("Deployment", "metallb-system", "controller"), crate::cni::Workload::new("DaemonSet", "metallb-system", "speaker")]
}

/// What kubectl prints while MetalLB's webhook is not serving yet (no endpoint, the
/// connection refused, or its certificate not yet injected).
const WEBHOOK_NOT_READY: &[&str] =
    &["failed calling webhook", "no endpoints available for service", "connection refused", "x509: certificate signed by unknown authority"];

/// Clusters kind knows about.
pub fn existing_clusters(timeouts: &KindTimeouts) -> Result<Vec<String>> {
    let listed = cli::run(&CliStep::new("listing kind clusters", "kind", ["get", "clusters"], timeouts.delete_cluster))?;
    Ok(listed.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("No kind clusters")).map(str::to_owned).collect())
}

/// A kind cluster of this run, created and with its CNI installed and ready.
#[derive(Debug)]
pub struct KindCluster {
    pub name: String,
    pub files: RunFiles,
    pub plan: KindPlan,
    pub keep: bool,
    /// Shared by the processes of this multi-process run; the reaper deletes it.
    pub shared_run: Option<runs::MultiProcessRun>,
    pub addons: Addons,
}

impl KindCluster {
    /// Creates (or, when kept, reuses) the cluster, installs the CNI, waits for it and loads
    /// the probe image. On any failure the cluster is deleted (unless kept) before the error
    /// is returned; an interrupt deletes it too.
    pub fn create(cni: &CniProfile, options: &KindOptions, addons: Addons) -> Result<Self> {
        if let Some(missing) = missing_tool(cni) {
            return Err(missing);
        }
        check_kubectl(cni, &options.timeouts)?;
        let kind_config = render_kind_config(&options.kind_config, cni)?;
        // A bad proxy setting stops the run before anything exists.
        let tsn_proxy = addons.tsn_proxy.then(TsnProxyDeployment::from_env).transpose()?;
        let shared_run = options.shared_run.clone().filter(|_| !options.keep);
        let name = cluster_name(cni, options.keep, shared_run.as_ref(), addons, &kind_config);
        let io_error = |what: String| move |e: std::io::Error| HarnessError::Command { command: what, detail: e.to_string() };
        // The processes of a shared run take turns: the first creates, the others join.
        let _creating = match &shared_run {
            Some(_) => Some(runs::creation_lock(&name).map_err(io_error(format!("lock {}", runs::state_root().display())))?),
            None => None,
        };
        let owner = shared_run.as_ref().map(|run| run.runner).unwrap_or_else(std::process::id);
        let dir = runs::claim_for(&name, "kind", owner).map_err(io_error(format!("create {}", runs::state_dir(&name).display())))?;
        let files = RunFiles::in_dir(&dir);
        let kind_config = kind_config.replace(bpffs::CLUSTER_PLACEHOLDER, &name);
        std::fs::write(&files.kind_config, kind_config).map_err(io_error(format!("write {}", files.kind_config.display())))?;
        let (nodes, pod_subnet) = cluster_shape(&options.kind_config, &name)?;
        render_manifests(cni, &files, &pod_subnet)?;
        let mut plan = KindPlan::new(&name, cni, &files, &options.timeouts, addons, &nodes);
        if let Some(deployment) = tsn_proxy {
            std::fs::write(&files.tsn_proxy, crate::cni::egress::to_yaml(&[deployment.daemonset()]))
                .map_err(io_error(format!("write {}", files.tsn_proxy.display())))?;
            plan.tsn_proxy = tsn_proxy_steps(&name, &files, &options.timeouts, &nodes, &deployment);
        }
        let cluster = Self { name, files, plan, keep: options.keep, shared_run, addons };
        if let Some(run) = &cluster.shared_run {
            // Before anything is created: whatever happens to this process, the cluster goes
            // when the runner does (Ctrl-C, a crash, or simply the end of the run).
            spawn_reaper(run.runner, &cluster.name, &dir, &cluster.plan.after_delete).map_err(io_error(format!("start the reaper of {}", cluster.name)))?;
        } else if !cluster.keep {
            let (delete, after_delete) = (cluster.plan.delete.clone(), cluster.plan.after_delete.clone());
            let name = cluster.name.clone();
            crate::cleanup::register(&cluster.name, move || {
                // The run's containers beside the cluster (the external echo, iperf3) too.
                let _ = super::external::remove_containers_of(&name);
                let _ = cli::run(&delete);
                after_delete.iter().for_each(|step| drop(cli::run(step)));
                runs::release(&name);
            });
        }
        match cluster.bring_up(&options.timeouts) {
            Ok(()) => Ok(cluster),
            Err(error) => {
                if let Err(cleanup) = cluster.delete() {
                    tracing::error!("{cleanup}");
                }
                Err(error)
            }
        }
    }

    fn bring_up(&self, timeouts: &KindTimeouts) -> Result<()> {
        let reuse = self.outlives_process() && existing_clusters(timeouts)?.contains(&self.name);
        if reuse {
            cli::run(&self.plan.export_kubeconfig)?;
            for step in &self.plan.await_ready {
                cli::run(step)?;
            }
        } else {
            for step in &self.plan.before_create {
                cli::run(step)?;
            }
            cli::run(&self.plan.create)?;
            if self.addons.load_balancer {
                // kind's network exists once the cluster does.
                let pool = address_pool_objects(docker_network_subnet(KIND_NETWORK, timeouts)?);
                std::fs::write(&self.files.address_pool, crate::cni::egress::to_yaml(&pool))
                    .map_err(|e| HarnessError::Command { command: format!("write {}", self.files.address_pool.display()), detail: e.to_string() })?;
            }
            for step in &self.plan.install {
                cli::run(step)?;
            }
        }
        for step in &self.plan.load_images {
            cli::run(step)?;
        }
        // Also on a reused cluster: every step is idempotent, and the proxy must be there.
        for step in &self.plan.tsn_proxy {
            cli::run(step)?;
        }
        Ok(())
    }

    /// Whether the cluster is there for others after this process (kept, or shared by the run).
    pub fn outlives_process(&self) -> bool {
        self.keep || self.shared_run.is_some()
    }

    /// Deletes the cluster unless it is kept or shared; idempotent.
    pub fn delete(&self) -> Result<()> {
        if self.keep {
            tracing::info!("keeping kind cluster {} ({KEEP_VARIABLE}); `cargo xtask gc --force` deletes it", self.name);
            return Ok(());
        }
        if let Some(run) = &self.shared_run {
            tracing::info!("leaving kind cluster {} to the other processes of run {}; it is deleted when process {} ends", self.name, run.id, run.runner);
            return Ok(());
        }
        let deleted = cli::run(&self.plan.delete).map(drop).and_then(|()| self.plan.after_delete.iter().try_for_each(|step| cli::run(step).map(drop)));
        crate::cleanup::unregister(&self.name);
        runs::release(&self.name);
        deleted
    }
}

/// Starts a detached process that deletes cluster `name`, then runs `after_delete`, then
/// removes its state directory, once process `runner` has ended.
fn spawn_reaper(runner: u32, name: &str, state: &Path, after_delete: &[CliStep]) -> std::io::Result<()> {
    let script = r#"while kill -0 "$0" 2>/dev/null; do sleep 1; done; kind delete cluster --name "$1" >/dev/null 2>&1; sh -c "$3" >/dev/null 2>&1; rm -rf "$2" "$2.lock""#;
    let after: Vec<String> = after_delete
        .iter()
        .map(|step| shlex::try_join(std::iter::once(step.program.as_str()).chain(step.args.iter().map(String::as_str))).map_err(std::io::Error::other))
        .collect::<std::io::Result<_>>()?;
    let after = if after.is_empty() { ":".to_owned() } else { after.join("; ") };
    let mut command = std::process::Command::new("sh");
    command
        .args(["-c", script, &runner.to_string(), name, &state.display().to_string(), &after])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    command.spawn().map(drop)
}

/// What `gc` did with one kind cluster.
#[derive(Debug)]
pub enum KindCollected {
    Deleted(String),
    KeptAlive(String),
    KeptForReuse(String),
    Failed(String, String),
}

/// Deletes kind clusters of this harness whose run is gone; kept clusters and those of live
/// runs only with `force`.
pub fn collect(force: bool, timeouts: &KindTimeouts) -> Result<Vec<KindCollected>> {
    let mut collected = Vec::new();
    for name in existing_clusters(timeouts)?.into_iter().filter(|n| n.starts_with(runs::NAME_PREFIX)) {
        let kept = name.starts_with(&format!("{}keep-", runs::NAME_PREFIX));
        if !force && kept {
            collected.push(KindCollected::KeptForReuse(name));
            continue;
        }
        if !force && runs::owner_alive(&name) {
            collected.push(KindCollected::KeptAlive(name));
            continue;
        }
        let delete = CliStep::new(format!("deleting kind cluster {name}"), "kind", ["delete", "cluster", "--name", &name], timeouts.delete_cluster);
        match cli::run(&delete) {
            Ok(_) => {
                // Its directory in the host's BPF filesystem, if its nodes shared one (best
                // effort: without the helper image there is nothing to remove it with).
                if let Err(e) = cli::run(&bpffs::remove_step(bpffs::HOST_BPFFS, &name, timeouts.delete_cluster)) {
                    tracing::warn!("{e}");
                }
                runs::release(&name);
                collected.push(KindCollected::Deleted(name));
            }
            Err(e) => collected.push(KindCollected::Failed(name, e.to_string())),
        }
    }
    Ok(collected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cni;

    /// The pod hop of a priority trace on kind: the script finds the pod's ready sandbox by
    /// its exact name and namespace and runs the program in its network namespace; a pod
    /// with no sandbox on the node is named. Run for real in `sh`, against stand-ins of
    /// `crictl` (answering only the anchored filters) and `nsenter` (printing its arguments).
    #[test]
    fn a_program_runs_in_the_pod_s_network_namespace_found_through_crictl() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            std::fs::write(dir.path().join(name), text).unwrap();
            std::fs::set_permissions(dir.path().join(name), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        };
        write(
            "crictl",
            "#!/bin/sh\ncase \"$*\" in\n  'pods --name ^web$ --namespace ^prod-t1$ --state ready -q') echo 5f2a ;;\n  pods*) ;;\n  'inspectp -o go-template --template '*' 5f2a') echo /var/run/netns/cni-77 ;;\n  *) echo \"unexpected: $*\" >&2; exit 9 ;;\nesac\n",
        );
        write("nsenter", "#!/bin/sh\necho \"nsenter $*\"\n");
        let path = format!("{}:/usr/bin:/bin", dir.path().display());
        let run = |pod: &str| {
            std::process::Command::new("sh")
                .args(["-c", POD_NETWORK_SCRIPT, "sh", pod, "prod-t1", "tc", "-s", "class", "show", "dev", "eth0"])
                .env("PATH", &path)
                .output()
                .unwrap()
        };
        let found = run("web");
        assert!(found.status.success(), "{}", String::from_utf8_lossy(&found.stderr));
        assert_eq!(String::from_utf8_lossy(&found.stdout).trim(), "nsenter --net=/var/run/netns/cni-77 tc -s class show dev eth0");
        let missing = run("we");
        assert_eq!(missing.status.code(), Some(3));
        assert!(String::from_utf8_lossy(&missing.stderr).contains("no ready sandbox of pod prod-t1/we on this node"));
    }

    fn plan_text(cni: &CniProfile) -> String {
        plan_text_with(cni, Addons::default())
    }

    fn plan_text_with(cni: &CniProfile, addons: Addons) -> String {
        let files = RunFiles::in_dir(Path::new("/run/cni-conformance/cniconf-0a1b2c"));
        let (nodes, _) = cluster_shape(&fixtures::fixture_path("cluster/kind.yaml"), "cniconf-0a1b2c").unwrap();
        let mut plan = KindPlan::new("cniconf-0a1b2c", cni, &files, &KindTimeouts::default(), addons, &nodes);
        if addons.tsn_proxy {
            plan.tsn_proxy = tsn_proxy_steps("cniconf-0a1b2c", &files, &KindTimeouts::default(), &nodes, &TsnProxyDeployment::default());
        }
        let mut steps = vec![&plan.create];
        steps.extend(&plan.install);
        steps.extend(&plan.load_images);
        steps.extend(&plan.tsn_proxy);
        steps.push(&plan.delete);
        steps
            .iter()
            .map(|s| {
                let retry = s
                    .retry
                    .as_ref()
                    .map(|r| format!("; retried for up to {}s ({}) on: {}", r.budget.as_secs(), r.budget_name, r.transient.join(" | ")))
                    .unwrap_or_default();
                format!("# {} (timeout {}s{retry})\n{s}\n", s.purpose, s.timeout.as_secs())
            })
            .collect()
    }

    #[test]
    fn flannel_and_calico_get_the_metadata_proxy_chained_once_they_are_ready() {
        let tsn = Addons::for_features(&[crate::cni::Feature::TsnPriorityMap]);
        for (name, snapshot) in [("flannel", "flannel_tsn_kind_plan"), ("calico", "calico_tsn_kind_plan")] {
            let cni = cni::load_profile(name).unwrap();
            let plan = plan_text_with(&cni, tsn);
            let (ready, chained) = (plan.rfind("rollout status").unwrap(), plan.find("tsn-metadata-proxy.yaml").unwrap());
            assert!(plan.find("mount -t bpf bpf /sys/fs/bpf").is_some() && chained > plan.find("kind load docker-image cni-probe").unwrap(), "{plan}");
            assert!(
                ready > chained && plan[..chained].contains(&format!("rollout status daemonset/{}", cni.agent().unwrap().name)),
                "the CNI's agent is ready before the proxy chains into its conflist: {plan}"
            );
            insta::assert_snapshot!(snapshot, plan);
        }
    }

    #[test]
    fn the_proxy_daemonset_installs_on_every_node_and_chains_the_entry() {
        insta::assert_snapshot!("tsn_proxy_daemonset", crate::cni::egress::to_yaml(&[TsnProxyDeployment::default().daemonset()]));
    }

    #[test]
    fn a_user_s_proxy_image_and_entry_replace_the_reference_one_and_a_bad_entry_is_named() {
        let custom = TsnProxyDeployment { image: "registry.example/acme-tsn:1.0".into(), entry: serde_json::json!({"type": "acme-tsn", "iface": "enp1s0"}) };
        let daemonset = custom.daemonset();
        let container = &daemonset["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["image"], "registry.example/acme-tsn:1.0");
        assert!(container["args"].as_array().unwrap().iter().any(|a| a == r#"{"iface":"enp1s0","type":"acme-tsn"}"#), "{container}");
        assert_eq!(TsnProxyDeployment::with(Some(custom.image.clone()), Some(custom.entry.to_string())).unwrap(), custom);
        let error = TsnProxyDeployment::with(None, Some("eth0".into())).unwrap_err().to_string();
        assert!(error.contains(TSN_PROXY_ENTRY_VARIABLE) && error.contains("`type`"), "{error}");
    }

    fn upgrade_text(initial: &str, running: &str, to: &str, addons: Addons) -> String {
        let files = RunFiles::in_dir(Path::new("/run/cni-conformance/cniconf-0a1b2c"));
        let [initial, running, to] = [initial, running, to].map(|name| cni::load_profile(name).unwrap());
        let steps = upgrade_plan("cniconf-0a1b2c", &initial, &running, &to, &files, &KindTimeouts::default(), addons).unwrap().all_steps();
        steps.iter().map(|s| format!("# {} (timeout {}s)\n{s}\n", s.purpose, s.timeout.as_secs())).collect()
    }

    /// Antrea's docs/versioning.md: the Controller is upgraded before any Agent (the
    /// manifest split: everything but the Agent's DaemonSet), then the whole release
    /// manifest, then every workload awaited; nothing is deleted or restarted by hand.
    #[test]
    fn antrea_is_upgraded_controller_first_then_its_agents_roll() {
        let plan = upgrade_text("antrea-2.1", "antrea-2.1", "antrea", Addons::default());
        let first = plan.find("--selector component!=antrea-agent").expect("the Controller's objects first");
        let controller_ready = plan.find("rollout status deployment/antrea-controller").unwrap();
        let whole = plan.rfind("apply --server-side -f https://github.com/antrea-io/antrea/releases/download/v2.2.0/antrea.yml\n").unwrap();
        let agents = plan.find("rollout status daemonset/antrea-agent").unwrap();
        assert!(first < controller_ready && controller_ready < whole && whole < agents, "{plan}");
        assert!(!plan.contains("delete") && !plan.contains("v2.1.0"), "{plan}");
        insta::assert_snapshot!("antrea_upgrade_plan", plan);
        let rollback = upgrade_text("antrea-2.1", "antrea", "antrea-2.1", Addons::default());
        assert!(rollback.contains("releases/download/v2.1.0/antrea.yml --selector component!=antrea-agent") && !rollback.contains("v2.2.0"), "{rollback}");
    }

    /// A trial that upgrades gets the plan's budgets on top of its own: for Antrea 2.1 to
    /// 2.2, every step's (the Controller's objects, its rollout, the manifest, each
    /// workload's rollout), far more than `Timeouts::trial`'s 300 s.
    #[test]
    fn an_upgrade_s_trial_gets_its_plan_s_budget() {
        let files = RunFiles::in_dir(Path::new("/run/cni-conformance/cniconf-0a1b2c"));
        let [initial, to] = ["antrea-2.1", "antrea"].map(|name| cni::load_profile(name).unwrap());
        let steps = upgrade_plan("cniconf-0a1b2c", &initial, &initial, &to, &files, &KindTimeouts::default(), Addons::default()).unwrap().all_steps();
        let budget = planned_budget(&steps);
        assert_eq!(budget, steps.iter().map(|s| s.timeout).sum::<Duration>());
        assert!(budget > Duration::from_secs(300) && steps.len() >= 4, "{} steps, {budget:?}", steps.len());
        let clock = crate::deadline::TrialClock::starting_now(Duration::from_secs(300));
        let _trial = crate::deadline::enter(clock.clone(), "Timeouts::trial");
        crate::deadline::extend(budget);
        assert_eq!(clock.extended_by(), budget);
    }

    /// A kept cluster whose state says an upgrade trial's process died before its rollback
    /// is taken back to its installed CNI by the rollback plan before anything else uses
    /// it; a cluster whose state says nothing is left as it is. (Here no kubectl reaches a
    /// cluster: the attempt's error names the plan's first step, and the record stays for
    /// the next process to try again.)
    #[test]
    fn a_lost_rollback_is_repaired_from_the_cluster_s_state() {
        let dir = tempfile::tempdir().unwrap();
        let files = RunFiles::in_dir(dir.path());
        let installed = cni::load_profile("antrea-2.1").unwrap();
        let cluster = KindCluster {
            name: "cniconf-kept-antrea".into(),
            plan: KindPlan::new("cniconf-kept-antrea", &installed, &files, &KindTimeouts::default(), Addons::default(), &[]),
            files,
            keep: true,
            shared_run: None,
            addons: Addons::default(),
        };
        let environment = KindEnvironment::without_echo(cluster, vec![], &KindTimeouts::default());
        environment.restore_installed_cni().expect("nothing recorded: nothing to do");
        let upgraded = RunningCni { installed: installed.source.clone(), running: cni::load_profile("antrea").unwrap().source, replacing_to: None };
        upgraded.write(dir.path()).unwrap();
        let error = environment.restore_installed_cni().unwrap_err().to_string();
        assert!(error.contains("v2.1.0/antrea.yml --selector component!=antrea-agent"), "the rollback plan's first step: {error}");
        assert_eq!(RunningCni::read(dir.path()).unwrap(), Some(upgraded), "kept for the next try");
    }

    /// What the first step of an Antrea upgrade applies, judged against every object of the
    /// release manifests it is applied to (recorded from build/yamls/antrea.yml at tags
    /// v2.1.0 and v2.2.0 of antrea-io/antrea): every object but the Agent's DaemonSet, so the
    /// Controller comes up with its RBAC, config, APIServices, webhooks and CRDs of the new
    /// version before any Agent is. kubectl filters the file's objects with apimachinery's
    /// label selector, where `key!=value` also selects an object without the label
    /// (`Requirement.Matches`, staging/src/k8s.io/apimachinery/pkg/labels/selector.go).
    #[test]
    fn antrea_s_first_step_applies_everything_but_the_agent_daemonset() {
        let matches = |selector: &str, labels: &str| {
            let labels: std::collections::BTreeMap<&str, &str> = labels.split(',').filter_map(|l| l.split_once('=')).collect();
            selector.split(',').all(|requirement| match requirement.split_once("!=") {
                Some((key, value)) => labels.get(key) != Some(&value),
                None => requirement.split_once('=').is_some_and(|(key, value)| labels.get(key) == Some(&value)),
            })
        };
        for (profile, objects) in [("antrea", "upstream/antrea-v2.2.0-objects.txt"), ("antrea-2.1", "upstream/antrea-v2.1.0-objects.txt")] {
            let selector = cni::load_profile(profile).unwrap().upgrade.first_selector.unwrap();
            let text = std::fs::read_to_string(crate::fixtures::fixture_path(objects)).unwrap();
            let objects: Vec<Vec<&str>> = text.lines().filter(|l| !l.starts_with('#')).map(|l| l.split(' ').collect()).collect();
            let left: Vec<String> = objects.iter().filter(|o| !matches(&selector, o[2])).map(|o| format!("{} {}", o[0], o[1])).collect();
            assert_eq!(left, ["DaemonSet antrea-agent"], "{profile}: what waits for the whole manifest");
            for first in ["Deployment antrea-controller", "APIService v1beta2.controlplane.antrea.io", "ValidatingWebhookConfiguration crdvalidator.antrea.io"]
            {
                assert!(objects.iter().any(|o| format!("{} {}", o[0], o[1]) == first), "{profile}: {first} is in the manifest");
            }
            assert!(objects.iter().filter(|o| o[0] == "CustomResourceDefinition").count() > 10, "{profile}: the CRDs are recorded");
        }
    }

    /// Cilium's upgrade guide (Documentation/operations/upgrade.rst): the pre-flight check
    /// (with the API server's address when kube-proxy is replaced), awaited and removed, then
    /// `helm upgrade` of the same release with every value of the install and
    /// `upgradeCompatibility` set to the version first installed, rolling one node at a time.
    #[test]
    fn cilium_is_upgraded_after_its_pre_flight_check_with_the_initial_versions_compatibility() {
        let plan = upgrade_text("cilium-1.15", "cilium-1.15", "cilium", Addons::default());
        let preflight =
            plan.find("install cilium-preflight cilium --repo https://helm.cilium.io/ --version 1.16.6").expect("the pre-flight check of the new version");
        let checked = plan.find("rollout status daemonset/cilium-pre-flight-check").unwrap();
        // The guide's second gate: the pre-flight Deployment at READY 1/1 before it is removed
        // (Documentation/operations/upgrade.rst, "Clean up pre-flight check").
        let validated = plan.find("rollout status deployment/cilium-pre-flight-check").expect("the pre-flight Deployment awaited");
        assert!(checked < validated && validated < plan.find("uninstall cilium-preflight").unwrap(), "{plan}");
        let removed = plan.find("uninstall cilium-preflight --namespace kube-system --wait").unwrap();
        let upgraded = plan.find("upgrade cilium cilium --repo https://helm.cilium.io/ --version 1.16.6 --namespace kube-system").unwrap();
        let agents = plan.rfind("rollout status daemonset/cilium ").or_else(|| plan.rfind("rollout status daemonset/cilium\n")).unwrap();
        assert!(preflight < checked && checked < removed && removed < upgraded && upgraded < agents, "{plan}");
        let upgrade_line = plan[upgraded..].lines().next().unwrap();
        for value in [
            "kubeProxyReplacement=true",
            "egressGateway.enabled=true",
            "k8sServiceHost=cniconf-0a1b2c-control-plane",
            "upgradeCompatibility=1.15",
            "updateStrategy.rollingUpdate.maxUnavailable=1",
        ] {
            assert!(upgrade_line.contains(&format!("--set {value}")), "{value} missing: {upgrade_line}");
        }
        assert!(
            plan[preflight..checked].contains("--set k8sServiceHost=cniconf-0a1b2c-control-plane"),
            "kube-proxy-free: the pre-flight check is told the API server: {plan}"
        );
        assert!(!upgrade_line.contains("--reuse-values") && !upgrade_line.contains("--create-namespace"), "{upgrade_line}");
        // The 1.16 chart upgraded with `upgradeCompatibility=1.15` renders no `cilium-envoy`
        // DaemonSet (`envoyDaemonSetEnabled` in install/kubernetes/cilium/templates/_helpers.tpl
        // at v1.16.6): the upgrade awaits only what it renders; a fresh 1.16 install does.
        assert!(!plan.contains("cilium-envoy"), "no envoy DaemonSet to await after an upgrade from 1.15: {plan}");
        insta::assert_snapshot!("cilium_upgrade_plan", plan);
        // The rollback keeps the compatibility of the initial install, 1.15, not of 1.16.
        let rollback = upgrade_text("cilium-1.15", "cilium", "cilium-1.15", Addons::default());
        assert!(rollback.contains("--version 1.15.19 --namespace kube-system") && rollback.contains("--set upgradeCompatibility=1.15"), "{rollback}");
        assert!(!rollback.contains("cilium-envoy"), "1.15 has no envoy DaemonSet to await: {rollback}");
    }

    #[test]
    fn an_upgrade_that_changes_how_the_cni_installs_is_refused_before_anything_runs() {
        let files = RunFiles::in_dir(Path::new("/run/cni-conformance/cniconf-0a1b2c"));
        let (antrea, cilium) = (cni::antrea(), cni::cilium());
        let error = upgrade_plan("cniconf-0a1b2c", &antrea, &antrea, &cilium, &files, &KindTimeouts::default(), Addons::default()).unwrap_err().to_string();
        assert!(error.contains("cannot upgrade antrea 2.2.0 in place to cilium 1.16.6: antrea is installed by manifests, cilium by Helm"), "{error}");
        let renamed = CniProfile {
            installation: Installation::Helm {
                repo_url: "https://helm.cilium.io/".into(),
                chart: "cilium".into(),
                release: "cilium-new".into(),
                namespace: "kube-system".into(),
                values: vec![],
            },
            ..cilium.clone()
        };
        let error = upgrade_plan("cniconf-0a1b2c", &cilium, &cilium, &renamed, &files, &KindTimeouts::default(), Addons::default()).unwrap_err().to_string();
        assert!(error.contains("an in-place upgrade keeps the Helm release: cilium of chart cilium in kube-system is running"), "{error}");
    }

    #[test]
    fn antrea_install_plan() {
        insta::assert_snapshot!("antrea_kind_plan", plan_text(&cni::antrea()));
    }

    #[test]
    fn cilium_install_plan() {
        insta::assert_snapshot!("cilium_kind_plan", plan_text(&cni::cilium()));
    }

    #[test]
    fn antrea_with_nginx_gateway_fabric_and_metallb_plan() {
        let addons = Addons::for_features(&[crate::cni::Feature::GatewayWeights]);
        insta::assert_snapshot!("antrea_canary_kind_plan", plan_text_with(&cni::antrea(), addons));
    }

    #[test]
    fn cilium_with_its_gateway_api_and_metallb_plan() {
        let addons = Addons::for_features(&[crate::cni::Feature::GatewayWeights]);
        let plan = plan_text_with(&cni::cilium(), addons);
        assert!(plan.find("standard-install.yaml").unwrap() < plan.find("helm --kubeconfig").unwrap(), "CRDs before Cilium: {plan}");
        insta::assert_snapshot!("cilium_canary_kind_plan", plan);
    }

    #[test]
    fn cilium_gets_the_tlsroute_crd_its_operator_requires_before_it_starts() {
        let plan = plan_text_with(&cni::cilium(), Addons::for_features(&[crate::cni::Feature::GatewayWeights]));
        let tlsroute = plan.find("gateway-api/v1.2.1/config/crd/experimental/gateway.networking.k8s.io_tlsroutes.yaml").expect("the TLSRoute CRD is installed");
        assert!(tlsroute < plan.find("helm --kubeconfig").unwrap(), "before Cilium's operator starts: {plan}");
        let antrea = plan_text_with(&cni::antrea(), Addons::for_features(&[crate::cni::Feature::GatewayWeights]));
        assert!(!antrea.contains("tlsroutes"), "NGINX Gateway Fabric needs only the standard channel: {antrea}");
    }

    #[test]
    fn cilium_waits_for_the_envoy_daemonset_that_carries_gateway_traffic() {
        assert!(plan_text(&cni::cilium()).contains("rollout status daemonset/cilium-envoy"));
    }

    #[test]
    fn metallb_speakers_are_awaited_and_the_pool_waits_for_the_webhook() {
        let plan = plan_text_with(&cni::antrea(), Addons { gateway_api: false, load_balancer: true, tsn_proxy: false, performance_tools: false });
        let (speaker, pool) = (plan.find("rollout status daemonset/speaker").expect("the speaker is awaited"), plan.find("metallb-pool.yaml").unwrap());
        assert!(speaker < pool, "{plan}");
        assert!(plan.contains("retried for up to 120s (KindTimeouts::webhook_ready) on: failed calling webhook"), "{plan}");
    }

    #[test]
    fn helm_never_touches_the_users_repositories() {
        for cni in [cni::cilium(), cni::antrea()] {
            let plan = plan_text_with(&cni, Addons::for_features(&[crate::cni::Feature::GatewayWeights]));
            assert!(!plan.contains("helm repo"), "{plan}");
        }
        assert!(plan_text(&cni::cilium()).contains("install cilium cilium --repo https://helm.cilium.io/ --version 1.16.6"));
    }

    /// A kernel module is the Docker host's: a kept cluster reused after the host rebooted
    /// (or unloaded it) would run Flannel without `br_netfilter`. Reusing a kept cluster
    /// loads it again on every node before the waits, as a new cluster does before install.
    #[test]
    fn a_reused_kept_cluster_loads_the_cni_s_kernel_modules_again() {
        let flannel = crate::cni::load_profile("flannel").unwrap();
        let files = RunFiles::in_dir(Path::new("/run/cni-conformance/cniconf-0a1b2c"));
        let (nodes, _) = cluster_shape(&fixtures::fixture_path("cluster/kind.yaml"), "cniconf-0a1b2c").unwrap();
        let plan = KindPlan::new("cniconf-0a1b2c", &flannel, &files, &KindTimeouts::default(), Addons::default(), &nodes);
        let loading: Vec<&CliStep> = plan.await_ready.iter().take_while(|step| step.purpose.starts_with("loading kernel module br_netfilter")).collect();
        assert_eq!(loading.len(), nodes.len(), "br_netfilter on every node first: {:?}", plan.await_ready);
        assert!(plan.await_ready.len() > nodes.len(), "then the waits");
    }

    #[test]
    fn flannel_gets_the_bridge_plugin_on_every_node_before_it_installs() {
        let flannel = crate::cni::load_profile("flannel").unwrap();
        let plan = plan_text(&flannel);
        let nodes = ["cniconf-0a1b2c-control-plane", "cniconf-0a1b2c-worker", "cniconf-0a1b2c-worker2"];
        for node in nodes {
            assert!(plan.contains(&format!("docker exec {node} sh -c set -e;")), "{node}: {plan}");
        }
        assert!(plan.find("cni-plugins-linux-$arch-v1.6.2.tgz").unwrap() < plan.find("kube-flannel.yml").unwrap(), "{plan}");
        insta::assert_snapshot!("flannel_kind_plan", plan);
    }

    /// flanneld exits when /proc/sys/net/bridge/bridge-nf-call-iptables is missing (flannel
    /// `main.go`, "Failed to check br_netfilter"); Docker 27.3+ no longer loads the module
    /// (moby #48492). Every node loads it before Flannel installs.
    #[test]
    fn flannel_nodes_load_br_netfilter_before_flannel_installs() {
        let flannel = crate::cni::load_profile("flannel").unwrap();
        let plan = plan_text(&flannel);
        for node in ["cniconf-0a1b2c-control-plane", "cniconf-0a1b2c-worker", "cniconf-0a1b2c-worker2"] {
            let load = plan
                .find(&format!("docker exec {node} sh -c test -d /sys/module/br_netfilter || modprobe br_netfilter"))
                .unwrap_or_else(|| panic!("{node}: {plan}"));
            assert!(load < plan.find("kube-flannel.yml").unwrap(), "{plan}");
        }
        assert!(!plan_text(&cni::antrea()).contains("modprobe"), "only a profile that asks loads modules");
    }

    /// The script a node runs, run here: a loaded module is left be; one that cannot be
    /// loaded fails with what to do on the host.
    #[test]
    fn a_module_a_node_cannot_load_fails_with_what_to_do_on_the_host() {
        let run = |module: &str| std::process::Command::new("sh").args(["-c", &load_module_script(module)]).output().unwrap();
        let missing = run("cniconf_no_such_module");
        let said = String::from_utf8_lossy(&missing.stderr);
        assert!(!missing.status.success() && said.contains("run `sudo modprobe cniconf_no_such_module` on the host") && said.contains("moby #48492"), "{said}");
        let loaded = std::fs::read_dir("/sys/module").unwrap().filter_map(|e| e.ok()).find(|e| e.path().is_dir()).unwrap().file_name();
        assert!(run(&loaded.to_string_lossy()).status.success(), "{loaded:?} is loaded");
    }

    #[test]
    fn calico_applies_its_installation_after_the_operators_crds_and_awaits_what_the_operator_creates() {
        let calico = crate::cni::load_profile("calico").unwrap();
        let plan = plan_text(&calico);
        let operator = plan.find("tigera-operator.yaml").unwrap();
        let established = plan.find("wait --for=condition=Established crd/installations.operator.tigera.io").unwrap();
        let installation = plan.find("manifest-1.yaml").unwrap();
        let created = plan.find("wait --for=create daemonset/calico-node").unwrap();
        assert!(operator < established && established < installation && installation < created, "{plan}");
        assert!(created < plan.find("rollout status daemonset/calico-node").unwrap(), "{plan}");
        insta::assert_snapshot!("calico_kind_plan", plan);
        let dir = tempfile::tempdir().unwrap();
        let files = RunFiles::in_dir(dir.path());
        render_manifests(&calico, &files, "10.244.0.0/16").unwrap();
        let rendered = std::fs::read_to_string(files.manifest(1)).unwrap();
        assert!(rendered.contains("cidr: \"10.244.0.0/16\"") && !rendered.contains("{podSubnet}"), "{rendered}");
    }

    #[test]
    fn metallb_gets_the_top_of_kinds_first_block() {
        let pool = address_pool_objects("172.18.0.0/16".parse().unwrap());
        assert_eq!(pool[0]["spec"]["addresses"][0], "172.18.0.240-172.18.0.250");
    }

    #[test]
    fn antrea_kind_config() {
        insta::assert_snapshot!("antrea_kind_config", render_kind_config(&fixtures::fixture_path("cluster/kind.yaml"), &cni::antrea()).unwrap());
    }

    #[test]
    fn cilium_kind_config_turns_kube_proxy_off() {
        let config = render_kind_config(&fixtures::fixture_path("cluster/kind.yaml"), &cni::cilium()).unwrap();
        assert!(config.contains("kubeProxyMode: none"), "{config}");
        insta::assert_snapshot!("cilium_kind_config", config);
    }

    /// Each CNI version on a Kubernetes release it supports, pinned by digest (kind v0.29.0's
    /// release notes list the images), on every node, and said in the report.
    #[test]
    fn every_kind_profile_pins_its_node_image_on_every_node_and_the_report_names_it() {
        for name in ["antrea", "cilium", "flannel", "calico"] {
            let profile = cni::load_profile(name).unwrap();
            let image = profile.kind_node_image.clone().unwrap_or_else(|| panic!("{name} pins no kind node image"));
            let config: Value = serde_saphyr::from_str(&render_kind_config(&fixtures::fixture_path("cluster/kind.yaml"), &profile).unwrap()).unwrap();
            let nodes = config["nodes"].as_array().unwrap();
            assert!(nodes.len() == 3 && nodes.iter().all(|n| n["image"] == image.as_str()), "{name}: {config}");
            let parts = kind_components(&profile, Addons::default());
            let shown = parts.iter().find(|c| c.name == "kind node image").unwrap();
            assert!(shown.version.starts_with("v1.3") && shown.origin.contains(&image), "{name}: {shown:?}");
        }
        assert!(
            cni::cilium().kind_node_image.unwrap().starts_with("kindest/node:v1.30."),
            "Cilium 1.16 is e2e-tested up to Kubernetes 1.30 (its compatibility page)"
        );
    }

    /// A profile that shares the BPF filesystem gets a directory of the cluster's own in the
    /// host's `/sys/fs/bpf` in every node (kind `extraMounts`, Docker makes it), checked to
    /// be a BPF filesystem before the cluster is made and removed after it is deleted; per
    /// node (the default), none of it.
    #[test]
    fn a_shared_bpf_filesystem_is_a_directory_of_the_cluster_s_own_in_the_host_s() {
        let shared = CniProfile { bpffs: crate::cni::BpfFilesystem::Shared, ..cni::load_profile("flannel").unwrap() };
        let config: Value = serde_saphyr::from_str(&render_kind_config(&fixtures::fixture_path("cluster/kind.yaml"), &shared).unwrap()).unwrap();
        let nodes = config["nodes"].as_array().unwrap();
        let mount = serde_json::json!([{"hostPath": "/sys/fs/bpf/{cluster}", "containerPath": "/sys/fs/bpf"}]);
        assert!(nodes.iter().all(|n| n["extraMounts"] == mount), "{config}");
        let files = RunFiles::in_dir(Path::new("/run/cni-conformance/cniconf-0a1b2c"));
        let plan = KindPlan::new("cniconf-0a1b2c", &shared, &files, &KindTimeouts::default(), Addons::default(), &[]);
        let [check] = plan.before_create.as_slice() else { panic!("{:?}", plan.before_create) };
        assert!(check.args.contains(&"/sys/fs/bpf:/host-bpf".to_owned()) && check.to_string().contains("= bpf_fs"), "{check}");
        let [remove] = plan.after_delete.as_slice() else { panic!("{:?}", plan.after_delete) };
        assert!(remove.to_string().ends_with("rm -rf /host-bpf/cniconf-0a1b2c"), "{remove}");
        let flannel = cni::load_profile("flannel").unwrap();
        let per_node = render_kind_config(&fixtures::fixture_path("cluster/kind.yaml"), &flannel).unwrap();
        assert!(!per_node.contains("extraMounts"), "{per_node}");
        let plan = KindPlan::new("cniconf-0a1b2c", &flannel, &files, &KindTimeouts::default(), Addons::default(), &[]);
        assert!(plan.before_create.is_empty() && plan.after_delete.is_empty());
    }

    #[test]
    fn egress_ips_come_from_the_top_of_the_first_block_of_kinds_network() {
        let pool = egress_pool("172.18.0.0/16".parse().unwrap());
        assert_eq!((pool.len(), pool[0].to_string(), pool[39].to_string()), (40, "172.18.0.200".into(), "172.18.0.239".into()));
        assert!(egress_pool("10.0.0.0/25".parse().unwrap()).is_empty(), "a /25 has no .200");
    }

    #[test]
    fn kept_clusters_have_a_stable_name_per_cni() {
        let config = render_kind_config(&fixtures::fixture_path("cluster/kind.yaml"), &cni::antrea()).unwrap();
        let egress = cluster_name(&cni::antrea(), true, None, Addons::default(), &config);
        assert!(egress.starts_with("cniconf-keep-antrea-"), "{egress}");
        assert_eq!(egress, cluster_name(&cni::antrea(), true, None, Addons::default(), &config), "stable between runs");
        assert_ne!(
            cluster_name(&cni::antrea(), false, None, Addons::default(), &config),
            cluster_name(&cni::cilium(), false, None, Addons::default(), &config)
        );
    }

    #[test]
    fn a_kept_cluster_is_keyed_by_what_it_holds() {
        let config = render_kind_config(&fixtures::fixture_path("cluster/kind.yaml"), &cni::antrea()).unwrap();
        let name = |cni: &CniProfile, addons| cluster_name(cni, true, None, addons, &config);
        let egress = name(&cni::antrea(), Addons::default());
        let canary = name(&cni::antrea(), Addons::for_features(&[crate::cni::Feature::GatewayWeights]));
        assert_ne!(egress, canary, "an egress run's cluster has no Gateway API or MetalLB");
        let bumped = CniProfile { version: "2.3.0".into(), ..cni::antrea() };
        assert_ne!(name(&bumped, Addons::default()), egress, "a version bump gets a new cluster");
        assert_ne!(cluster_name(&cni::antrea(), true, None, Addons::default(), &format!("{config}# two workers more")), egress, "another kind config too");
    }

    #[test]
    fn helm_is_needed_only_for_helm_installs() {
        let tools = |cni: &CniProfile| required_tools(cni).into_iter().map(|t| t.0).collect::<Vec<_>>();
        assert_eq!(tools(&cni::antrea()), ["kind", "docker", "kubectl"]);
        assert_eq!(tools(&cni::cilium()), ["kind", "docker", "kubectl", "helm"]);
    }
}

/// Egress IPs for a Docker network: addresses .200 to .239 of its first /24, away from
/// the low addresses Docker hands to containers.
pub fn egress_pool(subnet: ipnet::Ipv4Net) -> Vec<std::net::IpAddr> {
    let base = u32::from(subnet.network());
    (200..240u32).map(|host| std::net::Ipv4Addr::from(base + host)).filter(|ip| subnet.contains(ip)).map(std::net::IpAddr::V4).collect()
}

/// The IPv4 subnet of a Docker network.
fn docker_network_subnet(network: &str, timeouts: &KindTimeouts) -> Result<ipnet::Ipv4Net> {
    let inspect = CliStep::new(
        format!("reading the subnet of Docker network {network}"),
        "docker",
        ["network", "inspect", network, "--format", "{{range .IPAM.Config}}{{.Subnet}} {{end}}"],
        timeouts.load_image,
    );
    let printed = cli::run(&inspect)?;
    printed
        .split_whitespace()
        .find_map(|s| s.parse().ok())
        .ok_or_else(|| HarnessError::NotFound { what: "IPv4 subnet".into(), wanted: format!("of Docker network {network} (it said {printed:?})") })
}

/// What the kind provider adds around the API server: the external echo container on
/// kind's network, egress IPs from that network, node containers to stop or address.
pub struct KindEnvironment {
    cluster: KindCluster,
    echo: std::sync::Mutex<Option<super::external::ProbeContainer>>,
    echo_address: std::net::SocketAddr,
    egress_pool: Vec<std::net::IpAddr>,
    timeouts: KindTimeouts,
    /// Nodes whose uplink is cut and not yet restored.
    failed_nodes: std::sync::Mutex<Vec<(crate::model::Node, Uplink)>>,
    /// Egress IPs put on nodes (for CNIs that expect them there), as (node, IP).
    placed_ips: std::sync::Mutex<Vec<(String, std::net::IpAddr)>>,
    /// The profile (its file) whose upgrade's preparation has run, and whose switch has not.
    prepared: std::sync::Mutex<Option<PathBuf>>,
    /// The static probe node talkers run, and the nodes it has been copied to.
    static_probe: PathBuf,
    probe_on: std::sync::Mutex<std::collections::BTreeMap<String, String>>,
    /// With the `performance_tools` add-on: iperf3 serving beside the external echo, and
    /// beside each node that was asked to serve.
    external_iperf3: std::sync::Mutex<Option<super::external::Iperf3Beside>>,
    node_iperf3: std::sync::Mutex<std::collections::BTreeMap<String, super::external::Iperf3Beside>>,
}

/// Runs a program in a pod's network namespace on a kind node (`sh -c` this, then `sh`,
/// the pod's name and namespace, the program and its arguments). A kind node runs
/// containerd with `crictl` configured for it; `crictl pods` filters by regular
/// expressions, hence the anchors (names are DNS labels: nothing to escape);
/// `crictl inspectp` is verbose unless `--quiet`, and containerd's verbose sandbox status
/// carries its OCI runtime spec, whose network namespace is the pod's
/// (kubernetes-sigs/cri-tools `cmd/crictl/sandbox.go`: `inspectp`, `--quiet` "Do not show
/// verbose information"). `nsenter` is util-linux's, in every Debian-based node image.
pub const POD_NETWORK_SCRIPT: &str = r#"pod=$1 namespace=$2; shift 2
id=$(crictl pods --name "^$pod\$" --namespace "^$namespace\$" --state ready -q | head -n 1)
[ -n "$id" ] || { echo "no ready sandbox of pod $namespace/$pod on this node (crictl pods)" >&2; exit 3; }
netns=$(crictl inspectp -o go-template --template '{{range .info.runtimeSpec.linux.namespaces}}{{if eq .type "network"}}{{.path}}{{end}}{{end}}' "$id")
[ -n "$netns" ] || { echo "sandbox $id of pod $namespace/$pod names no network namespace (crictl inspectp)" >&2; exit 3; }
exec nsenter --net="$netns" "$@""#;

/// `program args` in node container `container` (`docker exec`), whatever it exits with.
fn docker_exec(container: &str, program: &str, args: &[&str]) -> Result<crate::model::ExecOutput> {
    let output = std::process::Command::new("docker")
        .args(["exec", container, program])
        .args(args)
        .output()
        .map_err(|e| HarnessError::Command { command: format!("docker exec {container} {program}"), detail: e.to_string() })?;
    Ok(crate::model::ExecOutput::from_output(&output))
}

/// kind's Docker network, where nodes and the external echo meet.
pub const KIND_NETWORK: &str = "kind";

/// The pool, in the cluster's state, of egress IPs handed to the processes on it.
const EGRESS_IPS: &str = "egress-ips";

/// A node container's uplink: the host side of the veth whose other end is the node's
/// `eth0`, as Docker wires a container to a bridge network. Setting it down is a cable
/// pulled at the switch: nothing inside the node is touched (its addresses and routes stay,
/// its agents get no warning), and setting it up again restores the node exactly. kind's
/// network cannot take a node back with its address once disconnected (`docker network
/// connect --ip` needs a user-configured IPv4 subnet, which kind's network has only for
/// IPv6, and the NIC would come back as eth1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uplink {
    /// The host's name for the veth end.
    pub host_link: String,
    /// The node's own image: it has `ip`, and it is certainly on the host.
    pub helper_image: String,
}

/// The name of the link with `index` in `ip -o link show` output (`23: veth1a2b3c@if22: ...`).
pub fn link_with_index(listing: &str, index: u32) -> Option<String> {
    listing.lines().find_map(|line| {
        let (number, rest) = line.split_once(": ")?;
        (number.trim().parse::<u32>().ok()? == index).then(|| rest.split([':', '@']).next().unwrap_or_default().trim().to_owned())
    })
}

impl KindEnvironment {
    pub fn start(cluster: KindCluster, runtime: &std::sync::Arc<tokio::runtime::Runtime>, timeouts: &KindTimeouts) -> Result<Self> {
        let subnet = docker_network_subnet(KIND_NETWORK, timeouts)?;
        let echo = super::external::ProbeContainer::start(runtime, KIND_NETWORK, "external", &cluster.name)?;
        let echo_address = std::net::SocketAddr::new(echo.address, super::external::ECHO_PORT);
        let external_iperf3 = match cluster.addons.performance_tools {
            true => Some(super::external::Iperf3Beside::serve(
                &echo.id(),
                crate::tools::IPERF3_PORT,
                &cluster.name,
                timeouts.load_image,
                "KindTimeouts::load_image",
            )?),
            false => None,
        };
        Ok(Self {
            cluster,
            echo: std::sync::Mutex::new(Some(echo)),
            echo_address,
            egress_pool: egress_pool(subnet),
            timeouts: timeouts.clone(),
            failed_nodes: Default::default(),
            placed_ips: Default::default(),
            prepared: Default::default(),
            static_probe: static_probe(),
            probe_on: Default::default(),
            external_iperf3: std::sync::Mutex::new(external_iperf3),
            node_iperf3: Default::default(),
        })
    }

    /// The environment of `cluster` with no external echo of its own (the stand-in tests
    /// drive node failures and egress IPs through it).
    pub fn without_echo(cluster: KindCluster, egress_pool: Vec<std::net::IpAddr>, timeouts: &KindTimeouts) -> Self {
        Self {
            cluster,
            echo: std::sync::Mutex::new(None),
            echo_address: std::net::SocketAddr::from(([0, 0, 0, 0], super::external::ECHO_PORT)),
            egress_pool,
            timeouts: timeouts.clone(),
            failed_nodes: Default::default(),
            placed_ips: Default::default(),
            prepared: Default::default(),
            static_probe: static_probe(),
            probe_on: Default::default(),
            external_iperf3: Default::default(),
            node_iperf3: Default::default(),
        }
    }

    /// Brings a kept or shared cluster back to the CNI it was installed with when its state
    /// says it runs another ([`RunningCni`]: an upgrade trial's process was killed before
    /// its rollback): the upgrade plan from what runs to the installed profile. Waits for
    /// every trial on the cluster to end first (a live trial's upgrade is no leftover).
    pub fn restore_installed_cni(&self) -> Result<()> {
        let _alone = runs::trial_lock(&self.cluster.name, true);
        let Some(record) = RunningCni::read(&self.cluster.files.dir)? else { return Ok(()) };
        let Some((installed, from)) = record.restoration() else { return Ok(()) };
        let load = |path: &Path| crate::cni::load_profile(&path.display().to_string());
        let (installed, from) = (load(installed)?, load(from)?);
        tracing::warn!(
            "kind cluster {} runs {} {}, not the {} {} it was installed with: restoring it",
            self.cluster.name,
            from.name,
            from.version,
            installed.name,
            installed.version
        );
        for step in upgrade_plan(&self.cluster.name, &installed, &from, &installed, &self.cluster.files, &self.timeouts, self.cluster.addons)?.all_steps() {
            cli::run(&step)?;
        }
        RunningCni { installed: installed.source.clone(), running: installed.source, replacing_to: None }.write(&self.cluster.files.dir)
    }

    fn docker(&self, purpose: String, args: &[&str]) -> Result<()> {
        self.docker_output(purpose, args).map(drop)
    }

    fn docker_output(&self, purpose: String, args: &[&str]) -> Result<String> {
        cli::run(&CliStep::new(purpose, "docker", args.iter().copied(), self.timeouts.load_image))
    }

    /// Where `node`'s uplink is on the host (see [`Uplink`]).
    fn uplink_of(&self, node: &crate::model::Node) -> Result<Uplink> {
        let index = self.docker_output(
            format!("reading which host link is the peer of eth0 on node {}", node.name),
            &["exec", &node.name, "cat", "/sys/class/net/eth0/iflink"],
        )?;
        let index: u32 = index.trim().parse().map_err(|_| HarnessError::NotFound {
            what: format!("peer index of eth0 on node {}", node.name),
            wanted: format!("a number in /sys/class/net/eth0/iflink, not {index:?}"),
        })?;
        let image = self
            .docker_output(format!("reading the image of node {}", node.name), &["inspect", "--format", "{{.Config.Image}}", &node.name])?
            .trim()
            .to_owned();
        let listing = self.on_the_host(format!("listing the host's links to find the uplink of node {}", node.name), &image, &["-o", "link", "show"])?;
        let host_link = link_with_index(&listing, index).ok_or_else(|| HarnessError::NotFound {
            what: format!("uplink of node {}", node.name),
            wanted: format!("a host link with index {index} (the peer of the node's eth0)"),
        })?;
        Ok(Uplink { host_link, helper_image: image })
    }

    /// Runs `ip args` in the host's network namespace, in a throwaway container of the node
    /// image (the harness need not be root on the Docker host; Docker Desktop's host is its VM).
    fn on_the_host(&self, purpose: String, image: &str, ip_args: &[&str]) -> Result<String> {
        let label = format!("{}={}", super::external::CLUSTER_LABEL, self.cluster.name);
        let mut args = vec!["run", "--rm", "--label", &label, "--network", "host", "--cap-add", "NET_ADMIN", "--entrypoint", "ip", image];
        args.extend_from_slice(ip_args);
        self.docker_output(purpose, &args)
    }

    fn set_uplink(&self, node: &crate::model::Node, uplink: &Uplink, state: &str) -> Result<()> {
        let purpose = format!("setting the uplink {} of node {} {state}", uplink.host_link, node.name);
        self.on_the_host(purpose, &uplink.helper_image, &["link", "set", "dev", &uplink.host_link, state]).map(drop)
    }

    /// The same environment, taking the static probe for node talkers from `path`.
    pub fn with_static_probe(self, path: PathBuf) -> Self {
        Self { static_probe: path, ..self }
    }

    /// iperf3 on a node's own network: a server (`-s`) in a container beside the node's,
    /// started once per node (as `iperf3 -s -D` would leave one running); a client in a
    /// container of its own beside it, for the one run.
    fn iperf3_on_node(&self, node: &crate::model::Node, args: &[&str]) -> Result<crate::model::ExecOutput> {
        if !self.cluster.addons.performance_tools {
            return Err(HarnessError::NotFound {
                what: format!("iperf3 on node {}", node.name),
                wanted: "the iperf3 image (the cluster was provisioned without performance tools)".into(),
            });
        }
        if !args.contains(&"-s") {
            return super::external::Iperf3Beside::run_once(&node.name, &self.cluster.name, args);
        }
        let port = args.iter().position(|a| *a == "-p").and_then(|i| args.get(i + 1)).and_then(|p| p.parse().ok()).unwrap_or(crate::tools::IPERF3_PORT);
        let mut serving = self.node_iperf3.lock().unwrap_or_else(|e| e.into_inner());
        if !serving.contains_key(&node.name) {
            let server = super::external::Iperf3Beside::serve(&node.name, port, &self.cluster.name, self.timeouts.load_image, "KindTimeouts::load_image")?;
            serving.insert(node.name.clone(), server);
        }
        Ok(crate::model::ExecOutput {
            stdout: format!("iperf3 serving on port {port} beside node {}\n", node.name),
            stderr: String::new(),
            exit: "exit status 0".into(),
        })
    }

    /// Where the static probe is on `node`, copied there the first time.
    fn probe_on_node(&self, node: &crate::model::Node) -> Result<String> {
        let mut copied = self.probe_on.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(there) = copied.get(&node.name) {
            return Ok(there.clone());
        }
        if !self.static_probe.is_file() {
            return Err(HarnessError::NotFound {
                what: "static probe for node talkers".into(),
                wanted: format!("at {} (`cargo xtask image` builds it)", self.static_probe.display()),
            });
        }
        use super::kubernetes::Environment;
        let there = self.put_file_on_node(node, &self.static_probe)?;
        copied.insert(node.name.clone(), there.clone());
        Ok(there)
    }
}

/// Where `cargo xtask image` leaves the static probe it puts in the probe image.
pub fn static_probe() -> PathBuf {
    crate::workspace_root().join(STATIC_PROBE)
}

/// [`static_probe`], from the workspace root.
pub const STATIC_PROBE: &str = "target/probe-image/context/cni-probe/cni-probe";

impl super::kubernetes::Environment for KindEnvironment {
    /// The first of the cluster's egress addresses no process on it holds: processes of one
    /// nextest run share the cluster, and Antrea refuses an `ExternalIPPool` overlapping
    /// another (antrea `pkg/apiserver/handlers/webhook` `validate.go`), while on Cilium one
    /// process's teardown would remove an IP another still uses.
    fn allocate_egress_ip(&self) -> Result<std::net::IpAddr> {
        let candidates: Vec<String> = self.egress_pool.iter().map(ToString::to_string).collect();
        let taken = runs::take_from_pool(&self.cluster.name, EGRESS_IPS, &candidates).map_err(|e| HarnessError::Command {
            command: format!("taking an egress IP in {}", runs::state_dir(&self.cluster.name).display()),
            detail: e.to_string(),
        })?;
        let ip = taken.ok_or_else(|| HarnessError::NotFound {
            what: "free egress IP".into(),
            wanted: format!(
                "in the {} addresses kept for egress on Docker network {KIND_NETWORK} (every one is held by a process on cluster {})",
                self.egress_pool.len(),
                self.cluster.name
            ),
        })?;
        Ok(ip.parse().expect("the pool holds IP addresses"))
    }

    fn place_egress_ip(&self, node: &crate::model::Node, ip: std::net::IpAddr) -> Result<()> {
        // kind node containers are named after their nodes; `replace` is idempotent.
        self.docker(
            format!("putting egress IP {ip} on node {}", node.name),
            &["exec", &node.name, "ip", "addr", "replace", &format!("{ip}/32"), "dev", "eth0"],
        )?;
        self.placed_ips.lock().unwrap_or_else(|e| e.into_inner()).push((node.name.clone(), ip));
        Ok(())
    }

    fn external_echo(&self) -> std::net::SocketAddr {
        self.echo_address
    }

    fn probe_image(&self) -> String {
        PROBE_IMAGE.to_owned()
    }

    fn iperf3_image(&self) -> Option<String> {
        self.cluster.addons.performance_tools.then(|| IPERF3_IMAGE.to_owned())
    }

    /// The external host is the echo's container: iperf3 runs in the one beside it, other
    /// tools in a helper container sharing its network ([`super::external::run_in_network_of`]).
    fn run_outside(&self, program: &str, args: &[&str]) -> Result<crate::model::ExecOutput> {
        let beside = self.external_iperf3.lock().unwrap_or_else(|e| e.into_inner());
        match (program, beside.as_ref()) {
            ("iperf3", Some(iperf3)) => iperf3.exec(args),
            ("iperf3", None) => Err(HarnessError::NotFound {
                what: "iperf3 on the external host".into(),
                wanted: "beside the external echo (the cluster was provisioned without performance tools)".into(),
            }),
            // Network tools (a bundle's addresses and conntrack, a path trace's capture):
            // the helper image's, in the echo container's network.
            (other, _) => {
                let echo = self.echo.lock().unwrap_or_else(|e| e.into_inner());
                let echo = echo.as_ref().ok_or_else(|| HarnessError::NotFound {
                    what: format!("`{other}` on the external host"),
                    wanted: "the external echo's container (gone: the cluster is being torn down)".into(),
                })?;
                super::external::run_in_network_of(&echo.id(), other, args)
            }
        }
    }

    /// Cuts the node's uplink at once (no graceful shutdown: its agents get no chance to
    /// hand anything over), as a failed node or link would; see [`Uplink`].
    fn fail_node(&self, node: &crate::model::Node) -> Result<()> {
        let uplink = self.uplink_of(node)?;
        self.set_uplink(node, &uplink, "down")?;
        self.failed_nodes.lock().unwrap_or_else(|e| e.into_inner()).push((node.clone(), uplink));
        Ok(())
    }

    /// Runs in the node's container with `docker exec`. The probe (a node talker) is the
    /// static build `cargo xtask image` made for the probe image, copied onto the node.
    fn describe_pods(&self, namespace: &str) -> Option<Result<String>> {
        let kubeconfig = self.cluster.files.kubeconfig.display().to_string();
        Some(cli::run(&super::kubernetes::describe_pods_step(namespace, &["--kubeconfig", &kubeconfig])))
    }

    /// The plan's steps in order; the trial replacing the CNI gets their budgets on top of
    /// its own (`Timeouts::trial` fits a scenario, not a rolling upgrade node by node, let
    /// alone the two or three of a scenario that also rolls back).
    /// The cluster's state says what it runs throughout ([`RunningCni`]), so a replacement
    /// cut short by a killed process is undone by the next one (or by teardown).
    /// What the switch to `with` needs done first ([`UpgradePlan::preparation`]), run now;
    /// the replacement that follows skips it.
    fn prepare_cni_replacement(&self, initial: &CniProfile, running: &CniProfile, with: &CniProfile) -> Result<()> {
        let plan = upgrade_plan(&self.cluster.name, initial, running, with, &self.cluster.files, &self.timeouts, self.cluster.addons)?;
        crate::deadline::extend(planned_budget(&plan.preparation));
        for step in &plan.preparation {
            cli::run(step)?;
        }
        *self.prepared.lock().unwrap_or_else(|e| e.into_inner()) = Some(with.source.clone());
        Ok(())
    }

    fn replace_cni(&self, initial: &CniProfile, running: &CniProfile, with: &CniProfile) -> Result<()> {
        let plan = upgrade_plan(&self.cluster.name, initial, running, with, &self.cluster.files, &self.timeouts, self.cluster.addons)?;
        let prepared = self.prepared.lock().unwrap_or_else(|e| e.into_inner()).take().is_some_and(|source| source == with.source);
        let steps = if prepared { plan.switch } else { plan.all_steps() };
        let record = |running: &CniProfile, replacing_to: Option<&CniProfile>| RunningCni {
            installed: initial.source.clone(),
            running: running.source.clone(),
            replacing_to: replacing_to.map(|p| p.source.clone()),
        };
        record(running, Some(with)).write(&self.cluster.files.dir)?;
        crate::deadline::extend(planned_budget(&steps));
        for step in steps {
            cli::run(&step)?;
        }
        record(with, None).write(&self.cluster.files.dir)
    }

    fn run_on_node(&self, node: &crate::model::Node, program: &str, args: &[&str]) -> Result<crate::model::ExecOutput> {
        let program = match program {
            crate::tools::PROBE => self.probe_on_node(node)?,
            "iperf3" => return self.iperf3_on_node(node, args),
            other => other.to_owned(),
        };
        docker_exec(&node.name, &program, args)
    }

    /// Streams the file into the node's container (`docker exec -i ... cat`), executable,
    /// under [`NODE_FILES`].
    fn put_file_on_node(&self, node: &crate::model::Node, path: &Path) -> Result<String> {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let there = format!("{NODE_FILES}/{name}");
        let write = format!("mkdir -p {NODE_FILES} && cat > \"$1\" && chmod 0755 \"$1\"");
        let step = CliStep::new(
            format!("copying {} to {there} on node {}", path.display(), node.name),
            "docker",
            ["exec", "-i", &node.name, "sh", "-c", &write, "sh", &there],
            self.timeouts.load_image,
        );
        cli::run(&step.with_stdin_from(path))?;
        Ok(there)
    }

    /// In the pod's network namespace on its node container: the pod's sandbox found with
    /// `crictl` (by name and namespace, ready), its network namespace read from the sandbox's
    /// runtime spec, and `program` run there with `nsenter` ([`POD_NETWORK_SCRIPT`]).
    fn run_in_pod_network(&self, pod: &crate::model::Pod, program: &str, args: &[&str]) -> Result<crate::model::ExecOutput> {
        let mut script: Vec<&str> = vec!["-c", POD_NETWORK_SCRIPT, "sh", &pod.name, &pod.namespace, program];
        script.extend_from_slice(args);
        docker_exec(&pod.node, "sh", &script)
    }

    /// The node container's network, from a helper container sharing it: kind's node image
    /// has no tcpdump (nor base64 in every release, nor anything that lists tcx programs).
    fn run_in_node_network(&self, node: &crate::model::Node, program: &str, args: &[&str]) -> Result<crate::model::ExecOutput> {
        super::external::run_in_network_of(&node.name, program, args)
    }

    /// Puts the node's uplink back up, so the node is exactly as it was.
    fn restore_node(&self, node: &crate::model::Node) -> Result<()> {
        let mut failed = self.failed_nodes.lock().unwrap_or_else(|e| e.into_inner());
        let Some(index) = failed.iter().position(|(n, _)| n.name == node.name) else { return Ok(()) };
        self.set_uplink(node, &failed[index].1, "up")?;
        failed.remove(index);
        Ok(())
    }

    fn run_probe_outside(&self, args: &[String]) -> Result<crate::model::ExecOutput> {
        let echo = self.echo.lock().unwrap_or_else(|e| e.into_inner());
        let echo = echo.as_ref().ok_or_else(|| HarnessError::NotReady { what: "the external echo container".into(), detail: "already removed".into() })?;
        echo.exec(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// A kept cluster is left as it was found: failed nodes reconnected, egress IPs the
    /// run placed removed. A disposable one is simply deleted.
    fn teardown(&self) -> Result<()> {
        let mut problems = Vec::new();
        let beside_external = self.external_iperf3.lock().unwrap_or_else(|e| e.into_inner()).take();
        let beside_nodes = std::mem::take(&mut *self.node_iperf3.lock().unwrap_or_else(|e| e.into_inner()));
        problems.extend(beside_external.into_iter().chain(beside_nodes.into_values()).filter_map(|iperf3| iperf3.remove().err()));
        drop(self.echo.lock().unwrap_or_else(|e| e.into_inner()).take());
        if self.cluster.outlives_process() {
            let failed: Vec<crate::model::Node> = self.failed_nodes.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|(node, _)| node.clone()).collect();
            problems.extend(failed.iter().filter_map(|node| self.restore_node(node).err()));
            for (node, ip) in self.placed_ips.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
                let removed =
                    self.docker(format!("removing egress IP {ip} from node {node}"), &["exec", &node, "ip", "addr", "del", &format!("{ip}/32"), "dev", "eth0"]);
                problems.extend(removed.err());
            }
            // A rollback this process lost (its trial's mend ran out) is not left to the next.
            problems.extend(self.restore_installed_cni().err());
        }
        // After the run's objects are gone (the cluster tore them down first).
        problems.extend(
            runs::give_back(&self.cluster.name, EGRESS_IPS)
                .err()
                .map(|e| HarnessError::Command { command: format!("giving back the egress IPs of process {}", std::process::id()), detail: e.to_string() }),
        );
        problems.extend(self.cluster.delete().err());
        match problems.is_empty() {
            true => Ok(()),
            false => Err(HarnessError::Command {
                command: format!("leaving kind cluster {} as it was found", self.cluster.name),
                detail: problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
            }),
        }
    }
}

/// What a kind run is made of: the CNI and its Gateway under test; kind, the Gateway API
/// CRDs and MetalLB beneath them.
pub fn kind_components(cni: &CniProfile, addons: Addons) -> Vec<super::components::Component> {
    use super::components::{cluster_parts, installation_origin, Component, Role};
    let infrastructure = |name: &str, version: &str, origin: &str| Component {
        role: Role::Infrastructure,
        name: name.into(),
        version: version.into(),
        origin: origin.into(),
        provides: vec![],
    };
    let mut cni = cni.clone();
    if !addons.gateway_api {
        cni.gateway = None;
    }
    let mut parts = cluster_parts(&cni, &cni.version, &installation_origin(&cni));
    parts.push(infrastructure("kind", "as installed", "disposable cluster from fixtures/cluster/kind.yaml"));
    parts.push(match &cni.kind_node_image {
        Some(image) => infrastructure(
            "kind node image",
            image.split('@').next().unwrap_or(image).rsplit(':').next().unwrap_or(image),
            &format!("{image}, pinned by {}", cni.source.display()),
        ),
        None => infrastructure("kind node image", "kind's default", "not pinned by the profile: whatever the installed kind release defaults to"),
    });
    if addons.gateway_api {
        parts.push(infrastructure("Gateway API CRDs", GATEWAY_API_VERSION, "standard-install.yaml"));
    }
    if addons.load_balancer {
        parts.push(infrastructure("MetalLB", METALLB_VERSION, "metallb-native.yaml, an L2 pool on kind's network"));
    }
    if addons.performance_tools {
        parts.push(infrastructure(
            "iperf3",
            IPERF3_IMAGE,
            "Debian's iperf3 in the project's image (`cargo xtask image`): beside every pod, on nodes' and the external host's networks",
        ));
    }
    parts
}

/// Builds a kind cluster with `cni` and connects to it.
pub fn provision(cni: &CniProfile, options: &KindOptions, features: &[crate::cni::Feature]) -> Result<super::kubernetes::KubeCluster> {
    let started = std::time::Instant::now();
    let addons = Addons::for_features(features);
    let cluster = KindCluster::create(cni, options, addons)?;
    let kubeconfig = cluster.files.kubeconfig.clone();
    let name = cluster.name.clone();
    let runtime = std::sync::Arc::new(
        tokio::runtime::Runtime::new().map_err(|e| HarnessError::Command { command: "starting a tokio runtime".into(), detail: e.to_string() })?,
    );
    // A kept or shared cluster runs what it was installed with before this process uses it.
    let environment = match KindEnvironment::start(cluster, &runtime, &options.timeouts).and_then(|e| e.restore_installed_cni().map(|()| e)) {
        Ok(environment) => environment,
        Err(e) => {
            let _ = cli::run(&KindPlan::new(&name, cni, &RunFiles::in_dir(&runs::state_dir(&name)), &options.timeouts, addons, &[]).delete);
            runs::release(&name);
            return Err(e);
        }
    };
    let access = match crate::kube_access::KubeAccess::connect(runtime, std::slice::from_ref(&kubeconfig), None) {
        Ok(access) => access,
        Err(e) => {
            let _ = super::kubernetes::Environment::teardown(&environment);
            return Err(e);
        }
    };
    let info = super::ClusterInfo {
        provider: "kind".into(),
        cluster: name,
        run_id: runs::new_run_id(),
        cni: cni.name.clone(),
        cni_version: cni.version.clone(),
        cni_version_source: "pinned by the profile and installed by the run".into(),
        kernel: String::new(),
        ready_in: started.elapsed(),
        purpose: cni.purpose(),
        components: kind_components(cni, addons),
    };
    super::kubernetes::KubeCluster::new(info, access, cni.clone(), Box::new(environment), Default::default())
}
