//! Self-test of the performance family by fault injection, on real traffic on the lab.
//!
//! Each fault must fail exactly the budgets of the paths it is on, and the failure must
//! name the figure, its interval, its budget and its path: a bandwidth limit (tbf) on the
//! workers' NICs or on every pod's veth, thousands of no-op rules in every node's forwarding path, and slow,
//! CPU-burning or memory-holding plugins chained after the CNI (configured as a vendor would, with a profile directory,
//! a conflist and a plugin binary, no Rust).

use std::path::Path;
use std::sync::Arc;

use harness::cni::{self, CniProfile};
use harness::diagnostics::Collect;
use harness::provider::lab::{Lab, LabFault, LabOptions};
use harness::provider::Cluster;
use harness::report::TrialOutcome;
use harness::scenario::{run_scenario, run_scenario_collecting, Collection, Scenario, ScenarioContext};
use harness::scenarios::performance::{self, all};
use harness::verdict::performance::{Better, Figure, FigureOutcome, FigureSpec};
use harness::verdict::{FailureReason, Verdict};
use libtest_mimic::{Arguments, Failed, Trial};

fn scenario(name: &str) -> Scenario {
    all().into_iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no performance scenario {name}"))
}

fn lab(profile: &CniProfile, fault: Option<LabFault>) -> Result<Arc<dyn Cluster>, Failed> {
    let options = match fault {
        Some(fault) => LabOptions::with_fault(fault),
        None => LabOptions::from_env()?,
    };
    Ok(Arc::new(Lab::provision(profile, &options)?))
}

/// Each named scenario's outcome on `cluster`, one after another (each alone). A failed
/// one must leave a diagnostics bundle, a passed one none: that is checked here.
fn outcomes(cluster: &Arc<dyn Cluster>, names: &[&str]) -> Vec<(String, TrialOutcome)> {
    let bundles = tempfile::tempdir().expect("a temporary directory");
    let collection = Collection { root: bundles.path().to_owned(), mode: Collect::Failures, profile_commands: vec![] };
    let mut outcomes = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let (outcome, bundle) =
            run_scenario_collecting(cluster, &scenario(name), &harness::provider::lab::timeouts(), &format!("t{}", i + 1), None, Some(&collection));
        let problems = harness::diagnostics::bundle_problems(name, outcome.is_failure(), bundle.as_deref());
        assert!(problems.is_empty(), "{problems:?}");
        outcomes.push(((*name).to_owned(), outcome));
    }
    outcomes
}

fn figures(outcome: &TrialOutcome) -> &[Figure] {
    match outcome {
        TrialOutcome::Passed(v) | TrialOutcome::Failed(v) => &v.figures,
        _ => &[],
    }
}

/// Checks that the `failing` figures failed (over budget, named in the message with their
/// interval, budget and path), that every other budgeted figure passed, except those that
/// `may_fail` (a tail latency on a slowed path may or may not cross its budget).
fn these_fail(outcomes: &[(String, TrialOutcome)], failing: &[&str], may_fail: &[&str]) -> Result<(), Failed> {
    let mut wrong = Vec::new();
    for (scenario, outcome) in outcomes {
        let figures = figures(outcome);
        if figures.is_empty() {
            wrong.push(format!("{scenario}: no figures ({}: {})", outcome.label(), outcome.message()));
            continue;
        }
        for figure in figures.iter().filter(|f| f.budget.is_some() && !may_fail.contains(&f.name.as_str())) {
            let should_fail = failing.contains(&figure.name.as_str());
            match (should_fail, figure.outcome) {
                (true, FigureOutcome::Failed) | (false, FigureOutcome::Passed) => {}
                (_, other) => wrong.push(format!(
                    "{scenario}: figure {} should have {} but is {other:?}: {}; budget {}",
                    figure.name,
                    if should_fail { "failed" } else { "passed" },
                    figure.summary(),
                    figure.budget_text()
                )),
            }
        }
        let fails = figures.iter().any(|f| failing.contains(&f.name.as_str()));
        match outcome {
            TrialOutcome::Failed(verdict) if fails => {
                let message = verdict.message();
                let first = figures.iter().find(|f| f.outcome == FigureOutcome::Failed).expect("a failed figure");
                let named = [first.name.as_str(), "interval [", "budget at least", "past the budget", first.path.as_str()];
                let named = named.iter().all(|part| message.contains(part))
                    || [first.name.as_str(), "interval [", "budget at most", "past the budget"].iter().all(|part| message.contains(part));
                if verdict.reason != Some(FailureReason::OverBudget) || !named {
                    wrong.push(format!("{scenario}: the failure should be over budget and name the figure, its interval, its budget and its path: {message}"));
                }
            }
            TrialOutcome::Passed(_) if !fails => {}
            other => wrong.push(format!("{scenario}: expected {}, got {}: {}", if fails { "a failure" } else { "a pass" }, other.label(), other.message())),
        }
    }
    match wrong.is_empty() {
        true => Ok(()),
        false => Err(wrong.join("\n").into()),
    }
}

const SAME_NODE: &str = "tcp_throughput_between_pods_on_one_node_is_within_budget";
const ACROSS: &str = "tcp_throughput_across_nodes_keeps_up_with_the_underlay";
const GATEWAY: &str = "egress_gateway_throughput_keeps_up_with_the_node_masquerade";
const LATENCY: &str = "tcp_request_response_latency_between_pods_is_within_budget";
const RULES: &str = "packets_traverse_no_more_rules_than_budgeted";
const STARTUP: &str = "pod_network_start_up_time_is_within_budget";
const CNI_RESOURCES: &str = "cni_processes_stay_within_cpu_and_memory_budgets";

/// A 1 Gbit/s tbf on every worker's NIC: the paths that leave a worker fail their
/// absolute throughput budgets; the same-node path and the ratios (whose baselines leave
/// through the same NIC) do not.
fn a_bandwidth_limit_on_the_workers_nics_fails_only_the_paths_through_them() -> Result<(), Failed> {
    let cluster = lab(&cni::reference(), Some(LabFault::NicRateLimit))?;
    let outcomes = outcomes(&cluster, &[SAME_NODE, ACROSS, GATEWAY]);
    cluster.teardown()?;
    these_fail(&outcomes, &[performance::ACROSS_NODES.name, performance::MASQUERADE.name, performance::EGRESS_GATEWAY.name], &[])
}

/// A 1 Gbit/s tbf on every pod's veth, towards the pod: the paths whose data flows into a
/// pod (pod to pod, on one node and across nodes, and so the across-nodes ratio) fail;
/// the paths from a pod to the external host, and their ratio, do not.
fn a_bandwidth_limit_on_every_pod_s_veth_fails_only_the_paths_into_pods() -> Result<(), Failed> {
    let cluster = lab(&cni::reference(), Some(LabFault::PodVethRateLimit))?;
    let outcomes = outcomes(&cluster, &[SAME_NODE, ACROSS, GATEWAY]);
    cluster.teardown()?;
    these_fail(&outcomes, &[performance::SAME_NODE.name, performance::ACROSS_NODES.name, performance::ACROSS_NODES_OVER_UNDERLAY.name], &[])
}

/// Thousands of no-op rules (no target: they count and go on) in every node's FORWARD
/// chain: the rules a forwarded packet traverses and its median request/response latency go
/// past their budgets on the paths that are forwarded by a node (its p99 may too).
fn no_op_rules_in_the_forwarding_path_raise_rules_traversed_and_latency() -> Result<(), Failed> {
    let cluster = lab(&cni::reference(), Some(LabFault::NoOpForwardingRules))?;
    let outcomes = outcomes(&cluster, &[RULES, LATENCY]);
    cluster.teardown()?;
    these_fail(&outcomes, &FORWARDED, &[performance::RR_SAME_NODE_P99.name, performance::RR_ACROSS_NODES_P99.name])
}

/// The figures of the paths a node forwards (this lab's bridge hands pod-to-pod traffic on
/// one node to netfilter too: br_netfilter is loaded on the machine).
const FORWARDED: [&str; 5] = [
    "rules.traversed.pod-to-pod.same-node",
    "rules.traversed.pod-to-pod.across-nodes",
    "rules.traversed.pod-to-external",
    "latency.request-response.same-node.p50",
    "latency.request-response.across-nodes.p50",
];

/// A profile directory like `fixtures/cni/reference` whose conflist chains `plugin` (a
/// python3 script that does `on_add` and passes its predecessor's result on): what a vendor
/// would write, no Rust.
fn profile_with_a_chained_plugin(dir: &Path, plugin: &str, on_add: &str) -> Result<CniProfile, Failed> {
    let shipped = cni::profile::profiles_dir().join("reference");
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).map_err(|e| e.to_string())?;
    let binary = plugins.join(plugin);
    std::fs::write(
        &binary,
        format!(
            r#"#!/usr/bin/env python3
# A chained CNI plugin that does its ADD work, then passes its predecessor's result on.
import json, os, sys, time
config = json.load(sys.stdin)
command = os.environ.get("CNI_COMMAND")
if command == "VERSION":
    print(json.dumps({{"cniVersion": config.get("cniVersion", "1.0.0"), "supportedVersions": ["0.4.0", "1.0.0"]}}))
elif command == "ADD":
    {on_add}
    print(json.dumps(config["prevResult"]))
"#
        ),
    )
    .map_err(|e| e.to_string())?;
    std::fs::set_permissions(&binary, std::os::unix::fs::PermissionsExt::from_mode(0o755)).map_err(|e| e.to_string())?;
    let profile = std::fs::read_to_string(shipped.join("profile.yaml")).map_err(|e| e.to_string())?;
    let profile = profile
        .replace("name: reference\n", &format!("name: reference-{plugin}\n"))
        .replace("    pluginDir: /usr/lib/cni\n", &format!("    pluginDirs: [/usr/lib/cni, {}]\n", plugins.display()));
    std::fs::write(dir.join("profile.yaml"), profile).map_err(|e| e.to_string())?;
    let mut conflist: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(shipped.join("10-lab.conflist")).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    conflist["plugins"].as_array_mut().ok_or("the shipped conflist has plugins")?.push(serde_json::json!({ "type": plugin }));
    std::fs::write(dir.join("10-lab.conflist"), serde_json::to_string_pretty(&conflist).unwrap()).map_err(|e| e.to_string())?;
    cni::load_profile(&dir.join("profile.yaml").display().to_string()).map_err(|e| e.to_string().into())
}

/// `scenarios` on a lab whose profile chains `plugin` doing `on_add` (see
/// [`profile_with_a_chained_plugin`]): exactly the `failing` figures fail, as [`these_fail`] checks.
fn with_a_chained_plugin(plugin: &str, on_add: &str, scenarios: &[&str], failing: &[&str], may_fail: &[&str]) -> Result<(), Failed> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let profile = profile_with_a_chained_plugin(dir.path(), plugin, on_add)?;
    let cluster = lab(&profile, None)?;
    let outcomes = outcomes(&cluster, scenarios);
    cluster.teardown()?;
    these_fail(&outcomes, failing, may_fail)
}

/// A chained plugin that burns 300 ms of CPU on each ADD fails the CNI's CPU budget and
/// not its memory budget.
fn a_chained_plugin_burning_cpu_fails_the_cni_cpu_budget() -> Result<(), Failed> {
    with_a_chained_plugin(
        "cpu-burner",
        "started = time.process_time()\n    while time.process_time() - started < 0.3: pass",
        &[CNI_RESOURCES],
        &[performance::CNI_CPU_PER_POD.name],
        &[],
    )
}

/// A chained plugin that holds 128 MiB on each ADD fails the CNI's memory budget; its CPU
/// (filling the memory) may or may not cross the CPU budget.
fn a_chained_plugin_holding_memory_fails_the_cni_memory_budget() -> Result<(), Failed> {
    with_a_chained_plugin(
        "memory-holder",
        "held = b'x' * (128 << 20)",
        &[CNI_RESOURCES],
        &[performance::CNI_PEAK_MEMORY.name],
        &[performance::CNI_CPU_PER_POD.name],
    )
}

/// A chained plugin 300 ms slow on ADD fails the start-up budget, and nothing else.
fn a_slow_chained_plugin_fails_the_start_up_budget() -> Result<(), Failed> {
    with_a_chained_plugin("slow-start", "time.sleep(0.3)", &[STARTUP, SAME_NODE], &[performance::STARTUP_ONE.name], &[])
}

/// How many harness and bare iperf3 samples are taken, alternately.
const PAIRS: usize = 120;

/// The harness's throughput figure and bare iperf3 run by hand (`ip netns exec` in the
/// client pod's namespace, the same arguments), alternately on the same path: the median
/// of the pairs' ratios (harness over bare) as the verdict's one figure.
fn harness_against_bare_iperf3(cx: &mut ScenarioContext) -> harness::Result<Verdict> {
    let namespace = cx.namespace("perf", harness::model::labels([]))?;
    let node = cx.a_worker()?;
    let client = cx.pod(&namespace, "client", harness::model::labels([]), &node)?;
    let server = cx.pod(&namespace, "server", harness::model::labels([]), &node)?;
    let to = cx.iperf3_server_in(&server)?;
    let budgets = cx.performance_budgets()?;
    // The lab names a pod's namespace `<cluster>-pod<n>`, the first pod of a run 1.
    let cluster = node.name.strip_suffix("-worker").expect("lab workers are <cluster>-worker");
    let by_hand = || -> harness::Result<f64> {
        let output = std::process::Command::new("ip")
            .args(["netns", "exec", &format!("{cluster}-pod1"), "iperf3"])
            .args(performance::iperf3_client_args(&to, budgets.load.iperf3_bytes))
            .output()
            .map_err(|e| harness::HarnessError::Command { command: "iperf3 by hand".into(), detail: e.to_string() })?;
        performance::throughput_gbit(&harness::model::ExecOutput::from_output(&output), "the client pod, by hand")
    };
    let mut ratios = Vec::new();
    for pair in 0..PAIRS {
        // Who goes first alternates: a run right after another is a little slower.
        let (through_the_harness, bare) = match pair % 2 {
            0 => (cx.iperf3_from_pod(&client, &to, &budgets)?, by_hand()?),
            _ => {
                let bare = by_hand()?;
                (cx.iperf3_from_pod(&client, &to, &budgets)?, bare)
            }
        };
        ratios.push(through_the_harness / bare);
    }
    let spec =
        FigureSpec { name: "harness-over-bare".into(), unit: "x".into(), better: Better::Higher, quantile: 0.5, path: "pod client -> pod server".into() };
    let looks = budgets.looks()?;
    let figure = harness::verdict::performance::judge(&spec, &ratios, &looks, None);
    Ok(harness::verdict::performance::figures_within_budget("harness against bare iperf3", "pod client -> pod server", vec![figure], &looks, ""))
}

/// The harness is not the bottleneck: its figure is within 5 % of bare iperf3 by hand.
fn the_harness_throughput_figure_is_within_5_percent_of_bare_iperf3() -> Result<(), Failed> {
    let cluster = lab(&cni::reference(), None)?;
    let scenario = Scenario { name: "harness_against_bare_iperf3", sentence: "", requires: &[], disruptive: true, body: harness_against_bare_iperf3 };
    let outcome = run_scenario(&cluster, &scenario, &harness::provider::lab::timeouts(), "t1");
    cluster.teardown()?;
    let figure = figures(&outcome).first().ok_or_else(|| format!("no figure: {}", outcome.message()))?;
    println!("harness over bare iperf3: {}", figure.summary());
    match (figure.estimate - 1.0).abs() <= 0.05 {
        true => Ok(()),
        false => {
            Err(format!("the harness's throughput is {:.1}% off bare iperf3 on the same path: {}", (figure.estimate - 1.0) * 100.0, figure.summary()).into())
        }
    }
}

fn main() -> std::process::ExitCode {
    let args = Arguments::from_args();
    let trials = vec![
        Trial::test("the_harness_throughput_figure_is_within_5_percent_of_bare_iperf3", the_harness_throughput_figure_is_within_5_percent_of_bare_iperf3),
        Trial::test(
            "a_bandwidth_limit_on_the_workers_nics_fails_only_the_paths_through_them",
            a_bandwidth_limit_on_the_workers_nics_fails_only_the_paths_through_them,
        ),
        Trial::test(
            "a_bandwidth_limit_on_every_pod_s_veth_fails_only_the_paths_into_pods",
            a_bandwidth_limit_on_every_pod_s_veth_fails_only_the_paths_into_pods,
        ),
        Trial::test(
            "no_op_rules_in_the_forwarding_path_raise_rules_traversed_and_latency",
            no_op_rules_in_the_forwarding_path_raise_rules_traversed_and_latency,
        ),
        Trial::test("a_slow_chained_plugin_fails_the_start_up_budget", a_slow_chained_plugin_fails_the_start_up_budget),
        Trial::test("a_chained_plugin_burning_cpu_fails_the_cni_cpu_budget", a_chained_plugin_burning_cpu_fails_the_cni_cpu_budget),
        Trial::test("a_chained_plugin_holding_memory_fails_the_cni_memory_budget", a_chained_plugin_holding_memory_fails_the_cni_memory_budget),
    ];
    // Measurements share the machine with nothing: one at a time.
    libtest_mimic::run(&Arguments { test_threads: Some(1), ..args }, trials).exit_code()
}
