//! Performance budgets (the thesis's iperf3 runs, the CNI assessment paper's Table II and
//! III and Fig. 15): each figure is measured again and again and judged on its quantile's
//! interval against a budget of `budgets/performance.yaml` ([`crate::verdict::performance`]).
//! Relative budgets compare a path with a baseline measured in the same run, round by
//! round, so they hold on any machine; absolute ones hold for a named machine class.
//!
//! Every scenario runs alone (as the disruptive ones do): a measurement shares the machine
//! with nothing else the suite does.

use std::time::{Duration, Instant};

use crate::cni::Feature;
use crate::error::{HarnessError, Result};
use crate::fixtures::{self, PerformanceBudgets};
use crate::model::{labels, Node, Pod, POD_PORT};
use crate::scenario::{Scenario, ScenarioContext};
use crate::verdict::performance::{self, Better, Figure, FigureSpec};
use crate::verdict::{budget, Verdict};

pub use crate::tools::IPERF3_PORT;

pub use crate::verdict::figures::*;

fn scenario(name: &'static str, sentence: &'static str, requires: &'static [Feature], body: crate::scenario::ScenarioBody) -> Scenario {
    Scenario { name, sentence, requires, disruptive: true, body }
}

/// Every performance scenario.
pub fn all() -> Vec<Scenario> {
    const TOOLS: &[Feature] = &[Feature::PerformanceTools];
    vec![
        scenario(
            "tcp_throughput_between_pods_on_one_node_is_within_budget",
            "TCP throughput (iperf3) from a pod to a pod on the same node is within its budget.",
            TOOLS,
            tcp_throughput_between_pods_on_one_node,
        ),
        scenario(
            "tcp_throughput_across_nodes_keeps_up_with_the_underlay",
            "TCP throughput from a pod to a pod on another node is at least the stated fraction of node-to-node throughput on the underlay, measured round by round in the same run.",
            TOOLS,
            tcp_throughput_across_nodes_keeps_up_with_the_underlay,
        ),
        scenario(
            "tcp_request_response_latency_between_pods_is_within_budget",
            "TCP request/response latency (p50 and p99 over one kept-alive connection) from a pod to a pod on the same node and on another node is within its budget.",
            TOOLS,
            tcp_request_response_latency_between_pods,
        ),
        scenario(
            "egress_gateway_throughput_keeps_up_with_the_node_masquerade",
            "TCP throughput from a pod to the external host through the egress gateway is at least the stated fraction of a pod's throughput through its own node's masquerade (the thesis's with/without comparison).",
            &[Feature::PerformanceTools, Feature::EgressGateway],
            egress_gateway_throughput_keeps_up_with_the_node_masquerade,
        ),
        scenario(
            "http_rate_across_nodes_scales_with_concurrent_clients",
            "HTTP requests per second from a client pod to a server pod on another node at high concurrency are at least the stated multiple of those at concurrency 1, with latency (mean, p99) within budget at both.",
            TOOLS,
            http_rate_across_nodes_scales_with_concurrent_clients,
        ),
        scenario(
            "pod_network_start_up_time_is_within_budget",
            "A pod's network is ready within its budget when it starts alone; its time when 10 and 50 pods start together on one node is reported (median and p95 against N).",
            TOOLS,
            pod_network_start_up_time,
        ),
        scenario(
            "packets_traverse_no_more_rules_than_budgeted",
            "A known flow on each path (pod to pod on one node, across nodes, pod to the external host) moves the counters of no more iptables rules than its budget (the paper's Table III).",
            TOOLS,
            packets_traverse_no_more_rules_than_budgeted,
        ),
        scenario(
            "cni_processes_stay_within_cpu_and_memory_budgets",
            "The CNI's own processes use no more CPU time per pod, and no more memory, than their budget while pods start and a throughput test runs between them.",
            &[Feature::PerformanceTools, Feature::CniResourceUsage],
            cni_processes_stay_within_cpu_and_memory_budgets,
        ),
    ]
}

fn tcp_throughput_between_pods_on_one_node(cx: &mut ScenarioContext) -> Result<Verdict> {
    let namespace = cx.namespace("perf", labels([]))?;
    let node = cx.a_worker()?;
    let client = cx.pod(&namespace, "client", labels([]), &node)?;
    let server = cx.pod(&namespace, "server", labels([]), &node)?;
    let to_server = cx.iperf3_server_in(&server)?;
    let path = path_between(&client, &server);
    let budgets = cx.performance_budgets()?;
    let figures = cx.measure_rounds(&budgets, &[(SAME_NODE, path.clone())], |cx| Ok(vec![cx.iperf3_from_pod(&client, &to_server, &budgets)?]))?;
    cx.judged(&budgets, "TCP throughput between pods on one node", &path, figures, "the node's pod datapath (bridge, veth) and its CPU")
}

fn tcp_throughput_across_nodes_keeps_up_with_the_underlay(cx: &mut ScenarioContext) -> Result<Verdict> {
    let namespace = cx.namespace("perf", labels([]))?;
    let node = cx.a_worker()?;
    let other = cx.a_node_other_than(&node)?;
    let client = cx.pod(&namespace, "client", labels([]), &node)?;
    let server = cx.pod(&namespace, "server", labels([]), &other)?;
    let to_server = cx.iperf3_server_in(&server)?;
    let to_other_node = cx.iperf3_server_on(&other)?;
    let pods = path_between(&client, &server);
    let nodes = format!("node {} -> node {}", node.name, other.name);
    let budgets = cx.performance_budgets()?;
    let figures = cx.measure_rounds(
        &budgets,
        &[(ACROSS_NODES, pods.clone()), (UNDERLAY, nodes.clone()), (ACROSS_NODES_OVER_UNDERLAY, format!("{pods} over {nodes}"))],
        |cx| {
            let underlay = cx.iperf3_from_node(&node, &to_other_node, &budgets)?;
            let across = cx.iperf3_from_pod(&client, &to_server, &budgets)?;
            Ok(vec![across, underlay, across / underlay])
        },
    )?;
    cx.judged(&budgets, "TCP throughput across nodes against the underlay", &pods, figures, "the CNI's inter-node datapath (overlay or routes) on both nodes")
}

fn tcp_request_response_latency_between_pods(cx: &mut ScenarioContext) -> Result<Verdict> {
    let PodsToTalkTo { client, beside, across } = cx.pods_to_talk_to()?;
    let budgets = cx.performance_budgets()?;
    let (same, far) = (path_between(&client, &beside), path_between(&client, &across));
    let figures = cx.measure_rounds(
        &budgets,
        &[(RR_SAME_NODE_P50, same.clone()), (RR_SAME_NODE_P99, same.clone()), (RR_ACROSS_NODES_P50, far.clone()), (RR_ACROSS_NODES_P99, far)],
        |cx| {
            let transactions = budgets.load.request_response_transactions;
            let near = cx.http_load_from(&client, &beside, transactions, 1)?;
            let far = cx.http_load_from(&client, &across, transactions, 1)?;
            Ok(vec![near.latency_ms.p50 * 1e3, near.latency_ms.p99 * 1e3, far.latency_ms.p50 * 1e3, far.latency_ms.p99 * 1e3])
        },
    )?;
    cx.judged(&budgets, "TCP request/response latency between pods", &same, figures, "the pod datapath's per-packet cost (rules, hooks, encapsulation)")
}

fn egress_gateway_throughput_keeps_up_with_the_node_masquerade(cx: &mut ScenarioContext) -> Result<Verdict> {
    let prod = cx.namespace("prod", labels([("env", "prod")]))?;
    let policy = cx.egress_policy(super::egress::PROD_WEB_EGRESS, &prod)?;
    let node = cx.worker_outside(&policy.gateway_node_selector)?;
    let selected = cx.pod(&prod, "web", labels([("role", "web")]), &node)?;
    let unselected = cx.pod(&prod, "batch", labels([("role", "batch")]), &node)?;
    let realized = cx.realize_egress_policy(&policy)?;
    // The paths first: a pod that does not take the gateway measures the wrong path.
    let through_the_gateway = cx.source_seen_outside_once_programmed(&selected, &cx.the_egress_ip(&policy, &realized))?;
    let own_node = cx.source_seen_outside_once_programmed(&unselected, &cx.its_node_ip(&unselected)?)?;
    if !through_the_gateway.passed || !own_node.passed {
        return Ok(budget::all_of([through_the_gateway, own_node]));
    }
    let outside = cx.iperf3_server_outside()?;
    let budgets = cx.performance_budgets()?;
    let (masquerade, gateway) = (
        format!("pod {} on {} -> external host (node masquerade)", unselected.name, node.name),
        format!("pod {} on {} -> gateway {} -> external host", selected.name, node.name, realized.egress_node),
    );
    let figures = cx.measure_rounds(
        &budgets,
        &[(EGRESS_GATEWAY, gateway.clone()), (MASQUERADE, masquerade.clone()), (GATEWAY_OVER_MASQUERADE, format!("{gateway} over {masquerade}"))],
        |cx| {
            let without = cx.iperf3_from_pod(&unselected, &outside, &budgets)?;
            let with = cx.iperf3_from_pod(&selected, &outside, &budgets)?;
            Ok(vec![with, without, with / without])
        },
    )?;
    let judged = cx.judged(
        &budgets,
        "TCP throughput through the egress gateway against the node masquerade",
        &gateway,
        figures,
        "the egress gateway node's forwarding and SNAT, and the tunnel to it",
    )?;
    Ok(budget::all_of([through_the_gateway, own_node, judged]))
}

fn http_rate_across_nodes_scales_with_concurrent_clients(cx: &mut ScenarioContext) -> Result<Verdict> {
    let namespace = cx.namespace("perf", labels([]))?;
    let node = cx.a_worker()?;
    let other = cx.a_node_other_than(&node)?;
    let client = cx.pod(&namespace, "client", labels([]), &node)?;
    let server = cx.pod(&namespace, "server", labels([]), &other)?;
    let budgets = cx.performance_budgets()?;
    let high = budgets.load.high_concurrency;
    let path = path_between(&client, &server);
    let at = |c: &str| format!("{path}, concurrency {c}");
    let figures = cx.measure_rounds(
        &budgets,
        &[
            (HTTP_RATE_ONE, at("1")),
            (HTTP_RATE_HIGH, at(&high.to_string())),
            (HTTP_RATE_HIGH_OVER_ONE, format!("{path}, concurrency {high} over 1")),
            (HTTP_MEAN_ONE, at("1")),
            (HTTP_P99_ONE, at("1")),
            (HTTP_MEAN_HIGH, at(&high.to_string())),
            (HTTP_P99_HIGH, at(&high.to_string())),
        ],
        |cx| {
            let one = cx.http_load_from(&client, &server, budgets.load.http_requests, 1)?;
            let many = cx.http_load_from(&client, &server, budgets.load.http_requests, high)?;
            Ok(vec![
                one.requests_per_second,
                many.requests_per_second,
                many.requests_per_second / one.requests_per_second,
                one.latency_ms.mean,
                one.latency_ms.p99,
                many.latency_ms.mean,
                many.latency_ms.p99,
            ])
        },
    )?;
    cx.judged(
        &budgets,
        "HTTP requests per second and latency across nodes",
        &path,
        figures,
        "the inter-node datapath under many connections (conntrack, rules, CPU)",
    )
}

fn pod_network_start_up_time(cx: &mut ScenarioContext) -> Result<Verdict> {
    let namespace = cx.namespace("perf", labels([]))?;
    let node = cx.a_worker()?;
    let budgets = cx.performance_budgets()?;
    let alone = format!("one pod at a time on node {}", node.name);
    let mut started = 0;
    let mut figures = cx.measure_rounds(&budgets, &[(STARTUP_ONE, alone.clone())], |cx| {
        started += 1;
        Ok(vec![cx.start_pods_together(&namespace, &format!("alone-{started}"), &node, 1)?[0]])
    })?;
    for &n in budgets.load.startup_pods.iter().filter(|&&n| n > 1) {
        let times = cx.start_pods_together(&namespace, &format!("together{n}"), &node, n)?;
        let path = format!("{n} pods started together on node {}", node.name);
        let name = startup_together(n);
        let looks = budgets.looks()?;
        let spec = |name: String, quantile: f64| FigureSpec { name, unit: "ms".into(), better: Better::Lower, quantile, path: path.clone() };
        figures.push(performance::judge(&spec(name.clone(), 0.5), &times, &looks, None));
        figures.push(performance::judge(&spec(format!("{name}.p95"), 0.95), &times, &looks, None));
    }
    cx.judged(&budgets, "pod network start-up time", &alone, figures, "the CNI's ADD (its plugins, their IPAM and the node's lock around them)")
}

fn packets_traverse_no_more_rules_than_budgeted(cx: &mut ScenarioContext) -> Result<Verdict> {
    let PodsToTalkTo { client, beside, across } = cx.pods_to_talk_to()?;
    let budgets = cx.performance_budgets()?;
    let paths = [
        (RULES_SAME_NODE, path_between(&client, &beside), std::net::SocketAddr::new(beside.address, POD_PORT)),
        (RULES_ACROSS_NODES, path_between(&client, &across), std::net::SocketAddr::new(across.address, POD_PORT)),
        (RULES_TO_EXTERNAL, format!("pod {} on {} -> external host", client.name, client.node), cx.external_listener()?),
    ];
    let mut figures = Vec::new();
    for (kind, path, to) in paths {
        let rules = cx.rules_moved_by_a_known_flow(&client, to, budgets.load.rule_count_packets)?;
        figures.push(performance::exact(&cx.figure_spec(kind, &path), rules.len() as f64, cx.budget_line(&budgets, kind.name).as_ref()));
        tracing::info!("{path}: {} rule(s) moved: {}", rules.len(), rules.join(" | "));
    }
    cx.judged(&budgets, "iptables rules a packet traverses", "three paths", figures, "the nodes' iptables/nftables rules (iptables-save -c)")
}

/// A client pod on a worker, a pod beside it and a pod on another node.
pub struct PodsToTalkTo {
    pub client: Pod,
    pub beside: Pod,
    pub across: Pod,
}

/// "pod a -> pod b on node n", or "pod a on n1 -> pod b on n2" across nodes.
fn path_between(from: &Pod, to: &Pod) -> String {
    match from.node == to.node {
        true => format!("pod {} -> pod {} on node {}", from.name, to.name, from.node),
        false => format!("pod {} on {} -> pod {} on {}", from.name, from.node, to.name, to.node),
    }
}

/// Each round starts two pods on one node and sends one throughput sample between them;
/// the CNI's CPU time over the round, per pod, and its peak memory so far are its figures
/// (read from the provider: [`Feature::CniResourceUsage`]).
fn cni_processes_stay_within_cpu_and_memory_budgets(cx: &mut ScenarioContext) -> Result<Verdict> {
    let namespace = cx.namespace("perf", labels([]))?;
    let node = cx.a_worker()?;
    let budgets = cx.performance_budgets()?;
    let whose = format!("the CNI's processes ({})", cx.cluster().info().cni);
    let mut round = 0;
    let figures = cx.measure_rounds(&budgets, &[(CNI_CPU_PER_POD, whose.clone()), (CNI_PEAK_MEMORY, whose.clone())], |cx| {
        round += 1;
        let before = cx.cluster().cni_resource_usage()?;
        let client = cx.pod(&namespace, &format!("client-{round}"), labels([]), &node)?;
        let server = cx.pod(&namespace, &format!("server-{round}"), labels([]), &node)?;
        let to = cx.iperf3_server_in(&server)?;
        cx.iperf3_from_pod(&client, &to, &budgets)?;
        let after = cx.cluster().cni_resource_usage()?;
        Ok(vec![after.cpu.saturating_sub(before.cpu).as_secs_f64() * 1e3 / 2.0, after.peak_memory_bytes as f64 / (1u64 << 20) as f64])
    })?;
    cx.judged(
        &budgets,
        "CPU time and peak memory of the CNI's own processes",
        &whose,
        figures,
        "the CNI's processes: its plugins' work per ADD (and what they run: IPAM, iptables), its agents where it has them",
    )
}

impl ScenarioContext {
    /// A namespace with a client pod on a worker, a pod beside it and one on another node.
    pub fn pods_to_talk_to(&mut self) -> Result<PodsToTalkTo> {
        let namespace = self.namespace("perf", labels([]))?;
        let node = self.a_worker()?;
        let other = self.a_node_other_than(&node)?;
        Ok(PodsToTalkTo {
            client: self.pod(&namespace, "client", labels([]), &node)?,
            beside: self.pod(&namespace, "beside", labels([]), &node)?,
            across: self.pod(&namespace, "across", labels([]), &other)?,
        })
    }

    /// The run's performance budgets, checked against every figure the scenarios measure.
    pub fn performance_budgets(&self) -> Result<PerformanceBudgets> {
        fixtures::load_performance_budgets(&fixtures::fixture_path("budgets/performance.yaml"))
    }

    /// The budget of `figure` here: this run's CNI, provider and machine class.
    pub fn budget_line(&self, budgets: &PerformanceBudgets, figure: &str) -> Option<performance::BudgetLine> {
        let info = self.cluster().info();
        budgets.line_for(figure, &info.cni, &info.provider, &fixtures::machine_class())
    }

    pub(crate) fn figure_spec(&self, kind: FigureKind, path: &str) -> FigureSpec {
        FigureSpec { name: kind.name.to_owned(), unit: kind.unit.to_owned(), better: kind.better, quantile: kind.quantile, path: path.to_owned() }
    }

    /// Measures `figures` together, one sample of each per round (a path and its baseline
    /// back to back), until every budgeted figure is decided or the cap is reached.
    pub fn measure_rounds(
        &mut self,
        budgets: &PerformanceBudgets,
        figures: &[(FigureKind, String)],
        mut round: impl FnMut(&mut ScenarioContext) -> Result<Vec<f64>>,
    ) -> Result<Vec<Figure>> {
        let looks = budgets.looks()?;
        let lines: Vec<_> = figures.iter().map(|(kind, _)| self.budget_line(budgets, kind.name)).collect();
        let mut samples: Vec<Vec<f64>> = vec![Vec::new(); figures.len()];
        // At most `cap` rounds: a figure below the cap is never left undecided.
        loop {
            let wanted = if samples[0].is_empty() { looks.plan.initial } else { looks.plan.batch };
            for _ in 0..wanted {
                let values = round(self)?;
                for (figure, value) in samples.iter_mut().zip(values) {
                    figure.push(value);
                }
            }
            let judged: Vec<Figure> = figures
                .iter()
                .zip(&samples)
                .zip(&lines)
                .map(|(((kind, path), s), line)| performance::judge(&self.figure_spec(*kind, path), s, &looks, line.as_ref()))
                .collect();
            if !judged.iter().any(|f| performance::undecided(f, &looks)) {
                return Ok(judged);
            }
        }
    }

    /// The verdict on `figures` with the run's looks.
    fn judged(&self, budgets: &PerformanceBudgets, check: &str, subject: &str, figures: Vec<Figure>, look_at: &str) -> Result<Verdict> {
        let looks = budgets.looks()?;
        Ok(performance::figures_within_budget(check, subject, figures, &looks, look_at))
    }

    /// Starts an iperf3 server in `pod`; returns where clients reach it.
    pub fn iperf3_server_in(&self, pod: &Pod) -> Result<std::net::SocketAddr> {
        let port = IPERF3_PORT.to_string();
        let started = self.cluster().run_in_pod(pod, "iperf3", &["-s", "-D", "-p", &port])?;
        iperf3_started(started, &format!("pod {}/{}", pod.namespace, pod.name))?;
        Ok(std::net::SocketAddr::new(pod.address, IPERF3_PORT))
    }

    /// Starts an iperf3 server on `node` (its own network, not a pod's).
    pub fn iperf3_server_on(&self, node: &Node) -> Result<std::net::SocketAddr> {
        let port = IPERF3_PORT.to_string();
        let started = self.cluster().run_on_node(node, "iperf3", &["-s", "-D", "-p", &port])?;
        iperf3_started(started, &format!("node {}", node.name))?;
        Ok(std::net::SocketAddr::new(node.address, IPERF3_PORT))
    }

    /// Starts an iperf3 server on the external host. Once per run in effect: a second
    /// `iperf3 -s -D` exits 0 and its daemon, finding the port taken, ends (measured), so the
    /// first server (or a provider's own, as kind's beside the echo) keeps serving.
    pub fn iperf3_server_outside(&self) -> Result<std::net::SocketAddr> {
        let outside = self.external_listener()?;
        let port = IPERF3_PORT.to_string();
        let running = self.cluster().run_outside("iperf3", &["-s", "-D", "-p", &port])?;
        iperf3_started(running, "the external host")?;
        Ok(std::net::SocketAddr::new(outside.ip(), IPERF3_PORT))
    }

    /// One iperf3 sample from `pod` to `to`, in Gbit/s received.
    pub fn iperf3_from_pod(&self, pod: &Pod, to: &std::net::SocketAddr, budgets: &PerformanceBudgets) -> Result<f64> {
        let args = iperf3_client_args(to, budgets.load.iperf3_bytes);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let place = format!("pod {}/{}", pod.namespace, pod.name);
        self.retried_while_the_server_starts(&place, || self.cluster().run_in_pod(pod, "iperf3", &args))
    }

    /// One iperf3 sample from `node` itself to `to`, in Gbit/s received.
    pub fn iperf3_from_node(&self, node: &Node, to: &std::net::SocketAddr, budgets: &PerformanceBudgets) -> Result<f64> {
        let args = iperf3_client_args(to, budgets.load.iperf3_bytes);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.retried_while_the_server_starts(&format!("node {}", node.name), || self.cluster().run_on_node(node, "iperf3", &args))
    }

    /// A daemonized iperf3 server may not listen yet when its start returns: a refused
    /// connection is tried again for a second.
    fn retried_while_the_server_starts(&self, place: &str, run: impl Fn() -> Result<crate::model::ExecOutput>) -> Result<f64> {
        let started = Instant::now();
        loop {
            let output = run()?;
            match throughput_gbit(&output, place) {
                Err(e) if e.to_string().contains("Connection refused") && started.elapsed() < Duration::from_secs(1) => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                other => return other,
            }
        }
    }

    /// `requests` HTTP requests from `client` to `server`'s echo at `concurrency`, each
    /// worker on one kept-alive connection.
    pub fn http_load_from(&self, client: &Pod, server: &Pod, requests: u64, concurrency: u64) -> Result<cni_probe::LoadReport> {
        let options = cni_probe::LoadOptions { requests, concurrency, timeout: Duration::from_secs(3), header: None, new_connection_per_request: false };
        let url = format!("http://{}:{POD_PORT}/", server.address);
        let output = self.cluster().run_probe_in(client, &options.to_args(&url))?;
        let report: cni_probe::LoadReport =
            crate::provider::probe_output(&output, || format!("cni-probe load {url} in pod {}/{}", client.namespace, client.name))?;
        let answered: u64 = report.by_status.get(&200).copied().unwrap_or(0);
        if answered != requests {
            return Err(HarnessError::Command {
                command: format!("cni-probe load {url} in pod {}/{}", client.namespace, client.name),
                detail: format!("{answered} of {requests} requests answered 200; failures {:?}, statuses {:?}", report.failures, report.by_status),
            });
        }
        Ok(report)
    }

    /// Starts `n` pods on `node` at once (as a kubelet does); returns each one's time from
    /// its start until its network was ready, in ms.
    pub fn start_pods_together(&mut self, namespace: &str, prefix: &str, node: &Node, n: usize) -> Result<Vec<f64>> {
        let cluster = std::sync::Arc::clone(self.cluster());
        let started: Vec<Result<(Pod, f64)>> = std::thread::scope(|scope| {
            let starting: Vec<_> = (0..n)
                .map(|i| {
                    let cluster = &cluster;
                    let spec = crate::model::PodSpec {
                        name: format!("{prefix}-{i}"),
                        namespace: namespace.to_owned(),
                        labels: labels([]),
                        node: node.name.clone(),
                        host_ports: vec![],
                    };
                    scope.spawn(move || {
                        let at = Instant::now();
                        let pod = cluster.create_pod(&spec)?;
                        Ok((pod, at.elapsed().as_secs_f64() * 1e3))
                    })
                })
                .collect();
            starting.into_iter().map(|h| h.join().expect("create_pod does not panic")).collect()
        });
        started
            .into_iter()
            .map(|r| {
                r.map(|(pod, ms)| {
                    self.remember_pod(pod);
                    ms
                })
            })
            .collect()
    }

    /// The iptables rules (over every node) whose packet counters grew by at least
    /// `packets` while `client` sent that many datagrams to `to`: the rules the flow took.
    pub fn rules_moved_by_a_known_flow(&self, client: &Pod, to: std::net::SocketAddr, packets: u64) -> Result<Vec<String>> {
        let nodes = self.cluster().nodes().to_vec();
        let read = |node: &Node| crate::provider::rule_counters_on(self.cluster().as_ref(), node);
        let before = nodes.iter().map(read).collect::<Result<Vec<_>>>()?;
        let options = cni_probe::talk::TalkOptions {
            to,
            transport: cni_probe::talk::Transport::Udp,
            priority: 0,
            tos: None,
            count: packets,
            payload: 64,
            tag: "rules".into(),
            txtime_delay: None,
            interleave: vec![],
        };
        let output = self.cluster().run_probe_in(client, &options.to_args())?;
        let report: cni_probe::talk::TalkReport =
            crate::provider::probe_output(&output, || format!("cni-probe talk in pod {}/{}", client.namespace, client.name))?;
        if let Some(error) = report.error {
            return Err(HarnessError::Command { command: format!("cni-probe talk {to} in pod {}/{}", client.namespace, client.name), detail: error });
        }
        let after = nodes.iter().map(read).collect::<Result<Vec<_>>>()?;
        Ok(nodes
            .iter()
            .zip(before.into_iter().zip(after))
            .flat_map(|(node, (before, after))| {
                crate::verdict::iptables::moved_rules(&before, &after, packets).into_iter().map(|rule| format!("{}: {rule}", node.name))
            })
            .collect())
    }
}

/// iperf3's client arguments: `bytes` to `to`, JSON out, a bounded connect; on a machine
/// of two or more cores the client on the first and the server on the second (`-A 0,1`),
/// so that they do not take turns on one core (a sample's spread falls from about 25 % to
/// about 6 % on the 2-core CI machine).
pub fn iperf3_client_args(to: &std::net::SocketAddr, bytes: u64) -> Vec<String> {
    let mut args: Vec<String> = ["-c", &to.ip().to_string(), "-p", &to.port().to_string(), "-n", &bytes.to_string(), "-J", "--connect-timeout", "3000"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    if std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2 {
        args.extend(["-A".into(), "0,1".into()]);
    }
    args
}

fn not_installed(place: &str) -> HarnessError {
    HarnessError::Command {
        command: format!("iperf3 on {place}"),
        detail: "iperf3 is not installed: install it with `apt-get install iperf3` or run `cargo xtask deps`".into(),
    }
}

/// Whether `output` is of an iperf3 that could not be run at all.
fn iperf3_missing(output: &crate::model::ExecOutput) -> bool {
    output.stderr.contains("No such file") || output.exit.contains("127")
}

fn iperf3_started(output: crate::model::ExecOutput, place: &str) -> Result<()> {
    if iperf3_missing(&output) {
        return Err(not_installed(place));
    }
    output.stdout_of_success(&format!("iperf3 -s -D -p {IPERF3_PORT} on {place}")).map(drop)
}

/// The received rate of an iperf3 client's JSON report, in Gbit/s.
pub fn throughput_gbit(output: &crate::model::ExecOutput, place: &str) -> Result<f64> {
    if iperf3_missing(output) {
        return Err(not_installed(place));
    }
    let failed = |detail: String| HarnessError::Command { command: format!("iperf3 -c on {place}"), detail };
    let report: serde_json::Value =
        serde_json::from_str(&output.stdout).map_err(|e| failed(format!("unreadable JSON ({e}); {}; stderr {:?}", output.exit, output.stderr.trim())))?;
    if let Some(error) = report.get("error").and_then(|e| e.as_str()) {
        return Err(failed(error.to_owned()));
    }
    report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .map(|bps| bps / 1e9)
        .ok_or_else(|| failed("no end.sum_received.bits_per_second in its JSON".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_figure_has_a_unique_name_and_ratios_name_their_baseline() {
        let names = figure_names();
        let unique: std::collections::BTreeSet<_> = names.iter().map(|(n, _)| n).collect();
        assert_eq!(unique.len(), names.len());
        for (name, _) in names.iter().filter(|(n, _)| n.contains('/')) {
            let baseline = name.split_once('/').unwrap().1;
            assert!(names.iter().any(|(n, _)| n == baseline), "{name}: no figure {baseline}");
        }
    }

    #[test]
    fn a_bad_budget_entry_is_an_error_naming_the_file_the_entry_and_what_was_expected() {
        let shipped = std::fs::read_to_string(fixtures::fixture_path("budgets/performance.yaml")).unwrap();
        let head = &shipped[..shipped.find("budgets:").unwrap()];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("performance.yaml");
        let error_for = |budgets: &str| {
            std::fs::write(&path, format!("{head}budgets:\n{budgets}")).unwrap();
            fixtures::load_performance_budgets(&path).unwrap_err().to_string()
        };
        let unknown = error_for("  - figure: throughput.pod-to-pod.sideways\n    atLeast: 1\n    machineClass: x\n");
        assert!(
            unknown.contains("performance.yaml")
                && unknown.contains("budgets[0] (figure `throughput.pod-to-pod.sideways`): unknown figure; expected one of throughput.pod-to-pod.same-node"),
            "{unknown}"
        );
        let wrong_side = error_for("  - figure: throughput.pod-to-pod.same-node\n    atMost: 1\n    machineClass: x\n");
        assert!(wrong_side.contains("higher is better for this figure: expected atLeast, found atMost"), "{wrong_side}");
        let no_class = error_for("  - figure: startup.pod-network.1-pod\n    atMost: 100\n");
        assert!(no_class.contains("an absolute budget holds for a named machine class: expected machineClass"), "{no_class}");
        std::fs::write(&path, shipped.replace("  cap: 30", "  cap: 5").replace("  initial: 10", "  initial: 5")).unwrap();
        let small = fixtures::load_performance_budgets(&path).unwrap_err().to_string();
        assert!(small.contains("measure: a cap of 5 samples can never judge the median at a false-fail rate of 0.01"), "{small}");
    }

    #[test]
    fn the_budget_file_names_only_known_figures_on_their_side() {
        let budgets = fixtures::load_performance_budgets(&fixtures::fixture_path("budgets/performance.yaml")).unwrap();
        assert!(budgets.budgets.iter().any(|b| b.figure.contains('/')), "relative budgets");
        assert!(budgets.budgets.iter().any(|b| b.machine_class.is_some()), "absolute budgets");
    }
}
