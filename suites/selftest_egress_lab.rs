//! Self-test of egress_lab by fault injection: each fault in the lab datapath must make
//! exactly the scenarios that should catch it fail, for the stated reason (a timeout is
//! not a wrong source), and leave every other scenario passing.

use std::sync::Arc;

use harness::cni;
use harness::diagnostics::Collect;
use harness::provider::lab::{Lab, LabFault, LabOptions};
use harness::provider::Cluster;
use harness::report::TrialOutcome;
use harness::scenario::{run_scenarios_collecting, Collection};
use harness::scenarios::egress;
use harness::verdict::FailureReason::{self, OverBudget, Refused, TimedOut, WrongSource};
use harness::Timeouts;
use libtest_mimic::{Arguments, Failed, Trial};

const CLOSED_PORT: &str = "closed_external_port_is_refused_not_dropped";
const NO_POLICY: &str = "pod_without_egress_policy_leaves_with_its_node_ip";
const SELECTED: &str = "selected_pod_leaves_with_the_egress_ip";
const UNSELECTED: &str = "unselected_pod_beside_a_selected_one_keeps_its_node_ip";
const EXCLUDED: &str = "traffic_to_an_excluded_destination_keeps_the_node_ip";
const FAILOVER: &str = "egress_ip_moves_to_another_node_when_its_node_fails";

/// The failover budget this self-test judges by: the lab's controller finds a cut node
/// after three missed health checks (about 2-3 s), `slow-failover` holds the move back
/// 7 s more, and the wait for a move that never comes runs out at twice the budget.
const FAILOVER_SECONDS: u32 = 6;

/// A scenario that must fail, why, and the role of what it must have seen instead.
type Expected = (&'static str, FailureReason, &'static str);

fn expected_failures(fault: Option<LabFault>) -> Vec<Expected> {
    match fault {
        None => vec![],
        Some(LabFault::NodeMasqueradeOff) => vec![(NO_POLICY, WrongSource, "pod"), (UNSELECTED, WrongSource, "pod"), (EXCLUDED, WrongSource, "pod")],
        Some(LabFault::GatewaySnatMissing) => vec![(SELECTED, WrongSource, "pod"), (FAILOVER, WrongSource, "pod")],
        Some(LabFault::WrongEgressIp) => vec![(SELECTED, WrongSource, "unknown"), (FAILOVER, WrongSource, "unknown")],
        Some(LabFault::PolicyRouteMissing) => vec![(SELECTED, WrongSource, "own-node"), (FAILOVER, WrongSource, "own-node")],
        Some(LabFault::PodSelectorIgnored) => vec![(UNSELECTED, WrongSource, "egress-ip")],
        Some(LabFault::ExcludedCidrsIgnored) => vec![(EXCLUDED, WrongSource, "egress-ip")],
        Some(LabFault::FailoverOff) => vec![(FAILOVER, OverBudget, "never")],
        Some(LabFault::SlowFailover) => vec![(FAILOVER, OverBudget, "over-budget")],
        Some(LabFault::ExternalEchoDown) => {
            vec![
                (NO_POLICY, Refused, "refused"),
                (SELECTED, Refused, "refused"),
                (UNSELECTED, Refused, "refused"),
                (EXCLUDED, Refused, "refused"),
                (FAILOVER, Refused, "refused"),
            ]
        }
        // Faults of the lab's HTTP Gateway do not touch egress.
        Some(LabFault::WrongWeights | LabFault::BackendDown | LabFault::MirroringOff | LabFault::StaleConfig | LabFault::UniformProbabilities) => vec![],
        // A slower datapath still leaves with the right source.
        Some(LabFault::NicRateLimit | LabFault::NoOpForwardingRules | LabFault::PodVethRateLimit) => vec![],
        Some(LabFault::ExternalUnreachable) => vec![
            (CLOSED_PORT, TimedOut, "timed-out"),
            (NO_POLICY, TimedOut, "timed-out"),
            (SELECTED, TimedOut, "timed-out"),
            (UNSELECTED, TimedOut, "timed-out"),
            (EXCLUDED, TimedOut, "timed-out"),
            (FAILOVER, TimedOut, "timed-out"),
        ],
    }
}

fn check(fault: Option<LabFault>) -> Result<(), Failed> {
    let options = fault.map(LabOptions::with_fault).unwrap_or_default();
    let cluster: Arc<dyn Cluster> = Arc::new(Lab::provision(&cni::reference(), &options).map_err(|e| e.to_string())?);
    // A short request timeout keeps the dropped-traffic fault quick; it is still a timeout.
    let timeouts = Timeouts { request: std::time::Duration::from_secs(1), ..harness::provider::lab::timeouts() };
    let scenarios: Vec<_> = egress::all().into_iter().chain(egress::excluded_destinations()).chain(egress::failover()).collect();
    let bundles = tempfile::tempdir().map_err(|e| e.to_string())?;
    let collection = Collection { root: bundles.path().to_owned(), mode: Collect::Failures, profile_commands: vec![] };
    let outcomes = run_scenarios_collecting(&cluster, &scenarios, &timeouts, Some(&collection));
    cluster.teardown().map_err(|e| e.to_string())?;

    let expected = expected_failures(fault);
    let mut wrong = Vec::new();
    for (scenario, outcome, bundle) in &outcomes {
        wrong.extend(bundle_problems(scenario, outcome, bundle.as_deref()));
        match (expected.iter().find(|(name, ..)| name == scenario), outcome) {
            (None, TrialOutcome::Passed(_)) => {}
            (None, other) => wrong.push(format!("{scenario} should pass but {}: {}", other.label(), other.message())),
            (Some((_, reason, observed_role)), TrialOutcome::Failed(verdict)) => {
                if verdict.reason != Some(*reason) || verdict.observed.role != *observed_role {
                    wrong.push(format!(
                        "{scenario} failed for the wrong reason: expected {} observing {observed_role}, got: {}",
                        reason.describe(),
                        verdict.message()
                    ));
                }
                let message = verdict.message();
                if !(message.contains(&format!("expected {}", verdict.expected.role)) && message.contains(&format!("observed {observed_role}"))) {
                    wrong.push(format!("{scenario}: the message does not name expected and observed: {message}"));
                }
            }
            (Some(_), other) => wrong.push(format!("{scenario} should fail its verdict but {}: {}", other.label(), other.message())),
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(wrong.join("\n").into())
    }
}

/// What is wrong with a trial's diagnostics bundle: a failure must carry one (with its
/// index and every node's state), a pass none; a wrong source's path trace must name where
/// the packet left a node with the source the verdict observed (the missing SNAT: it left
/// the gateway node with the pod's address).
fn bundle_problems(scenario: &str, outcome: &TrialOutcome, bundle: Option<&std::path::Path>) -> Vec<String> {
    let mut problems = harness::diagnostics::bundle_problems(scenario, outcome.is_failure(), bundle);
    let (TrialOutcome::Failed(verdict), Some(bundle)) = (outcome, bundle) else { return problems };
    let read = |file: &str| std::fs::read_to_string(bundle.join(file)).unwrap_or_default();
    if verdict.reason == Some(WrongSource) {
        let seen_as = match verdict.observed.role.as_str() {
            "pod" => ", pod ",
            "own-node" | "other-node" => ", node ",
            "egress-ip" => ", egress IP of ",
            _ => "not a node, pod or egress IP",
        };
        let trace = read("path-trace.txt");
        let exit = trace.lines().rfind(|l| l.starts_with("left node")).unwrap_or_default();
        if !exit.contains(seen_as) {
            problems.push(format!(
                "{scenario}: the path trace should name the node the packet left with the {} source; its last exit: {exit:?}\n{trace}",
                verdict.observed.role
            ));
        }
        // The capture outside is a pcap file a reader opens with Wireshark or tcpdump: the
        // replayed SYN arrived there (it was answered, from the wrong source).
        let pcap = bundle.join("captures/the-external-host.pcap");
        let read_back = std::process::Command::new("tcpdump")
            .args(["-nn", "-r"])
            .arg(&pcap)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        if !read_back.contains("Flags [S]") {
            problems
                .push(format!("{scenario}: {} should hold the replayed SYN as it reached the external host; tcpdump -r read: {read_back:?}", pcap.display()));
        }
    }
    problems
}

/// A copy of the fixtures with the failover budget at [`FAILOVER_SECONDS`]: the lab's 30 s
/// budget would let a 7 s late move pass, and a move that never comes wait a minute.
fn fixtures_with_short_failover_budget() -> tempfile::TempDir {
    let copy = tempfile::tempdir().expect("a temporary directory");
    let status = std::process::Command::new("cp").arg("-r").arg(harness::fixtures::fixtures_dir().join(".")).arg(copy.path()).status().expect("cp runs");
    assert!(status.success(), "copying the fixtures");
    let budgets = copy.path().join("budgets/egress.yaml");
    let text = std::fs::read_to_string(&budgets).expect("budgets/egress.yaml").replace("failoverSeconds: 30", &format!("failoverSeconds: {FAILOVER_SECONDS}"));
    assert!(text.contains(&format!("failoverSeconds: {FAILOVER_SECONDS}")), "the budgets file changed shape: {text}");
    std::fs::write(&budgets, text).expect("writing the budget");
    copy
}

fn main() -> std::process::ExitCode {
    let args = Arguments::from_args();
    let fixtures = fixtures_with_short_failover_budget();
    // SAFETY: set before any trial thread starts.
    unsafe { std::env::set_var("CNICONF_FIXTURES", fixtures.path()) };
    let mut trials = vec![Trial::test("healthy_lab_passes_every_egress_scenario", || check(None))];
    trials.extend(LabFault::EGRESS.map(|fault| Trial::test(format!("fault_{}_is_caught", fault.name().replace('-', "_")), move || check(Some(fault)))));
    libtest_mimic::run(&args, trials).exit_code()
}
