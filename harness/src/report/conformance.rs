//! The conformance report a vendor publishes: one typed, versioned YAML document per run
//! (learned from Gateway API's `ConformanceReport`): the implementation and its version,
//! date, harness version and commit, provider, kernel, cluster shape, what is under test
//! and what the harness provided, and per suite and scenario the result, skip reasons,
//! the evidence with its numbers, and the parameters of every statistical verdict.
//! `cargo xtask certify` merges the suites of one certification into one such document.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{write_atomically, ReportResult, Reporter, RunEvent, TrialOutcome};
use crate::provider::components::{Component, Purpose};
use crate::report::TrialRecord;
use crate::verdict::{Evidence, StatisticalParameters, Verdict};

/// The schema of this report; bumped on any change a reader would notice.
pub const API_VERSION: &str = "cni-conformance.dev/v1alpha1";
pub const KIND: &str = "ConformanceReport";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConformanceReport {
    pub api_version: String,
    pub kind: String,
    /// When the report was written, RFC 3339, UTC.
    pub date: String,
    pub harness: HarnessInfo,
    pub implementation: Implementation,
    pub purpose: Option<Purpose>,
    pub provider: String,
    pub kernel: String,
    pub cluster: String,
    pub components: Vec<Component>,
    pub suites: Vec<SuiteResult>,
    /// The families (suites) a certification meant to run that never ran: it was
    /// interrupted. Any makes the outcome [`Outcome::Incomplete`] (unless one that ran failed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_run: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HarnessInfo {
    pub version: String,
    /// The commit the harness was built from, when built from a git checkout.
    pub git_commit: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Implementation {
    pub name: String,
    pub version: String,
    pub version_source: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Success,
    Failure,
    /// Some scenarios were skipped with a reason; none failed.
    Partial,
    /// Every scenario was skipped.
    Skipped,
    /// The run was interrupted: some of what it meant to run never ran (`notRun`).
    Incomplete,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Statistics {
    pub passed: u32,
    pub failed: u32,
    /// Checks that met every MUST but not a SHOULD they cite: shown apart, not failed.
    #[serde(default)]
    pub deviated: u32,
    pub errored: u32,
    pub skipped: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SuiteResult {
    pub name: String,
    pub result: Outcome,
    pub statistics: Statistics,
    pub provisioning_error: Option<String>,
    pub elapsed_seconds: f64,
    pub scenarios: Vec<ScenarioResult>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScenarioResult {
    pub name: String,
    pub sentence: String,
    /// passed, failed, error, ignored
    pub result: String,
    pub skip_reason: Option<String>,
    pub error: Option<String>,
    /// The verdict with its evidence and statistical parameters.
    pub verdict: Option<Verdict>,
    pub provided_by_harness: Vec<String>,
    pub seconds: f64,
    /// Where the trial's diagnostics bundle is, when one was collected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<String>,
}

impl SuiteResult {
    fn outcome(statistics: &Statistics) -> Outcome {
        match statistics {
            s if s.failed + s.errored > 0 => Outcome::Failure,
            s if s.passed + s.deviated == 0 => Outcome::Skipped,
            s if s.skipped > 0 => Outcome::Partial,
            _ => Outcome::Success,
        }
    }
}

impl ConformanceReport {
    pub fn to_yaml(&self) -> String {
        serde_saphyr::to_string(self).expect("the report serializes")
    }

    pub fn from_yaml(text: &str) -> Result<Self, String> {
        serde_saphyr::from_str(text).map_err(|e| e.to_string())
    }

    /// One report from the reports of several suites of the same implementation and run.
    pub fn merge(mut reports: Vec<ConformanceReport>) -> Option<ConformanceReport> {
        let mut merged = reports.first()?.clone();
        merged.suites = reports.iter_mut().flat_map(|r| std::mem::take(&mut r.suites)).collect();
        for report in &reports {
            for component in &report.components {
                if !merged.components.contains(component) {
                    merged.components.push(component.clone());
                }
            }
        }
        Some(merged)
    }

    /// The whole certification's outcome: the worst of its suites.
    pub fn outcome(&self) -> Outcome {
        let mut statistics = Statistics::default();
        for suite in &self.suites {
            statistics.passed += suite.statistics.passed;
            statistics.failed += suite.statistics.failed;
            statistics.deviated += suite.statistics.deviated;
            statistics.errored += suite.statistics.errored;
            statistics.skipped += suite.statistics.skipped;
        }
        match SuiteResult::outcome(&statistics) {
            Outcome::Failure => Outcome::Failure,
            _ if !self.not_run.is_empty() => Outcome::Incomplete,
            outcome => outcome,
        }
    }
}

/// The harness's version and, when built in a git checkout, its commit.
pub fn harness_info() -> HarnessInfo {
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(crate::workspace_root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    HarnessInfo { version: env!("CARGO_PKG_VERSION").into(), git_commit: commit }
}

/// Now, as RFC 3339 in UTC, to the second.
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now().round(jiff::Unit::Second).map(|t| t.to_string()).unwrap_or_default()
}

/// GitHub Actions' job summary file: Markdown appended there shows on the run's page.
pub const STEP_SUMMARY_VARIABLE: &str = "GITHUB_STEP_SUMMARY";

/// Appends `text` to the file at `path`.
pub fn append(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::OpenOptions::new().create(true).append(true).open(path)?.write_all(text.as_bytes())
}

/// Writes `conformance.yaml` for a suite run, failed or not; in GitHub Actions it also
/// appends the Markdown rendering to the job summary.
pub struct ConformanceReporter {
    path: PathBuf,
    report: ConformanceReport,
    suite: SuiteResult,
}

impl ConformanceReporter {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            report: ConformanceReport {
                api_version: API_VERSION.into(),
                kind: KIND.into(),
                date: String::new(),
                harness: harness_info(),
                implementation: Implementation { name: String::new(), version: String::new(), version_source: String::new() },
                purpose: None,
                provider: String::new(),
                kernel: String::new(),
                cluster: String::new(),
                components: vec![],
                not_run: vec![],
                suites: vec![],
            },
            suite: SuiteResult {
                name: String::new(),
                result: Outcome::Skipped,
                statistics: Statistics::default(),
                provisioning_error: None,
                elapsed_seconds: 0.0,
                scenarios: vec![],
            },
        }
    }
}

impl Reporter for ConformanceReporter {
    fn on_event(&mut self, event: &RunEvent<'_>) {
        match event {
            RunEvent::Started { suite, provider, cni } => {
                self.suite.name = (*suite).into();
                self.report.provider = (*provider).into();
                self.report.implementation.name = (*cni).into();
            }
            RunEvent::ClusterReady(info) => {
                self.report.implementation =
                    Implementation { name: info.cni.clone(), version: info.cni_version.clone(), version_source: info.cni_version_source.clone() };
                self.report.purpose = Some(info.purpose);
                self.report.kernel = info.kernel.clone();
                self.report.cluster = info.cluster.clone();
                self.report.components = info.components.clone();
            }
            RunEvent::ProvisioningFailed { error } => self.suite.provisioning_error = Some((*error).into()),
            RunEvent::TrialFinished(record) => {
                let statistics = &mut self.suite.statistics;
                let (verdict, skip_reason, error) = match &record.outcome {
                    TrialOutcome::Passed(v) => {
                        statistics.passed += 1;
                        (Some(v.clone()), None, None)
                    }
                    TrialOutcome::Failed(v) => {
                        statistics.failed += 1;
                        (Some(v.clone()), None, None)
                    }
                    TrialOutcome::Deviated(v) => {
                        statistics.deviated += 1;
                        (Some(v.clone()), None, None)
                    }
                    TrialOutcome::Error(e) => {
                        statistics.errored += 1;
                        (None, None, Some(e.clone()))
                    }
                    TrialOutcome::Ignored(reason) => {
                        statistics.skipped += 1;
                        (None, Some(reason.clone()), None)
                    }
                };
                self.suite.scenarios.push(ScenarioResult {
                    name: record.scenario.clone(),
                    sentence: record.sentence.clone(),
                    result: record.outcome.label().into(),
                    skip_reason,
                    error,
                    verdict,
                    provided_by_harness: record.provided_by_harness.clone(),
                    seconds: (record.duration.as_secs_f64() * 1000.0).round() / 1000.0,
                    bundle: record.bundle.as_ref().map(|b| b.display().to_string()),
                });
            }
            RunEvent::Finished { elapsed } => self.suite.elapsed_seconds = (elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
        }
    }

    fn finish(&mut self) -> ReportResult {
        self.suite.result = SuiteResult::outcome(&self.suite.statistics);
        self.report.date = now_rfc3339();
        self.report.suites = vec![self.suite.clone()];
        let mut result = match write_atomically(&self.path, self.report.to_yaml().as_bytes()) {
            Ok(()) => ReportResult { written: vec![self.path.clone()], problems: vec![] },
            Err(e) => ReportResult { written: vec![], problems: vec![e.to_string()] },
        };
        // In GitHub Actions the run's summary page (and so the pull request) shows it.
        if let Some(summary) = std::env::var_os(STEP_SUMMARY_VARIABLE) {
            if let Err(e) = append(std::path::Path::new(&summary), &super::render::markdown(&self.report)) {
                result.problems.push(format!("{STEP_SUMMARY_VARIABLE} {}: {e}", std::path::Path::new(&summary).display()));
            }
        }
        result
    }
}

/// A report of a canary run whose values are fixed (date and commit included): what the
/// renderings are tested and shown with.
#[doc(hidden)]
pub fn example_report() -> ConformanceReport {
    let dir = tempfile::tempdir().unwrap();
    let mut reporter = ConformanceReporter::new(dir.path().join("conformance.yaml"));
    reporter.on_event(&RunEvent::Started { suite: "canary_lab", provider: "lab", cni: "reference" });
    let info = crate::provider::ClusterInfo {
        provider: "lab".into(),
        cluster: "cniconf-0a1b2c".into(),
        run_id: "0a1b2c".into(),
        cni: "reference".into(),
        cni_version: "as installed".into(),
        cni_version_source: "each plugin's own version, under components".into(),
        kernel: "6.18.0".into(),
        ready_in: Duration::from_millis(70),
        purpose: Purpose::SelfTest,
        components: crate::provider::components::lab_reference_parts(&crate::cni::reference())
            .into_iter()
            .map(|mut c| {
                c.version = "fixed".into();
                c
            })
            .collect(),
    };
    reporter.on_event(&RunEvent::ClusterReady(&info));
    let verdict = crate::verdict::Verdict {
        check: "traffic split across backends".into(),
        subject: "route current-weather-route-t2-0a1b2c".into(),
        passed: true,
        expected: Evidence::new("split-as-weighted", "every share within 5 points"),
        observed: Evidence::new("split-as-weighted", "v2: 23 of 446"),
        reason: None,
        look_at: "the Gateway's upstream weights".into(),
        statistics: vec![StatisticalParameters {
            test: "exact binomial".into(),
            false_fail_rate: 0.01,
            family_false_fail_rate: None,
            family_verdicts: None,
            power: 0.95,
            detectable_deviation: 0.05,
            sample_size: 446,
            sequential: None,
            estimates: vec![
                crate::verdict::Estimate { name: "current-weather-pod-1".into(), expected: 0.95, observed: 0.948, low: 0.918, high: 0.969, count: 423 },
                crate::verdict::Estimate { name: "current-weather-pod-2".into(), expected: 0.05, observed: 0.052, low: 0.031, high: 0.082, count: 23 },
            ],
        }],
        counters: Vec::new(),
        figures: Vec::new(),
    };
    let record = |name: &str, outcome| TrialRecord {
        scenario: name.into(),
        sentence: "s".into(),
        outcome,
        duration: Duration::from_millis(812),
        bundle: None,
        provided_by_harness: vec!["lab-reference-nginx".into()],
    };
    reporter.on_event(&RunEvent::TrialFinished(&record("canary_stage_at_5_percent_is_honoured", TrialOutcome::Passed(verdict))));
    reporter.on_event(&RunEvent::TrialFinished(&record(
        "mirrored_requests_reach_the_analyzer_while_clients_get_the_app",
        TrialOutcome::Ignored("no mirror".into()),
    )));
    reporter.on_event(&RunEvent::Finished { elapsed: Duration::from_secs(2) });
    assert!(reporter.finish().problems.is_empty());
    let mut report = ConformanceReport::from_yaml(&std::fs::read_to_string(dir.path().join("conformance.yaml")).unwrap()).unwrap();
    report.date = "2026-11-22T00:00:00Z".into();
    report.harness.git_commit = Some("0000000000000000000000000000000000000000".into());
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_round_trips_and_reads_as_its_snapshot() {
        let report = example_report();
        assert_eq!(ConformanceReport::from_yaml(&report.to_yaml()).unwrap(), report, "YAML round trip");
        assert_eq!(report.suites[0].result, Outcome::Partial);
        insta::assert_snapshot!("conformance_report", report.to_yaml());
    }

    #[test]
    fn an_unknown_field_is_refused_so_the_schema_stays_stable() {
        let text = example_report().to_yaml().replace("kernel:", "kernal:");
        assert!(ConformanceReport::from_yaml(&text).unwrap_err().contains("kernal"));
    }

    #[test]
    fn dates_are_rfc3339_utc() {
        let date = now_rfc3339();
        assert!(date.len() == 20 && date.ends_with('Z') && date.starts_with("20"), "{date}");
    }
}
