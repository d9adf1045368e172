//! `cargo xtask compare` on figures measured for real on the lab: two runs of the same
//! version report no regression; a run with a slowed NIC reports the paths it slowed.
//! (The lab finds the probe next to this test's binary: `cargo test --workspace` builds it.)

use std::sync::Arc;

use assert_cmd::Command;
use harness::cni;
use harness::provider::lab::{Lab, LabFault, LabOptions};
use harness::provider::Cluster;
use harness::report::figures::FiguresReport;
use harness::report::{Reporter, RunEvent, TrialRecord};
use harness::scenario::run_scenario;
use predicates::str::contains;

/// Measures pod-to-pod throughput across nodes (with its underlay baseline) on a lab with
/// `fault`, and writes the run's `figures.json` in `dir` as a suite run does.
fn measured_run(dir: &std::path::Path, fault: Option<LabFault>) -> std::path::PathBuf {
    let options = fault.map(LabOptions::with_fault).unwrap_or_default();
    let lab: Arc<dyn Cluster> = Arc::new(Lab::provision(&cni::reference(), &options).expect("a lab (run as root after `cargo xtask deps`)"));
    let scenario = harness::scenarios::performance::all().into_iter().find(|s| s.name == "tcp_throughput_across_nodes_keeps_up_with_the_underlay").unwrap();
    let outcome = run_scenario(&lab, &scenario, &harness::provider::lab::timeouts(), "t1");
    let path = dir.join("figures.json");
    let mut report = FiguresReport::new(path.clone());
    report.on_event(&RunEvent::Started { suite: "perf_lab", provider: "lab", cni: "reference" });
    report.on_event(&RunEvent::ClusterReady(lab.info()));
    let record = TrialRecord {
        scenario: scenario.name.into(),
        sentence: scenario.sentence.into(),
        outcome,
        duration: Default::default(),
        provided_by_harness: vec![],
        bundle: None,
    };
    report.on_event(&RunEvent::TrialFinished(&record));
    let written = report.finish();
    lab.teardown().unwrap();
    assert!(written.problems.is_empty() && path.exists(), "{:?}; {}", written.problems, record.outcome.message());
    path
}

#[test]
fn compare_reports_no_regression_between_runs_of_one_version_and_the_paths_a_slowed_nic_slowed() {
    let dir = tempfile::tempdir().unwrap();
    let [baseline, again, slowed] = ["baseline", "again", "slowed"].map(|name| dir.path().join(name));
    let baseline = measured_run(&baseline, None);
    let again = measured_run(&again, None);
    let slowed = measured_run(&slowed, Some(LabFault::NicRateLimit));
    let xtask = || Command::cargo_bin("xtask").unwrap();
    xtask()
        .args(["compare"])
        .arg(&baseline)
        .arg(&again)
        .assert()
        .success()
        .stdout(contains("no significant regression"))
        .stdout(contains("throughput.pod-to-pod.across-nodes"));
    xtask()
        .args(["compare"])
        .arg(&baseline)
        .arg(&slowed)
        .assert()
        .failure()
        .stdout(contains("REGRESSION"))
        .stderr(contains("significant regression of more than 10% in throughput.pod-to-pod.across-nodes, throughput.node-to-node.underlay"));
}

#[test]
fn compare_names_a_missing_or_foreign_file() {
    let dir = tempfile::tempdir().unwrap();
    let foreign = dir.path().join("junit.xml");
    std::fs::write(&foreign, "<testsuites/>").unwrap();
    Command::cargo_bin("xtask").unwrap().args(["compare"]).arg(&foreign).arg(&foreign).assert().failure().stderr(contains("junit.xml: not a figures file"));
    Command::cargo_bin("xtask").unwrap().args(["compare", "/nonexistent"]).assert().failure().stderr(contains("1 paths given; expected: compare <baseline"));
    Command::cargo_bin("xtask")
        .unwrap()
        .args(["compare", "a", "b", "--alpha", "5"])
        .assert()
        .failure()
        .stderr(contains("--alpha 5: expected a share between 0 and 1"));
}
