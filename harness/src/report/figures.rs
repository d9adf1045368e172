//! The run's performance figures as a machine-readable file, `figures.json`: every figure
//! with its samples, for `cargo xtask compare` to judge an upgrade against a baseline.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{write_atomically, ReportResult, Reporter, RunEvent, TrialOutcome};
use crate::verdict::performance::Figure;

/// What `figures.json` holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FiguresFile {
    pub suite: String,
    pub cni: String,
    pub cni_version: String,
    pub provider: String,
    pub kernel: String,
    /// The machine class absolute budgets were looked up for.
    pub machine_class: String,
    pub figures: Vec<Figure>,
}

impl FiguresFile {
    /// Reads a `figures.json`, or the one in a suite's report directory.
    pub fn read(path: &std::path::Path) -> Result<Self, String> {
        let file = if path.is_dir() { path.join("figures.json") } else { path.to_owned() };
        let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: not a figures file ({e})", file.display()))
    }
}

/// Collects the figures of every verdict; writes them when the run measured any.
pub struct FiguresReport {
    file: FiguresFile,
    path: PathBuf,
}

impl FiguresReport {
    pub fn new(path: PathBuf) -> Self {
        Self { file: FiguresFile { machine_class: crate::fixtures::machine_class(), ..Default::default() }, path }
    }
}

impl Reporter for FiguresReport {
    fn on_event(&mut self, event: &RunEvent<'_>) {
        match event {
            RunEvent::Started { suite, provider, cni } => {
                (self.file.suite, self.file.provider, self.file.cni) = ((*suite).into(), (*provider).into(), (*cni).into());
            }
            RunEvent::ClusterReady(info) => {
                self.file.cni_version = info.cni_version.clone();
                self.file.kernel = info.kernel.clone();
            }
            RunEvent::TrialFinished(record) => {
                if let TrialOutcome::Passed(verdict) | TrialOutcome::Failed(verdict) = &record.outcome {
                    self.file.figures.extend(verdict.figures.iter().cloned());
                }
            }
            RunEvent::ProvisioningFailed { .. } | RunEvent::Finished { .. } => {}
        }
    }

    fn finish(&mut self) -> ReportResult {
        if self.file.figures.is_empty() {
            return ReportResult::default();
        }
        let json = serde_json::to_vec_pretty(&self.file).expect("figures serialize");
        match write_atomically(&self.path, &json) {
            Ok(()) => ReportResult { written: vec![self.path.clone()], problems: vec![] },
            Err(e) => ReportResult { written: vec![], problems: vec![e.to_string()] },
        }
    }
}
