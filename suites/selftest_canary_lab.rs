//! Self-test of canary_lab by fault injection into the lab's Gateway: wrong weights, a
//! backend down, mirroring off and a stale configuration each make exactly the scenarios
//! that should catch them fail, for the stated reason, and leave the rest passing.

use std::sync::Arc;

use harness::cni;
use harness::diagnostics::Collect;
use harness::provider::lab::{Lab, LabFault, LabOptions};
use harness::provider::Cluster;
use harness::report::TrialOutcome;
use harness::scenario::{run_scenarios_collecting, Collection};
use harness::scenarios::canary;
use harness::verdict::FailureReason::{self, ErrorAnswers, MirrorMismatch, SplitDeviates, StaleRoute};
use harness::Timeouts;
use libtest_mimic::{Arguments, Failed, Trial};

const STAGE_0: &str = "canary_at_0_percent_sends_the_new_version_nothing";
const STAGE_5: &str = "canary_stage_at_5_percent_is_honoured";
const STAGE_25: &str = "early_stage_at_25_percent_is_honoured";
const STAGE_50: &str = "mid_stage_at_50_percent_is_honoured";
const STAGE_75: &str = "late_stage_at_75_percent_is_honoured";
const STAGE_100: &str = "full_stage_at_100_percent_sends_everything_to_the_new_version";
const LIVE: &str = "new_weights_are_live_before_they_are_judged";
const MIRROR: &str = "mirrored_requests_reach_the_analyzer_while_clients_get_the_app";
const REPLICAS: &str = "replica_ratio_canary_splits_75_25_at_random";

fn expected_failures(fault: Option<LabFault>) -> Vec<(&'static str, FailureReason)> {
    match fault {
        None => vec![],
        // Swapping the first two weights leaves only the even split right.
        Some(LabFault::WrongWeights) => [STAGE_0, STAGE_5, STAGE_25, STAGE_75, STAGE_100].map(|s| (s, SplitDeviates)).into(),
        // The new version is down: the gateway sends its share to the stable one, or errors when it has all.
        Some(LabFault::BackendDown) => vec![
            (STAGE_5, SplitDeviates),
            (STAGE_25, SplitDeviates),
            (STAGE_50, SplitDeviates),
            (STAGE_75, SplitDeviates),
            (STAGE_100, ErrorAnswers),
            (LIVE, SplitDeviates),
        ],
        Some(LabFault::MirroringOff) => vec![(MIRROR, MirrorMismatch)],
        Some(LabFault::UniformProbabilities) => vec![(REPLICAS, SplitDeviates)],
        Some(LabFault::StaleConfig) => [STAGE_0, STAGE_5, STAGE_25, STAGE_50, STAGE_75, STAGE_100, LIVE, MIRROR].map(|s| (s, StaleRoute)).into(),
        Some(other) => panic!("{} is not a fault of the Gateway", other.name()),
    }
}

fn check(fault: Option<LabFault>) -> Result<(), Failed> {
    let options = fault.map(LabOptions::with_fault).unwrap_or_default();
    let cluster: Arc<dyn Cluster> = Arc::new(Lab::provision(&cni::reference(), &options).map_err(|e| e.to_string())?);
    let bundles = tempfile::tempdir().map_err(|e| e.to_string())?;
    let collection = Collection { root: bundles.path().to_owned(), mode: Collect::Failures, profile_commands: vec![] };
    let outcomes = run_scenarios_collecting(&cluster, &canary::all(), &Timeouts::default(), Some(&collection));
    cluster.teardown().map_err(|e| e.to_string())?;
    let expected = expected_failures(fault);
    let mut wrong = Vec::new();
    for (scenario, outcome, bundle) in &outcomes {
        wrong.extend(harness::diagnostics::bundle_problems(scenario, outcome.is_failure(), bundle.as_deref()));
        // A split that deviates is read against the routes the Gateway served.
        if let (TrialOutcome::Failed(_), Some(bundle)) = (outcome, bundle) {
            if !std::fs::read_to_string(bundle.join("components/lab-gateway-nginx.conf")).is_ok_and(|conf| conf.contains("listen ")) {
                wrong.push(format!("{scenario}: the bundle should hold the Gateway's routes as served (components/lab-gateway-nginx.conf)"));
            }
        }
        match (expected.iter().find(|(name, _)| name == scenario), outcome) {
            (None, TrialOutcome::Passed(_)) => {}
            (None, other) => wrong.push(format!("{scenario} should pass but {}: {}", other.label(), other.message())),
            (Some((_, reason)), TrialOutcome::Failed(verdict)) if verdict.reason == Some(*reason) => {
                let message = verdict.message();
                if !(message.contains("expected") && message.contains("observed")) {
                    wrong.push(format!("{scenario}: the message does not name expected and observed: {message}"));
                }
            }
            (Some((_, reason)), other) => wrong.push(format!("{scenario} should fail with {} but {}: {}", reason.describe(), other.label(), other.message())),
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(wrong.join("\n").into())
    }
}

/// A copy of the fixtures for this test, which is about reasons, not the budgets' values:
/// a shorter convergence budget (a stale route is reported after twice the budget; 5 s
/// still leaves room for two labs loading side by side on two cores), and a suite false-fail
/// budget of 0.6 % instead of 1 % (0.1 % per split verdict), since the random split is judged once in each of the six
/// labs and a chance failure would be misread as a caught fault.
fn fixtures_with_short_budget() -> tempfile::TempDir {
    let copy = tempfile::tempdir().expect("a temporary directory");
    let status = std::process::Command::new("cp").arg("-r").arg(harness::fixtures::fixtures_dir().join(".")).arg(copy.path()).status().expect("cp runs");
    assert!(status.success(), "copying the fixtures");
    let budgets = copy.path().join("budgets/canary.yaml");
    let text = std::fs::read_to_string(&budgets)
        .expect("budgets/canary.yaml")
        .replace("convergeSeconds: 10", "convergeSeconds: 5")
        .replace("suiteFalseFail: 0.01", "suiteFalseFail: 0.006");
    assert!(text.contains("convergeSeconds: 5") && text.contains("suiteFalseFail: 0.006"), "the budgets file changed shape: {text}");
    std::fs::write(&budgets, text).expect("writing the budget");
    copy
}

fn main() -> std::process::ExitCode {
    let args = Arguments::from_args();
    let fixtures = fixtures_with_short_budget();
    // SAFETY: set before any trial thread starts.
    unsafe { std::env::set_var("CNICONF_FIXTURES", fixtures.path()) };
    let mut trials = vec![Trial::test("healthy_gateway_passes_every_canary_scenario", || check(None))];
    trials.extend(LabFault::GATEWAY.map(|fault| Trial::test(format!("fault_{}_is_caught", fault.name().replace('-', "_")), move || check(Some(fault)))));
    libtest_mimic::run(&args, trials).exit_code()
}
