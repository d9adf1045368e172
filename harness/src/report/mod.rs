//! Reports: every view of a run (JUnit, golden snapshots, the terminal summary) is a
//! consumer of one stream of [`RunEvent`]s, and [`Destinations`] is the one place that
//! decides where reports go.

pub mod conformance;
pub mod figures;
pub mod golden;
pub mod junit;
pub mod parts;
pub mod render;
pub mod summary;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{HarnessError, Result};
use crate::provider::ClusterInfo;
use crate::verdict::Verdict;

/// How one scenario ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TrialOutcome {
    Passed(Verdict),
    /// The verdict failed: the datapath did not do what the scenario says.
    Failed(Verdict),
    /// Every requirement (MUST) was met but a recommendation (SHOULD) of the specification
    /// it cites was not: shown apart, never a failure unless the run is strict.
    Deviated(Verdict),
    /// The scenario could not reach a verdict: set-up failed, a wait timed out, a panic.
    Error(String),
    /// The provider or CNI cannot host the scenario; the reason says why.
    Ignored(String),
}

impl TrialOutcome {
    /// A failed verdict or an error: what a diagnostics bundle is collected for.
    pub fn is_failure(&self) -> bool {
        matches!(self, TrialOutcome::Failed(_) | TrialOutcome::Error(_))
    }

    pub fn label(&self) -> &'static str {
        match self {
            TrialOutcome::Passed(_) => "passed",
            // A figure still straddling its budget at the cap is neither passed nor failed.
            TrialOutcome::Failed(v) if v.reason == Some(crate::verdict::FailureReason::Inconclusive) => "inconclusive",
            TrialOutcome::Failed(_) => "failed",
            TrialOutcome::Deviated(_) => "deviates",
            TrialOutcome::Error(_) => "error",
            TrialOutcome::Ignored(_) => "ignored",
        }
    }

    /// The line a person reads: the verdict's evidence, the error, or the reason.
    pub fn message(&self) -> String {
        match self {
            TrialOutcome::Passed(v) | TrialOutcome::Failed(v) | TrialOutcome::Deviated(v) => v.message(),
            TrialOutcome::Error(message) | TrialOutcome::Ignored(message) => message.clone(),
        }
    }
}

/// One finished scenario.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrialRecord {
    pub scenario: String,
    /// The sentence the scenario tests.
    pub sentence: String,
    pub outcome: TrialOutcome,
    pub duration: Duration,
    /// Harness components (reference implementations) that provided the scenario's features:
    /// the verdict is about them as much as about the CNI.
    #[serde(default)]
    pub provided_by_harness: Vec<String>,
    /// The trial's diagnostics bundle, where one was collected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<PathBuf>,
}

/// What happens during a suite run, in order.
#[derive(Debug)]
pub enum RunEvent<'a> {
    Started {
        suite: &'a str,
        provider: &'a str,
        cni: &'a str,
    },
    ClusterReady(&'a ClusterInfo),
    /// The cluster could not be built; every scenario fails with this.
    ProvisioningFailed {
        error: &'a str,
    },
    TrialFinished(&'a TrialRecord),
    Finished {
        elapsed: Duration,
    },
}

/// A consumer of the event stream.
pub trait Reporter: Send {
    fn on_event(&mut self, event: &RunEvent<'_>);
    /// Called once after `Finished`: writes files, returns what it wrote or what went wrong.
    fn finish(&mut self) -> ReportResult;
}

/// What a reporter wrote, and the problems that must fail the run (a golden mismatch).
#[derive(Debug, Default)]
pub struct ReportResult {
    pub written: Vec<PathBuf>,
    pub problems: Vec<String>,
}

/// Where a suite's reports go: `CNICONF_REPORT_DIR` (default `target/cni-conformance`)
/// for JUnit and summaries, `CNICONF_GOLDEN_DIR` (default `golden/`) for snapshots.
#[derive(Debug, Clone)]
pub struct Destinations {
    pub junit: PathBuf,
    /// The suite's conformance report (YAML).
    pub conformance: PathBuf,
    pub summary: PathBuf,
    /// The run's performance figures (`figures.json`), for `cargo xtask compare`.
    pub figures: PathBuf,
    pub golden: PathBuf,
    /// Where the processes of a multi-process run (nextest) leave their parts.
    pub parts: PathBuf,
    /// Where failed trials leave their diagnostics bundles, one directory each.
    pub bundles: PathBuf,
}

impl Destinations {
    pub fn for_suite(suite: &str) -> Self {
        let env_dir = |name: &str| std::env::var_os(name).map(PathBuf::from);
        let reports = env_dir("CNICONF_REPORT_DIR").unwrap_or_else(|| crate::project_root().join("target/cni-conformance"));
        // A profile named by its path is a vendor's: its records go with its reports, never
        // into the repository's `golden/`, which holds the shipped profiles' records.
        let vendors = std::env::var(crate::cni::CNI_VARIABLE).is_ok_and(|cni| cni.contains('/') || cni.ends_with(".yaml"));
        let golden = env_dir("CNICONF_GOLDEN_DIR").unwrap_or_else(|| if vendors { reports.join("golden") } else { crate::project_root().join("golden") });
        Self::in_dir(&reports, &golden, suite)
    }

    pub fn in_dir(reports: &Path, golden: &Path, suite: &str) -> Self {
        Self {
            junit: reports.join(suite).join("junit.xml"),
            conformance: reports.join(suite).join("conformance.yaml"),
            summary: reports.join(suite).join("summary.json"),
            figures: reports.join(suite).join("figures.json"),
            golden: golden.join(suite),
            parts: reports.join(suite).join("parts"),
            bundles: reports.join(suite).join("bundles"),
        }
    }

    /// Removes an earlier run's bundles: a run's are its own. The processes of a run of
    /// several share the directory, so only a run of one process clears it.
    pub fn clear_earlier_bundles(&self) {
        if crate::report::parts::multi_process_run_id().is_none() {
            let _ = std::fs::remove_dir_all(&self.bundles);
        }
    }

    /// The reporters of a run: JUnit, golden records and the summary; in a run of several
    /// processes, JUnit and the summary are merged from every process's part.
    pub fn reporters(&self) -> Vec<Box<dyn Reporter>> {
        self.reporters_with(true)
    }

    /// The reporters without golden records: for subjects the repository holds no records
    /// of (a vendor's own plugin), whose first run would otherwise fail on missing ones.
    pub fn reporters_without_golden(&self) -> Vec<Box<dyn Reporter>> {
        self.reporters_with(false)
    }

    fn reporters_with(&self, golden: bool) -> Vec<Box<dyn Reporter>> {
        let golden: Option<Box<dyn Reporter>> = golden.then(|| Box::new(golden::GoldenReport::new(self.golden.clone())) as Box<dyn Reporter>);
        match parts::multi_process_run_id() {
            Some(run_id) => golden.into_iter().chain([Box::new(parts::PartsReport::new(self, &run_id)) as Box<dyn Reporter>]).collect(),
            None => [
                Box::new(junit::JunitReport::new(self.junit.clone())) as Box<dyn Reporter>,
                Box::new(conformance::ConformanceReporter::new(self.conformance.clone())),
            ]
            .into_iter()
            .chain(golden)
            .chain([Box::new(summary::SummaryReport::new(self)) as Box<dyn Reporter>, Box::new(figures::FiguresReport::new(self.figures.clone()))])
            .collect(),
        }
    }
}

/// The stream: dispatches each event to every reporter, in order.
pub struct EventStream {
    reporters: Mutex<Vec<Box<dyn Reporter>>>,
}

impl EventStream {
    pub fn new(reporters: Vec<Box<dyn Reporter>>) -> Self {
        Self { reporters: Mutex::new(reporters) }
    }

    pub fn emit(&self, event: RunEvent<'_>) {
        for reporter in self.reporters.lock().unwrap_or_else(|e| e.into_inner()).iter_mut() {
            reporter.on_event(&event);
        }
    }

    pub fn finish(&self) -> ReportResult {
        let mut all = ReportResult::default();
        for reporter in self.reporters.lock().unwrap_or_else(|e| e.into_inner()).iter_mut() {
            let result = reporter.finish();
            all.written.extend(result.written);
            all.problems.extend(result.problems);
        }
        all
    }
}

/// Writes `contents` to `path` through a temporary file in the same directory and a
/// rename, so a reader never sees half a report.
pub fn write_atomically(path: &Path, contents: &[u8]) -> Result<()> {
    crate::files::write_atomically(path, contents).map_err(|e| HarnessError::Report { path: path.to_owned(), detail: e.to_string() })
}

/// The deterministic part of a trial: what golden files hold.
#[derive(Debug, Clone, Serialize)]
pub struct TrialDigest<'a> {
    pub scenario: &'a str,
    pub sentence: &'a str,
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<VerdictDigest<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignored_because: Option<&'a str>,
}

/// A verdict's deterministic part: the check, the roles and the reason, never raw detail.
#[derive(Debug, Clone, Serialize)]
pub struct VerdictDigest<'a> {
    pub check: &'a str,
    pub passed: bool,
    pub expected: RoleDigest<'a>,
    pub observed: RoleDigest<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<crate::verdict::FailureReason>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RoleDigest<'a> {
    pub role: &'a str,
}

impl<'a> From<&'a Verdict> for VerdictDigest<'a> {
    fn from(v: &'a Verdict) -> Self {
        Self {
            check: &v.check,
            passed: v.passed,
            expected: RoleDigest { role: &v.expected.role },
            observed: RoleDigest { role: &v.observed.role },
            reason: v.reason,
        }
    }
}

impl<'a> From<&'a TrialRecord> for TrialDigest<'a> {
    fn from(record: &'a TrialRecord) -> Self {
        let (verdict, ignored_because) = match &record.outcome {
            TrialOutcome::Passed(v) | TrialOutcome::Failed(v) | TrialOutcome::Deviated(v) => (Some(v), None),
            TrialOutcome::Ignored(reason) => (None, Some(reason.as_str())),
            TrialOutcome::Error(_) => (None, None),
        };
        Self {
            scenario: &record.scenario,
            sentence: &record.sentence,
            outcome: record.outcome.label(),
            verdict: verdict.map(VerdictDigest::from),
            ignored_because,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_atomic_write_replaces_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deep/report.xml");
        write_atomically(&path, b"first").unwrap();
        write_atomically(&path, b"second").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "second");
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary files stay behind");
    }
}
