//! The terminal summary (each scenario, its verdict and evidence, where the reports are)
//! and its machine-readable twin `summary.json`, which `cargo xtask certify` collects.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{write_atomically, Destinations, ReportResult, Reporter, RunEvent, TrialOutcome};

/// A suite run as `summary.json` holds it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SuiteSummary {
    pub suite: String,
    pub provider: String,
    pub cni: String,
    pub cni_version: String,
    pub kernel: String,
    pub cluster_ready_seconds: Option<f64>,
    /// What the run was for: a certification, or a self-test of the suites.
    #[serde(default)]
    pub purpose: Option<crate::provider::components::Purpose>,
    #[serde(default)]
    pub components: Vec<crate::provider::components::Component>,
    pub provisioning_error: Option<String>,
    pub elapsed_seconds: f64,
    pub scenarios: Vec<ScenarioSummary>,
    pub junit: PathBuf,
    pub golden: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioSummary {
    pub scenario: String,
    pub outcome: String,
    pub evidence: String,
    pub seconds: f64,
    #[serde(default)]
    pub provided_by_harness: Vec<String>,
}

impl SuiteSummary {
    /// The block printed after a run.
    pub fn render(&self) -> String {
        let purpose = self.purpose.map(|p| format!(": {}", p.title())).unwrap_or_default();
        let mut out = format!("\n{} on {}{purpose} (CNI {} {}, kernel {})", self.suite, self.provider, self.cni, self.cni_version, self.kernel);
        match (self.cluster_ready_seconds, &self.provisioning_error) {
            (_, Some(error)) => out.push_str(&format!("\n  cluster could not be provisioned: {error}")),
            (Some(ready), None) => out.push_str(&format!(", cluster ready in {ready:.2}s")),
            _ => {}
        }
        for component in &self.components {
            out.push_str(&format!("\n  {}", component.describe()));
        }
        for scenario in &self.scenarios {
            out.push_str(&format!("\n  {:<8} {}\n           {}", scenario.outcome.to_uppercase(), scenario.scenario, scenario.evidence));
            if !scenario.provided_by_harness.is_empty() {
                out.push_str(&format!("\n           provided by the harness, not the CNI: {}", scenario.provided_by_harness.join(", ")));
            }
        }
        out.push_str(&format!("\n  suite time {:.2}s\n  junit:  {}\n  golden: {}\n", self.elapsed_seconds, self.junit.display(), self.golden.display()));
        out
    }
}

pub struct SummaryReport {
    summary: SuiteSummary,
    path: PathBuf,
}

impl SummaryReport {
    pub fn new(destinations: &Destinations) -> Self {
        let summary = SuiteSummary { junit: destinations.junit.clone(), golden: destinations.golden.clone(), ..Default::default() };
        Self { summary, path: destinations.summary.clone() }
    }
}

fn seconds(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1000.0).round() / 1000.0
}

impl Reporter for SummaryReport {
    fn on_event(&mut self, event: &RunEvent<'_>) {
        let summary = &mut self.summary;
        match event {
            RunEvent::Started { suite, provider, cni } => {
                (summary.suite, summary.provider, summary.cni) = ((*suite).into(), (*provider).into(), (*cni).into());
            }
            RunEvent::ClusterReady(info) => {
                summary.cni_version = info.cni_version.clone();
                summary.kernel = info.kernel.clone();
                summary.cluster_ready_seconds = Some(seconds(info.ready_in));
                summary.purpose = Some(info.purpose);
                summary.components = info.components.clone();
            }
            RunEvent::ProvisioningFailed { error } => summary.provisioning_error = Some((*error).to_owned()),
            RunEvent::TrialFinished(record) => summary.scenarios.push(ScenarioSummary {
                scenario: record.scenario.clone(),
                outcome: record.outcome.label().to_owned(),
                evidence: match &record.outcome {
                    TrialOutcome::Ignored(reason) => format!("ignored: {reason}"),
                    other => other.message(),
                },
                seconds: seconds(record.duration),
                provided_by_harness: record.provided_by_harness.clone(),
            }),
            RunEvent::Finished { elapsed } => summary.elapsed_seconds = seconds(*elapsed),
        }
    }

    fn finish(&mut self) -> ReportResult {
        eprintln!("{}", self.summary.render());
        let json = serde_json::to_vec_pretty(&self.summary).expect("summary serializes");
        match write_atomically(&self.path, &json) {
            Ok(()) => ReportResult { written: vec![self.path.clone()], problems: vec![] },
            Err(e) => ReportResult { written: vec![], problems: vec![e.to_string()] },
        }
    }
}
