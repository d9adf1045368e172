//! Reports of a run split over processes. nextest runs one process per test, so each
//! process records its events in a part file of its own; then, under a lock, it merges every
//! part of the same run into the suite's JUnit and summary. Whichever process ends last,
//! the files then hold every scenario of the run. Parts of older runs are removed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::junit::JunitReport;
use super::summary::SummaryReport;
use super::{write_atomically, Destinations, ReportResult, Reporter, RunEvent, TrialRecord};
use crate::provider::ClusterInfo;

/// The id of the multi-process run this process is part of, if any.
pub fn multi_process_run_id() -> Option<String> {
    crate::provider::runs::multi_process_run().map(|run| run.id)
}

/// A [`RunEvent`] owned, as a part file holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum RecordedEvent {
    Started { suite: String, provider: String, cni: String },
    ClusterReady(ClusterInfo),
    ProvisioningFailed { error: String },
    TrialFinished(TrialRecord),
    Finished { elapsed: Duration },
}

impl RecordedEvent {
    fn of(event: &RunEvent<'_>) -> Self {
        match event {
            RunEvent::Started { suite, provider, cni } => Self::Started { suite: (*suite).into(), provider: (*provider).into(), cni: (*cni).into() },
            RunEvent::ClusterReady(info) => Self::ClusterReady((*info).clone()),
            RunEvent::ProvisioningFailed { error } => Self::ProvisioningFailed { error: (*error).into() },
            RunEvent::TrialFinished(record) => Self::TrialFinished((*record).clone()),
            RunEvent::Finished { elapsed } => Self::Finished { elapsed: *elapsed },
        }
    }

    fn as_event(&self) -> RunEvent<'_> {
        match self {
            Self::Started { suite, provider, cni } => RunEvent::Started { suite, provider, cni },
            Self::ClusterReady(info) => RunEvent::ClusterReady(info),
            Self::ProvisioningFailed { error } => RunEvent::ProvisioningFailed { error },
            Self::TrialFinished(record) => RunEvent::TrialFinished(record),
            Self::Finished { elapsed } => RunEvent::Finished { elapsed: *elapsed },
        }
    }
}

/// One process's share of a run.
#[derive(Debug, Serialize, Deserialize)]
struct Part {
    run_id: String,
    events: Vec<RecordedEvent>,
}

/// Records this process's events; at the end merges all parts of the run into the suite's
/// JUnit and summary files.
pub struct PartsReport {
    run_id: String,
    destinations: Destinations,
    part: PathBuf,
    events: Vec<RecordedEvent>,
}

impl PartsReport {
    pub fn new(destinations: &Destinations, run_id: &str) -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let part = destinations.parts.join(format!("{}-{nanos}.json", std::process::id()));
        Self { run_id: run_id.to_owned(), destinations: destinations.clone(), part, events: Vec::new() }
    }

    /// Under the parts lock: this run's parts (older runs' are removed), merged.
    fn merge_all(&self) -> std::io::Result<Vec<RecordedEvent>> {
        let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(self.destinations.parts.join(".lock"))?;
        lock.lock()?;
        let mut parts = Vec::new();
        let mut names: Vec<PathBuf> =
            std::fs::read_dir(&self.destinations.parts)?.filter_map(|e| Some(e.ok()?.path())).filter(|p| p.extension().is_some_and(|e| e == "json")).collect();
        names.sort();
        for path in names {
            match read_part(&path) {
                Some(part) if part.run_id == self.run_id => parts.push(part),
                // Another run's part, or one cut short: it belongs to no report of this run.
                _ => drop(std::fs::remove_file(&path)),
            }
        }
        Ok(merge(parts))
    }
}

fn read_part(path: &Path) -> Option<Part> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// One run's events from all its parts: the first start and cluster, every provisioning
/// failure and trial, and the longest elapsed time.
fn merge(parts: Vec<Part>) -> Vec<RecordedEvent> {
    let all: Vec<RecordedEvent> = parts.into_iter().flat_map(|p| p.events).collect();
    let mut merged: Vec<RecordedEvent> = Vec::new();
    merged.extend(all.iter().find(|e| matches!(e, RecordedEvent::Started { .. })).cloned());
    merged.extend(all.iter().find(|e| matches!(e, RecordedEvent::ClusterReady(_))).cloned());
    let mut failures: Vec<&String> = all.iter().filter_map(|e| if let RecordedEvent::ProvisioningFailed { error } = e { Some(error) } else { None }).collect();
    failures.dedup();
    merged.extend(failures.into_iter().map(|error| RecordedEvent::ProvisioningFailed { error: error.clone() }));
    merged.extend(all.iter().filter(|e| matches!(e, RecordedEvent::TrialFinished(_))).cloned());
    let elapsed = all.iter().filter_map(|e| if let RecordedEvent::Finished { elapsed } = e { Some(*elapsed) } else { None }).max().unwrap_or_default();
    merged.push(RecordedEvent::Finished { elapsed });
    merged
}

impl Reporter for PartsReport {
    fn on_event(&mut self, event: &RunEvent<'_>) {
        self.events.push(RecordedEvent::of(event));
    }

    fn finish(&mut self) -> ReportResult {
        let part = Part { run_id: self.run_id.clone(), events: std::mem::take(&mut self.events) };
        if let Err(e) = write_atomically(&self.part, &serde_json::to_vec(&part).expect("events serialize")) {
            return ReportResult { written: vec![], problems: vec![e.to_string()] };
        }
        let merged = match self.merge_all() {
            Ok(merged) => merged,
            Err(e) => {
                return ReportResult { written: vec![], problems: vec![format!("merging the report parts in {}: {e}", self.destinations.parts.display())] }
            }
        };
        let mut result = ReportResult::default();
        let reporters: [Box<dyn Reporter>; 4] = [
            Box::new(JunitReport::new(self.destinations.junit.clone())),
            Box::new(super::conformance::ConformanceReporter::new(self.destinations.conformance.clone())),
            Box::new(SummaryReport::new(&self.destinations)),
            Box::new(super::figures::FiguresReport::new(self.destinations.figures.clone())),
        ];
        for mut reporter in reporters {
            for event in &merged {
                reporter.on_event(&event.as_event());
            }
            let written = reporter.finish();
            result.written.extend(written.written);
            result.problems.extend(written.problems);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::TrialOutcome;

    fn process(destinations: &Destinations, run_id: &str, scenario: &str) {
        let mut part = PartsReport::new(destinations, run_id);
        part.on_event(&RunEvent::Started { suite: "egress_kind", provider: "kind", cni: "antrea" });
        let record = TrialRecord {
            scenario: scenario.into(),
            sentence: "s".into(),
            outcome: TrialOutcome::Ignored("r".into()),
            duration: Duration::from_millis(5),
            provided_by_harness: vec![],
            bundle: None,
        };
        part.on_event(&RunEvent::TrialFinished(&record));
        part.on_event(&RunEvent::Finished { elapsed: Duration::from_secs(1) });
        assert!(part.finish().problems.is_empty());
    }

    #[test]
    fn every_process_of_a_run_ends_up_in_one_junit_file() {
        let dir = tempfile::tempdir().unwrap();
        let destinations = Destinations::in_dir(dir.path(), dir.path(), "egress_kind");
        process(&destinations, "run-1", "from_an_older_run");
        for scenario in ["first", "second", "third"] {
            process(&destinations, "run-2", scenario);
        }
        let xml = std::fs::read_to_string(&destinations.junit).unwrap();
        for scenario in ["first", "second", "third"] {
            assert!(xml.contains(&format!("name=\"{scenario}\"")), "{scenario} in {xml}");
        }
        assert!(!xml.contains("from_an_older_run"), "{xml}");
        let summary: crate::report::summary::SuiteSummary = serde_json::from_slice(&std::fs::read(&destinations.summary).unwrap()).unwrap();
        assert_eq!(summary.scenarios.len(), 3);
        let parts = std::fs::read_dir(&destinations.parts).unwrap().filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "json")).count();
        assert_eq!(parts, 3, "the older run's part is gone");
    }
}
