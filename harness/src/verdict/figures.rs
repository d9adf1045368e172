//! The performance figures by name: what the performance scenarios measure and what
//! `budgets/performance.yaml` may hold budgets for, with each one's unit, better side and
//! quantile. Below fixtures (which check budget files against them) and scenarios.

use super::performance::Better;

/// One figure the scenarios measure: a stable name, its unit, its better side, its quantile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FigureKind {
    pub name: &'static str,
    pub unit: &'static str,
    pub better: Better,
    pub quantile: f64,
}

const fn higher(name: &'static str, unit: &'static str) -> FigureKind {
    FigureKind { name, unit, better: Better::Higher, quantile: 0.5 }
}

const fn lower(name: &'static str, unit: &'static str) -> FigureKind {
    FigureKind { name, unit, better: Better::Lower, quantile: 0.5 }
}

pub const SAME_NODE: FigureKind = higher("throughput.pod-to-pod.same-node", "Gbit/s");
pub const ACROSS_NODES: FigureKind = higher("throughput.pod-to-pod.across-nodes", "Gbit/s");
pub const UNDERLAY: FigureKind = higher("throughput.node-to-node.underlay", "Gbit/s");
pub const ACROSS_NODES_OVER_UNDERLAY: FigureKind = higher("throughput.pod-to-pod.across-nodes/throughput.node-to-node.underlay", "x");
pub const MASQUERADE: FigureKind = higher("throughput.pod-to-external.masquerade", "Gbit/s");
pub const EGRESS_GATEWAY: FigureKind = higher("throughput.pod-to-external.egress-gateway", "Gbit/s");
pub const GATEWAY_OVER_MASQUERADE: FigureKind = higher("throughput.pod-to-external.egress-gateway/throughput.pod-to-external.masquerade", "x");
pub const RR_SAME_NODE_P50: FigureKind = lower("latency.request-response.same-node.p50", "us");
pub const RR_SAME_NODE_P99: FigureKind = lower("latency.request-response.same-node.p99", "us");
pub const RR_ACROSS_NODES_P50: FigureKind = lower("latency.request-response.across-nodes.p50", "us");
pub const RR_ACROSS_NODES_P99: FigureKind = lower("latency.request-response.across-nodes.p99", "us");
pub const HTTP_RATE_ONE: FigureKind = higher("http.requests-per-second.concurrency-1", "req/s");
pub const HTTP_RATE_HIGH: FigureKind = higher("http.requests-per-second.concurrency-high", "req/s");
pub const HTTP_RATE_HIGH_OVER_ONE: FigureKind = higher("http.requests-per-second.concurrency-high/http.requests-per-second.concurrency-1", "x");
pub const HTTP_MEAN_ONE: FigureKind = lower("http.latency-mean.concurrency-1", "ms");
pub const HTTP_P99_ONE: FigureKind = lower("http.latency-p99.concurrency-1", "ms");
pub const HTTP_MEAN_HIGH: FigureKind = lower("http.latency-mean.concurrency-high", "ms");
pub const HTTP_P99_HIGH: FigureKind = lower("http.latency-p99.concurrency-high", "ms");
pub const STARTUP_ONE: FigureKind = lower("startup.pod-network.1-pod", "ms");
pub const RULES_SAME_NODE: FigureKind = lower("rules.traversed.pod-to-pod.same-node", "rules");
pub const RULES_ACROSS_NODES: FigureKind = lower("rules.traversed.pod-to-pod.across-nodes", "rules");
pub const RULES_TO_EXTERNAL: FigureKind = lower("rules.traversed.pod-to-external", "rules");
pub const CNI_CPU_PER_POD: FigureKind = lower("cni.cpu-per-pod", "ms");
pub const CNI_PEAK_MEMORY: FigureKind = lower("cni.peak-memory", "MiB");

const FIXED: [FigureKind; 24] = [
    SAME_NODE,
    ACROSS_NODES,
    UNDERLAY,
    ACROSS_NODES_OVER_UNDERLAY,
    MASQUERADE,
    EGRESS_GATEWAY,
    GATEWAY_OVER_MASQUERADE,
    RR_SAME_NODE_P50,
    RR_SAME_NODE_P99,
    RR_ACROSS_NODES_P50,
    RR_ACROSS_NODES_P99,
    HTTP_RATE_ONE,
    HTTP_RATE_HIGH,
    HTTP_RATE_HIGH_OVER_ONE,
    HTTP_MEAN_ONE,
    HTTP_P99_ONE,
    HTTP_MEAN_HIGH,
    HTTP_P99_HIGH,
    STARTUP_ONE,
    RULES_SAME_NODE,
    RULES_ACROSS_NODES,
    RULES_TO_EXTERNAL,
    CNI_CPU_PER_POD,
    CNI_PEAK_MEMORY,
];

/// The start-up figure of `n` pods started together: the median of their times.
pub fn startup_together(n: usize) -> String {
    format!("startup.pod-network.{n}-pods")
}

/// Every figure that takes a budget, with its better side, for checking the budget file.
/// The figures of pods started together take none: they queue for the node one after
/// another, so a batch's times are not independent samples of one distribution (they are
/// reported, with their p95 against N).
pub fn figure_names() -> Vec<(String, Better)> {
    FIXED.iter().map(|f| (f.name.to_owned(), f.better)).collect()
}
