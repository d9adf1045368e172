//! Fixtures: real YAML a person could `kubectl apply` or `kind create`, read into neutral objects.
//!
//! Every error names the file, the object and the field, and says what was expected.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{HarnessError, Result};
use crate::model::{EgressPolicy, HttpRoute, LabelSelector, Labels, NodeRole, WeightedBackend};
use crate::verdict::weights::SplitCriteria;

/// Where fixtures are looked up, first to last: `CNICONF_FIXTURES` alone when it is set;
/// else the project's own `fixtures/` ([`crate::project_root`], a vendor's crate), then
/// the ones this repository ships (the same directory when the project is this one).
pub fn fixture_dirs() -> Vec<PathBuf> {
    if let Some(dir) = std::env::var_os("CNICONF_FIXTURES") {
        return vec![PathBuf::from(dir)];
    }
    let (project, shipped) = (crate::project_root().join("fixtures"), crate::workspace_root().join("fixtures"));
    if project == shipped {
        vec![shipped]
    } else {
        vec![project, shipped]
    }
}

/// The first fixtures directory ([`fixture_dirs`]): the project's own.
pub fn fixtures_dir() -> PathBuf {
    fixture_dirs().swap_remove(0)
}

/// `relative` in the first of [`fixture_dirs`] that has it (a vendor's budgets or routes
/// over the shipped ones), else where the first would have it (so an error names the
/// project's own path).
pub fn fixture_path(relative: &str) -> PathBuf {
    let dirs = fixture_dirs();
    dirs.iter().map(|dir| dir.join(relative)).find(|path| path.exists()).unwrap_or_else(|| dirs[0].join(relative))
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| HarnessError::FixtureUnreadable { path: path.to_owned(), source })
}

fn malformed(path: &Path, detail: impl Into<String>) -> HarnessError {
    HarnessError::FixtureMalformed { path: path.to_owned(), detail: detail.into() }
}

fn yaml_options() -> serde_saphyr::Options {
    // YAML 1.1 booleans (`y`, `on`) stay strings: a label value `y` must not become `true`.
    serde_saphyr::options! { strict_booleans: true }
}

/// A kind `Cluster` config: the node list the lab copies and the kind provider passes on.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KindClusterConfig {
    pub kind: String,
    pub api_version: String,
    #[serde(default)]
    pub networking: KindNetworking,
    pub nodes: Vec<KindNode>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KindNetworking {
    #[serde(default, rename = "disableDefaultCNI")]
    pub disable_default_cni: bool,
    pub pod_subnet: Option<ipnet::Ipv4Net>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct KindNode {
    pub role: NodeRole,
    #[serde(default)]
    pub labels: Labels,
}

impl KindClusterConfig {
    /// Node names as kind gives them: `<cluster>-control-plane`, `<cluster>-worker`, `<cluster>-worker2`, ...
    pub fn node_names(&self, cluster: &str) -> Vec<String> {
        let (mut control_planes, mut workers) = (0, 0);
        self.nodes
            .iter()
            .map(|node| {
                let (base, count) = match node.role {
                    NodeRole::ControlPlane => ("control-plane", &mut control_planes),
                    NodeRole::Worker => ("worker", &mut workers),
                };
                *count += 1;
                match *count {
                    1 => format!("{cluster}-{base}"),
                    n => format!("{cluster}-{base}{n}"),
                }
            })
            .collect()
    }
}

/// Reads a kind cluster config and checks what the harness relies on.
pub fn load_kind_config(path: &Path) -> Result<KindClusterConfig> {
    let text = read(path)?;
    let config: KindClusterConfig = serde_saphyr::from_str_with_options(&text, yaml_options()).map_err(|e| malformed(path, e.to_string()))?;
    if config.kind != "Cluster" || !config.api_version.starts_with("kind.x-k8s.io/") {
        return Err(malformed(
            path,
            format!("expected `kind: Cluster` with `apiVersion: kind.x-k8s.io/v1alpha4`, found kind `{}` apiVersion `{}`", config.kind, config.api_version),
        ));
    }
    if !config.networking.disable_default_cni {
        return Err(malformed(path, "networking.disableDefaultCNI must be true: the CNI under test must be the only one"));
    }
    if !config.nodes.iter().any(|n| n.role == NodeRole::ControlPlane) {
        return Err(malformed(path, "nodes: expected at least one node with role control-plane"));
    }
    Ok(config)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AntreaObject {
    api_version: String,
    kind: String,
    metadata: ObjectMeta,
    #[serde(default)]
    spec: serde_json::Value,
}

#[derive(Debug, Deserialize)]
struct ObjectMeta {
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AntreaEgressSpec {
    applied_to: AppliedTo,
    #[serde(rename = "egressIP")]
    egress_ip: Option<IpAddr>,
    #[serde(rename = "externalIPPool")]
    external_ip_pool: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AppliedTo {
    #[serde(default)]
    namespace_selector: LabelSelector,
    #[serde(default)]
    pod_selector: LabelSelector,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExternalIpPoolSpec {
    #[serde(default)]
    node_selector: LabelSelector,
}

const ANTREA_API_VERSIONS: [&str; 2] = ["crd.antrea.io/v1alpha2", "crd.antrea.io/v1beta1"];

/// Reads an Antrea `Egress` (and the `ExternalIPPool` it names) into a neutral [`EgressPolicy`].
pub fn load_antrea_egress(path: &Path) -> Result<EgressPolicy> {
    let text = read(path)?;
    let objects: Vec<AntreaObject> = serde_saphyr::from_multiple_with_options(&text, yaml_options()).map_err(|e| malformed(path, e.to_string()))?;
    for object in &objects {
        if !ANTREA_API_VERSIONS.contains(&object.api_version.as_str()) {
            return Err(malformed(
                path,
                format!("{} `{}`: apiVersion `{}` is not one of {}", object.kind, object.metadata.name, object.api_version, ANTREA_API_VERSIONS.join(", ")),
            ));
        }
    }
    let mut egresses = objects.iter().filter(|o| o.kind == "Egress");
    let egress = egresses.next().ok_or_else(|| malformed(path, "expected one object of kind Egress, found none"))?;
    if let Some(extra) = egresses.next() {
        return Err(malformed(path, format!("expected one Egress, found a second one: `{}`", extra.metadata.name)));
    }
    let object_path = |field: &str| format!("Egress `{}` field {field}", egress.metadata.name);
    let spec: AntreaEgressSpec = serde_json::from_value(egress.spec.clone()).map_err(|e| malformed(path, format!("{}: {e}", object_path("spec"))))?;
    let pool_name = spec.external_ip_pool.ok_or_else(|| {
        malformed(path, format!("{}: expected the name of an ExternalIPPool that says which nodes may carry the egress IP", object_path("spec.externalIPPool")))
    })?;
    let pool = objects
        .iter()
        .find(|o| o.kind == "ExternalIPPool" && o.metadata.name == pool_name)
        .ok_or_else(|| malformed(path, format!("{} names ExternalIPPool `{pool_name}`, which is not in this file", object_path("spec.externalIPPool"))))?;
    let pool_spec: ExternalIpPoolSpec =
        serde_json::from_value(pool.spec.clone()).map_err(|e| malformed(path, format!("ExternalIPPool `{pool_name}` field spec: {e}")))?;
    let egress_ip = spec.egress_ip.ok_or_else(|| malformed(path, format!("{}: expected an IPv4 address", object_path("spec.egressIP"))))?;
    Ok(EgressPolicy {
        name: egress.metadata.name.clone(),
        namespace_selector: spec.applied_to.namespace_selector,
        pod_selector: spec.applied_to.pod_selector,
        egress_ip,
        gateway_node_selector: pool_spec.node_selector,
        excluded_cidrs: Vec::new(),
    })
}

/// Budgets of the egress scenarios (`budgets/egress.yaml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EgressBudgets {
    pub failover_seconds: f64,
}

pub fn load_egress_budgets(path: &Path) -> Result<EgressBudgets> {
    let text = read(path)?;
    let budgets: EgressBudgets = serde_saphyr::from_str_with_options(&text, yaml_options()).map_err(|e| malformed(path, e.to_string()))?;
    if budgets.failover_seconds.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
        return Err(malformed(path, format!("failoverSeconds: expected a positive number of seconds, found {}", budgets.failover_seconds)));
    }
    Ok(budgets)
}

/// Budgets of the upgrade scenarios (`budgets/upgrade.yaml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpgradeBudgets {
    pub longest_gap_seconds: f64,
    /// The smallest slow-down of a performance figure worth failing an upgrade for, as a
    /// share (0.25: 25 % worse), and the chance that an upgrade to an equally fast version
    /// fails on any figure: the regression test's δ and alpha.
    pub smallest_regression: f64,
    pub regression_alpha: f64,
}

impl UpgradeBudgets {
    pub fn longest_gap(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.longest_gap_seconds)
    }

    pub fn regression_criteria(&self) -> crate::verdict::regression::RegressionCriteria {
        crate::verdict::regression::RegressionCriteria { smallest_regression: self.smallest_regression, alpha: self.regression_alpha }
    }
}

pub fn load_upgrade_budgets(path: &Path) -> Result<UpgradeBudgets> {
    let text = read(path)?;
    let budgets: UpgradeBudgets = serde_saphyr::from_str_with_options(&text, yaml_options()).map_err(|e| malformed(path, e.to_string()))?;
    if budgets.longest_gap_seconds.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
        return Err(malformed(path, format!("longestGapSeconds: expected a positive number of seconds, found {}", budgets.longest_gap_seconds)));
    }
    if !(budgets.smallest_regression > 0.0 && budgets.smallest_regression < 1.0) {
        return Err(malformed(path, format!("smallestRegression: expected a share between 0 and 1 (0.25: 25 % worse), found {}", budgets.smallest_regression)));
    }
    if !(budgets.regression_alpha > 0.0 && budgets.regression_alpha < 0.5) {
        return Err(malformed(path, format!("regressionAlpha: expected a probability between 0 and 0.5, found {}", budgets.regression_alpha)));
    }
    Ok(budgets)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HttpRouteObject {
    api_version: String,
    kind: String,
    metadata: ObjectMeta,
    spec: HttpRouteSpec,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HttpRouteSpec {
    rules: Vec<RouteRule>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RouteRule {
    #[serde(default)]
    matches: Vec<RouteMatch>,
    #[serde(default)]
    filters: Vec<RouteFilter>,
    backend_refs: Vec<RouteBackend>,
}

#[derive(Debug, Deserialize)]
struct RouteMatch {
    path: RoutePath,
}

#[derive(Debug, Deserialize)]
struct RoutePath {
    #[serde(rename = "type")]
    match_type: String,
    value: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RouteFilter {
    #[serde(rename = "type")]
    filter_type: String,
    request_mirror: Option<RequestMirror>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestMirror {
    backend_ref: RouteBackend,
}

#[derive(Debug, Deserialize)]
struct RouteBackend {
    #[serde(default = "service_kind")]
    kind: String,
    name: String,
    port: u16,
    #[serde(default = "one")]
    weight: u32,
}

fn service_kind() -> String {
    "Service".into()
}

fn one() -> u32 {
    1
}

/// Reads a Gateway API `HTTPRoute` with one rule (one PathPrefix match, weighted Service
/// backends, optionally a RequestMirror filter) into a neutral [`HttpRoute`].
pub fn load_http_route(path: &Path) -> Result<HttpRoute> {
    let text = read(path)?;
    let route: HttpRouteObject = serde_saphyr::from_str_with_options(&text, yaml_options()).map_err(|e| malformed(path, e.to_string()))?;
    if route.kind != "HTTPRoute" || !route.api_version.starts_with("gateway.networking.k8s.io/") {
        return Err(malformed(path, format!("expected kind HTTPRoute of gateway.networking.k8s.io, found {} {}", route.api_version, route.kind)));
    }
    let name = route.metadata.name;
    let field = |f: &str| format!("HTTPRoute `{name}` field {f}");
    let [rule] = <[RouteRule; 1]>::try_from(route.spec.rules)
        .map_err(|rules| malformed(path, format!("{}: expected exactly one rule, found {}", field("spec.rules"), rules.len())))?;
    let path_prefix = match rule.matches.as_slice() {
        [RouteMatch { path }] if path.match_type == "PathPrefix" => path.value.clone(),
        _ => return Err(malformed(path, format!("{}: expected one match of type PathPrefix", field("spec.rules[0].matches")))),
    };
    let service = |backend: &RouteBackend, at: &str| {
        if backend.kind != "Service" {
            return Err(malformed(path, format!("{}: kind {} is not supported, expected Service", field(at), backend.kind)));
        }
        Ok(WeightedBackend { service: backend.name.clone(), port: backend.port, weight: backend.weight })
    };
    let backends = rule.backend_refs.iter().enumerate().map(|(i, b)| service(b, &format!("spec.rules[0].backendRefs[{i}]"))).collect::<Result<Vec<_>>>()?;
    if backends.is_empty() {
        return Err(malformed(path, format!("{}: expected at least one backend", field("spec.rules[0].backendRefs"))));
    }
    let mut mirror_to = None;
    for (i, filter) in rule.filters.iter().enumerate() {
        match (filter.filter_type.as_str(), &filter.request_mirror) {
            ("RequestMirror", Some(mirror)) => {
                let target = service(&mirror.backend_ref, &format!("spec.rules[0].filters[{i}].requestMirror.backendRef"))?;
                mirror_to = Some((target.service, target.port));
            }
            (other, _) => {
                return Err(malformed(
                    path,
                    format!("{}: filter type {other} is not supported (RequestMirror is)", field(&format!("spec.rules[0].filters[{i}]"))),
                ))
            }
        }
    }
    Ok(HttpRoute { name, path_prefix, backends, mirror_to, generation: 0 })
}

/// Budgets of the canary scenarios (`budgets/canary.yaml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CanaryBudgets {
    pub converge_seconds: f64,
    pub split: SplitCriteriaFixture,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SplitCriteriaFixture {
    pub tolerance: f64,
    /// A share must also be within this fraction of its weight where that is tighter
    /// (default 0.5: a 5 % canary within 2.5 points).
    #[serde(default = "default_relative_tolerance")]
    pub relative_tolerance: f64,
    pub power: f64,
    /// The chance that a correct implementation fails any split verdict of a suite run.
    pub suite_false_fail: f64,
    /// The smallest leak caught at the 0 % and 100 % stages (default 1 %).
    #[serde(default = "default_leak")]
    pub leak: f64,
}

fn default_leak() -> f64 {
    0.01
}

fn default_relative_tolerance() -> f64 {
    0.5
}

impl CanaryBudgets {
    pub fn criteria(&self) -> SplitCriteria {
        let verdicts = crate::verdict::weights::SPLIT_VERDICTS;
        SplitCriteria {
            tolerance: self.split.tolerance,
            relative_tolerance: self.split.relative_tolerance,
            power: self.split.power,
            false_fail: self.split.suite_false_fail / f64::from(verdicts),
            leak: self.split.leak,
            family: Some(crate::verdict::weights::Family { false_fail: self.split.suite_false_fail, verdicts }),
        }
    }
}

pub fn load_canary_budgets(path: &Path) -> Result<CanaryBudgets> {
    let text = read(path)?;
    let budgets: CanaryBudgets = serde_saphyr::from_str_with_options(&text, yaml_options()).map_err(|e| malformed(path, e.to_string()))?;
    let probability = |name: &str, value: f64| {
        if value > 0.0 && value < 1.0 {
            Ok(())
        } else {
            Err(malformed(path, format!("split.{name}: expected a number between 0 and 1, found {value}")))
        }
    };
    probability("tolerance", budgets.split.tolerance)?;
    if !(budgets.split.relative_tolerance > 0.0 && budgets.split.relative_tolerance <= 1.0) {
        return Err(malformed(
            path,
            format!("split.relativeTolerance: expected a fraction of a backend's weight above 0 and at most 1, found {}", budgets.split.relative_tolerance),
        ));
    }
    probability("power", budgets.split.power)?;
    probability("suiteFalseFail", budgets.split.suite_false_fail)?;
    probability("leak", budgets.split.leak)?;
    if budgets.converge_seconds.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
        return Err(malformed(path, format!("convergeSeconds: expected a positive number of seconds, found {}", budgets.converge_seconds)));
    }
    Ok(budgets)
}

/// Budgets of the performance scenarios (`budgets/performance.yaml`): how each figure is
/// measured and judged, how much load a sample is, and the budgets themselves.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PerformanceBudgets {
    pub measure: crate::verdict::performance::SequentialPlan,
    pub load: PerformanceLoad,
    pub budgets: Vec<PerformanceBudget>,
    #[serde(skip)]
    pub source: PathBuf,
}

/// How much traffic one sample of each figure is.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PerformanceLoad {
    /// Bytes one iperf3 throughput sample sends (`iperf3 -n`).
    pub iperf3_bytes: u64,
    /// Requests over one kept-alive connection per request/response latency sample.
    pub request_response_transactions: u64,
    /// Requests per HTTP sample, at each concurrency.
    pub http_requests: u64,
    /// The paper's 400 concurrent clients, scaled to the machine.
    pub high_concurrency: u64,
    /// Pods started together, per start-up figure.
    pub startup_pods: Vec<usize>,
    /// Datagrams of the known flow whose rules are counted.
    pub rule_count_packets: u64,
}

/// One budget: a figure, its limit on one side, and where it holds.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PerformanceBudget {
    pub figure: String,
    #[serde(default)]
    pub at_least: Option<f64>,
    #[serde(default)]
    pub at_most: Option<f64>,
    /// Absolute budgets hold for one machine class ("2-core x86_64"); relative ones anywhere.
    #[serde(default)]
    pub machine_class: Option<String>,
    /// CNI profiles it applies to (all when absent).
    #[serde(default)]
    pub cni: Option<Vec<String>>,
    /// Providers it applies to (all when absent).
    #[serde(default)]
    pub provider: Option<Vec<String>>,
}

/// The machine class absolute budgets are stated for: `CNICONF_MACHINE_CLASS`, else this
/// machine's "<cores>-core <arch>".
pub fn machine_class() -> String {
    std::env::var("CNICONF_MACHINE_CLASS").ok().filter(|c| !c.is_empty()).unwrap_or_else(|| {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        format!("{cores}-core {}", std::env::consts::ARCH)
    })
}

impl PerformanceBudgets {
    /// The looks of `measure` for a median (checked when the file was loaded).
    pub fn looks(&self) -> Result<crate::verdict::performance::Looks> {
        crate::verdict::performance::Looks::calibrate(0.5, self.measure).map_err(|e| malformed(&self.source, format!("measure: {e}")))
    }

    /// The budget of `figure` for this CNI, provider and machine class: the first entry that
    /// applies. A ratio figure (`a/b`) is relative to its baseline `b`.
    pub fn line_for(&self, figure: &str, cni: &str, provider: &str, machine_class: &str) -> Option<crate::verdict::performance::BudgetLine> {
        use crate::verdict::performance::{Better, BudgetLine};
        let applies = |b: &&PerformanceBudget| {
            b.figure == figure
                && b.cni.as_ref().is_none_or(|c| c.iter().any(|c| c == cni))
                && b.provider.as_ref().is_none_or(|p| p.iter().any(|p| p == provider))
                && b.machine_class.as_ref().is_none_or(|m| m == machine_class)
        };
        let (index, entry) = self.budgets.iter().enumerate().find(|(_, b)| applies(b))?;
        let (limit, better) = match (entry.at_least, entry.at_most) {
            (Some(limit), _) => (limit, Better::Higher),
            (_, Some(limit)) => (limit, Better::Lower),
            _ => unreachable!("validated on load"),
        };
        Some(BudgetLine {
            limit,
            better,
            relative_to: figure.split_once('/').map(|(_, baseline)| baseline.to_owned()),
            machine_class: entry.machine_class.clone(),
            source: format!("{} budgets[{index}]", self.source.display()),
        })
    }
}

/// Loads the performance budgets, checking each entry against every figure the scenarios
/// measure: a budget for an unknown figure, on the wrong side, absolute without a machine
/// class, or a plan that can never decide is an error naming the entry.
pub fn load_performance_budgets(path: &Path) -> Result<PerformanceBudgets> {
    use crate::verdict::performance::Better;
    let text = read(path)?;
    let mut budgets: PerformanceBudgets = serde_saphyr::from_str_with_options(&text, yaml_options()).map_err(|e| malformed(path, e.to_string()))?;
    budgets.source = path.to_owned();
    let figures = crate::verdict::figures::figure_names();
    budgets.looks()?;
    for (i, budget) in budgets.budgets.iter().enumerate() {
        let at = |detail: String| malformed(path, format!("budgets[{i}] (figure `{}`): {detail}", budget.figure));
        let Some((_, better)) = figures.iter().find(|(name, _)| *name == budget.figure) else {
            return Err(at(format!("unknown figure; expected one of {}", figures.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", "))));
        };
        match (budget.at_least, budget.at_most, better) {
            (Some(limit), None, Better::Higher) | (None, Some(limit), Better::Lower) if limit.is_finite() && limit >= 0.0 => {}
            (Some(_), None, Better::Lower) => return Err(at("lower is better for this figure: expected atMost, found atLeast".into())),
            (None, Some(_), Better::Higher) => return Err(at("higher is better for this figure: expected atLeast, found atMost".into())),
            (None, None, _) | (Some(_), Some(_), _) => return Err(at("expected exactly one of atLeast and atMost".into())),
            _ => return Err(at("expected a finite, non-negative limit".into())),
        }
        if !budget.figure.contains('/') && budget.machine_class.is_none() {
            return Err(at("an absolute budget holds for a named machine class: expected machineClass (for example \"2-core x86_64\")".into()));
        }
    }
    if budgets.load.startup_pods.is_empty() || budgets.load.startup_pods.contains(&0) {
        return Err(malformed(path, format!("load.startupPods: expected pod counts of at least 1, found {:?}", budgets.load.startup_pods)));
    }
    Ok(budgets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::labels;

    fn write(contents: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), contents).unwrap();
        file
    }

    #[test]
    fn the_seed_egress_fixture_reads_as_a_neutral_policy() {
        let policy = load_antrea_egress(&fixture_path("egress/prod-web.antrea.yaml")).unwrap();
        assert_eq!(policy.name, "egress-prod-web");
        assert_eq!(policy.namespace_selector.match_labels, labels([("env", "prod")]));
        assert_eq!(policy.pod_selector.match_labels, labels([("role", "web")]));
        assert_eq!(policy.gateway_node_selector.match_labels, labels([("network-role", "egress-gateway")]));
        assert_eq!(policy.egress_ip.to_string(), "10.10.0.8");
    }

    #[test]
    fn the_kind_config_names_nodes_as_kind_does() {
        let config = load_kind_config(&fixture_path("cluster/kind.yaml")).unwrap();
        assert_eq!(config.node_names("c"), ["c-control-plane", "c-worker", "c-worker2"]);
        assert_eq!(config.nodes[2].labels, labels([("network-role", "egress-gateway"), ("egress-pool", "prod")]));
    }

    #[test]
    fn the_failover_fixture_pools_both_workers() {
        let policy = load_antrea_egress(&fixture_path("egress/prod-web-failover.antrea.yaml")).unwrap();
        assert_eq!(policy.gateway_node_selector.match_labels, labels([("egress-pool", "prod")]));
        assert!(load_egress_budgets(&fixture_path("budgets/egress.yaml")).unwrap().failover_seconds > 0.0);
        assert!(load_upgrade_budgets(&fixture_path("budgets/upgrade.yaml")).unwrap().longest_gap_seconds > 0.0);
    }

    #[test]
    fn the_thesis_routes_read_as_neutral_routes() {
        let canary = load_http_route(&fixture_path("canary/current-weather-route.yaml")).unwrap();
        assert_eq!((canary.path_prefix.as_str(), canary.weights(), canary.mirror_to.clone()), ("/getCurrentWeather", vec![95, 5], None));
        let mirror = load_http_route(&fixture_path("canary/weather-mirror-route.yaml")).unwrap();
        assert_eq!(mirror.mirror_to, Some(("traffic-analyzer".into(), 8080)));
        let budgets = load_canary_budgets(&fixture_path("budgets/canary.yaml")).unwrap();
        let family = crate::verdict::weights::Family { false_fail: 0.01, verdicts: 6 };
        assert_eq!(budgets.criteria(), SplitCriteria { false_fail: 0.01 / 6.0, family: Some(family), ..SplitCriteria::default() });
    }

    #[test]
    fn an_unsupported_route_filter_is_named() {
        let file = write("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  rules:\n  - matches: [{path: {type: PathPrefix, value: /}}]\n    filters: [{type: URLRewrite}]\n    backendRefs: [{name: a, port: 80}]\n");
        let error = load_http_route(file.path()).unwrap_err().to_string();
        assert!(error.contains("HTTPRoute `r` field spec.rules[0].filters[0]: filter type URLRewrite is not supported"), "{error}");
    }

    #[test]
    fn a_split_probability_out_of_range_is_named() {
        let file = write("convergeSeconds: 10\nsplit: {tolerance: 5, power: 0.95, suiteFalseFail: 0.01}\n");
        let error = load_canary_budgets(file.path()).unwrap_err().to_string();
        assert!(error.contains("split.tolerance: expected a number between 0 and 1, found 5"), "{error}");
    }

    #[test]
    fn a_negative_budget_is_named() {
        let file = write("failoverSeconds: -1\n");
        let error = load_egress_budgets(file.path()).unwrap_err().to_string();
        assert!(error.contains("failoverSeconds: expected a positive number"), "{error}");
    }

    #[test]
    fn a_missing_pool_is_named() {
        let file = write(
            "apiVersion: crd.antrea.io/v1alpha2\nkind: Egress\nmetadata: {name: e}\nspec:\n  appliedTo: {}\n  egressIP: 10.0.0.1\n  externalIPPool: nowhere\n",
        );
        let error = load_antrea_egress(file.path()).unwrap_err().to_string();
        assert!(error.contains("ExternalIPPool `nowhere`, which is not in this file"), "{error}");
        assert!(error.contains(&file.path().display().to_string()), "{error}");
    }

    #[test]
    fn a_misspelled_field_is_named() {
        let file = write("apiVersion: crd.antrea.io/v1alpha2\nkind: Egress\nmetadata: {name: e}\nspec:\n  appliedTo: {}\n  egresIP: 10.0.0.1\n");
        let error = load_antrea_egress(file.path()).unwrap_err().to_string();
        assert!(error.contains("Egress `e` field spec") && error.contains("egresIP"), "{error}");
    }

    #[test]
    fn a_wrong_api_version_is_named() {
        let file = write("apiVersion: crd.antrea.io/vlalpha2\nkind: Egress\nmetadata: {name: e}\nspec: {}\n");
        let error = load_antrea_egress(file.path()).unwrap_err().to_string();
        assert!(error.contains("apiVersion `crd.antrea.io/vlalpha2`"), "{error}");
    }

    #[test]
    fn broken_yaml_names_the_file() {
        let file = write("kind: Cluster\nnodes: [\n");
        let error = load_kind_config(file.path()).unwrap_err().to_string();
        assert!(error.starts_with("malformed fixture"), "{error}");
        assert!(error.contains(&file.path().display().to_string()), "{error}");
    }

    #[test]
    fn a_kind_config_with_the_default_cni_is_refused() {
        let file = write("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n  - role: control-plane\n");
        let error = load_kind_config(file.path()).unwrap_err().to_string();
        assert!(error.contains("disableDefaultCNI must be true"), "{error}");
    }
}
