//! The JUnit XML report: a testcase per scenario, the evidence in each failure, and a
//! provisioning case when the cluster could not be built.

use std::path::PathBuf;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use super::{write_atomically, ReportResult, Reporter, RunEvent, TrialOutcome};

/// Collects the run and writes `junit.xml` when it finishes, failed or not.
pub struct JunitReport {
    path: PathBuf,
    suite: TestSuite,
    report_name: String,
}

impl JunitReport {
    pub fn new(path: PathBuf) -> Self {
        Self { path, suite: TestSuite::new("unnamed"), report_name: "cni-conformance".into() }
    }

    fn case(&self, name: &str, status: TestCaseStatus, time: Duration) -> TestCase {
        let mut case = TestCase::new(name, status);
        case.set_classname(self.suite.name.as_str()).set_time(time);
        case
    }
}

impl Reporter for JunitReport {
    fn on_event(&mut self, event: &RunEvent<'_>) {
        match event {
            RunEvent::Started { suite, provider, cni } => {
                self.suite = TestSuite::new(*suite);
                self.report_name = format!("cni-conformance {suite}");
                self.suite.add_properties([Property::new("provider", *provider), Property::new("cni", *cni)]);
            }
            RunEvent::ClusterReady(info) => {
                self.suite.add_properties([
                    Property::new("cluster", info.cluster.as_str()),
                    Property::new("cni.version", info.cni_version.as_str()),
                    Property::new("kernel", info.kernel.as_str()),
                    Property::new("cluster.ready_seconds", format!("{:.3}", info.ready_in.as_secs_f64())),
                ]);
            }
            RunEvent::ProvisioningFailed { error } => {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
                status.set_type("provisioning").set_message(*error);
                let case = self.case("Infrastructure/Provisioning", status, Duration::ZERO);
                self.suite.add_test_case(case);
            }
            RunEvent::TrialFinished(record) => {
                let status = match &record.outcome {
                    TrialOutcome::Passed(_) => TestCaseStatus::success(),
                    TrialOutcome::Failed(verdict) => {
                        let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                        status
                            .set_type(verdict.reason.map(|r| r.describe()).unwrap_or("failed"))
                            .set_message(verdict.message())
                            .set_description(format!("{}\n{}", record.sentence, verdict.message()));
                        status
                    }
                    TrialOutcome::Error(message) => {
                        let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
                        status.set_type("error").set_message(message.as_str());
                        status
                    }
                    TrialOutcome::Ignored(reason) => {
                        let mut status = TestCaseStatus::skipped();
                        status.set_message(reason.as_str());
                        status
                    }
                };
                let mut case = self.case(&record.scenario, status, record.duration);
                if let TrialOutcome::Passed(verdict) = &record.outcome {
                    case.set_system_out(verdict.message());
                }
                self.suite.add_test_case(case);
            }
            RunEvent::Finished { elapsed } => {
                self.suite.set_time(*elapsed);
            }
        }
    }

    fn finish(&mut self) -> ReportResult {
        let mut report = Report::new(self.report_name.as_str());
        report.add_test_suite(self.suite.clone());
        let written = report
            .to_string()
            .map_err(|e| e.to_string())
            .and_then(|xml| write_atomically(&self.path, xml.as_bytes()).map_err(|e| e.to_string()));
        match written {
            Ok(()) => ReportResult { written: vec![self.path.clone()], problems: vec![] },
            Err(problem) => ReportResult { written: vec![], problems: vec![format!("JUnit report {}: {problem}", self.path.display())] },
        }
    }
}
