//! Golden snapshots through insta: one named record per scenario and CNI, holding only
//! what is deterministic (outcome, check, the *roles* of expected and observed
//! addresses, the failure reason), never addresses, ports or timings.
//!
//! Ignored and errored trials are not recorded: whether a tool is installed or a wait
//! timed out says nothing about the CNI (JUnit has them). A mismatch fails the run;
//! accept a reviewed change with `INSTA_UPDATE=always`.

use std::path::PathBuf;

use super::{ReportResult, Reporter, RunEvent, TrialDigest, TrialOutcome};

pub struct GoldenReport {
    dir: PathBuf,
    cni: String,
    compared: Vec<PathBuf>,
    mismatches: Vec<String>,
    provisioning_failed: bool,
}

impl GoldenReport {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir, cni: String::new(), compared: vec![], mismatches: vec![], provisioning_failed: false }
    }
}

/// The golden file's text for a trial: YAML of its deterministic digest.
pub fn render(digest: &TrialDigest<'_>) -> String {
    serde_saphyr::to_string(digest).expect("a trial digest serializes")
}

impl Reporter for GoldenReport {
    fn on_event(&mut self, event: &RunEvent<'_>) {
        match event {
            RunEvent::Started { cni, .. } => self.cni = (*cni).to_owned(),
            RunEvent::ProvisioningFailed { .. } => self.provisioning_failed = true,
            // Without a cluster there is nothing deterministic to compare; JUnit has the failure.
            RunEvent::TrialFinished(record)
                if !self.provisioning_failed && matches!(record.outcome, TrialOutcome::Passed(_) | TrialOutcome::Failed(_) | TrialOutcome::Deviated(_)) =>
            {
                let name = format!("{}__{}", self.cni, record.scenario);
                let content = render(&TrialDigest::from(*record));
                let path = self.dir.join(format!("{name}.snap"));
                if !path.exists() {
                    // A first run has nothing to compare with: its record is the first one,
                    // to be reviewed and committed, not a mismatch.
                    match super::write_atomically(&path, format!("---\nsource: harness/src/report/golden.rs\n---\n{content}").as_bytes()) {
                        Ok(()) => {
                            tracing::info!("first golden record of {name}: {} (review and keep it to compare later runs)", path.display());
                            self.compared.push(path);
                        }
                        Err(e) => self.mismatches.push(format!("{name} (the first record could not be written: {e})")),
                    }
                    return;
                }
                let dir = self.dir.clone();
                let snapshot_name = name.clone();
                let compared = std::panic::catch_unwind(move || {
                    let mut settings = insta::Settings::clone_current();
                    settings.set_snapshot_path(dir);
                    settings.set_prepend_module_to_snapshot(false);
                    settings.set_omit_expression(true);
                    settings.bind(|| insta::assert_snapshot!(snapshot_name, content));
                });
                self.compared.push(self.dir.join(format!("{name}.snap")));
                if compared.is_err() {
                    self.mismatches.push(name);
                }
            }
            _ => {}
        }
    }

    fn finish(&mut self) -> ReportResult {
        let problems = self
            .mismatches
            .iter()
            .map(|name| {
                format!(
                    "golden record {}/{name}.snap does not match this run; review the diff above and accept it with `INSTA_UPDATE=always`",
                    self.dir.display()
                )
            })
            .collect();
        ReportResult { written: self.compared.clone(), problems }
    }
}
