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

/// A figure as JUnit properties: its estimate, interval, samples, budget and outcome.
fn figure_properties(figure: &crate::verdict::performance::Figure) -> Vec<(&'static str, String)> {
    let mut properties = vec![
        ("statistic", crate::verdict::performance::quantile_name(figure.quantile)),
        ("estimate", figure.estimate.to_string()),
        ("low", figure.low.to_string()),
        ("high", figure.high.to_string()),
        ("level", figure.level.to_string()),
        ("unit", figure.unit.clone()),
        ("samples", figure.samples.len().to_string()),
        ("path", figure.path.clone()),
        ("outcome", format!("{:?}", figure.outcome).to_lowercase()),
    ];
    if let Some(budget) = &figure.budget {
        properties.push(("budget", budget.limit.to_string()));
        properties.push(("budget-text", figure.budget_text()));
    }
    properties
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
                    Property::new("cni.version.source", info.cni_version_source.as_str()),
                    Property::new("kernel", info.kernel.as_str()),
                    Property::new("cluster.ready_seconds", format!("{:.3}", info.ready_in.as_secs_f64())),
                    Property::new("run.purpose", info.purpose.title()),
                ]);
                for (i, component) in info.components.iter().enumerate() {
                    self.suite.add_property(Property::new(format!("component.{}", i + 1), component.describe()));
                }
            }
            RunEvent::ProvisioningFailed { error } => {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
                status.set_type("provisioning").set_message(*error);
                let case = self.case("Infrastructure/Provisioning", status, Duration::ZERO);
                self.suite.add_test_case(case);
            }
            RunEvent::TrialFinished(record) => {
                let status = match &record.outcome {
                    // A recommendation not met is not a failure: the case passes and says so
                    // in its properties and output (JUnit has no outcome between the two).
                    TrialOutcome::Passed(_) | TrialOutcome::Deviated(_) => TestCaseStatus::success(),
                    TrialOutcome::Failed(verdict) => {
                        let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                        status.set_type(verdict.reason.map(|r| r.describe()).unwrap_or("failed")).set_message(verdict.message()).set_description(format!(
                            "{}\n{}",
                            record.sentence,
                            verdict.message()
                        ));
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
                let mut out = Vec::new();
                if let TrialOutcome::Deviated(verdict) = &record.outcome {
                    case.add_property(Property::new("outcome", "deviates from a recommendation"));
                    case.add_property(Property::new("keyword", "SHOULD"));
                    out.push(format!(
                        "DEVIATES FROM A RECOMMENDATION (not a failure; CNICONF_SPEC_STRICT=1 makes it one)\n{}\n{}",
                        record.sentence,
                        verdict.message()
                    ));
                }
                if !record.provided_by_harness.is_empty() {
                    case.add_property(Property::new("provided-by-harness", record.provided_by_harness.join(", ")));
                }
                if let TrialOutcome::Passed(verdict) | TrialOutcome::Failed(verdict) = &record.outcome {
                    for counter in &verdict.counters {
                        case.add_property(Property::new(format!("counter.{}.{}", counter.subject, counter.name), counter.value.to_string()));
                    }
                    for figure in &verdict.figures {
                        for (key, value) in figure_properties(figure) {
                            case.add_property(Property::new(format!("figure.{}.{key}", figure.name), value));
                        }
                    }
                    for parameters in verdict.statistics.iter().filter(|p| p.family_false_fail_rate.is_some()) {
                        case.add_property(Property::new("statistics.false-fail-rate", parameters.false_fail_rate.to_string()));
                        case.add_property(Property::new("statistics.suite-false-fail-rate", parameters.family_false_fail_rate.unwrap_or_default().to_string()));
                        case.add_property(Property::new("statistics.suite-verdicts", parameters.family_verdicts.unwrap_or_default().to_string()));
                        case.add_property(Property::new(
                            "statistics.suite-false-fail-covers",
                            "the suite's split verdicts only; its timed and exact checks (liveness, every request answered, mirror copies) are outside it",
                        ));
                        case.add_property(Property::new("statistics.power", parameters.power.to_string()));
                        case.add_property(Property::new("statistics.requests", parameters.sample_size.to_string()));
                        if let Some(stopping) = &parameters.sequential {
                            case.add_property(Property::new("statistics.stopped", format!("look {} of {}: {}", stopping.look, stopping.looks, stopping.bound)));
                            case.add_property(Property::new("statistics.requests-worst-case", stopping.worst_case_requests.to_string()));
                            if let Some(average) = stopping.average_requests_when_correct {
                                case.add_property(Property::new("statistics.requests-average-when-correct", format!("{average:.0}")));
                            }
                        }
                    }
                    if let Some(parameters) = verdict.statistics.first().filter(|_| !verdict.figures.is_empty()) {
                        case.add_property(Property::new("statistics.false-fail-rate", parameters.false_fail_rate.to_string()));
                        case.add_property(Property::new("statistics.test", parameters.test.as_str()));
                    }
                }
                if let TrialOutcome::Passed(verdict) = &record.outcome {
                    out.push(verdict.message());
                }
                // The line GitHub's and Jenkins's JUnit reporters read as an attached file.
                if let Some(bundle) = &record.bundle {
                    case.add_property(Property::new("diagnostics-bundle", bundle.display().to_string()));
                    out.push(format!("diagnostics bundle: {}\n[[ATTACHMENT|{}]]", bundle.display(), bundle.display()));
                }
                if !out.is_empty() {
                    case.set_system_out(out.join("\n"));
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
        let written = report.to_string().map_err(|e| e.to_string()).and_then(|xml| write_atomically(&self.path, xml.as_bytes()).map_err(|e| e.to_string()));
        match written {
            Ok(()) => ReportResult { written: vec![self.path.clone()], problems: vec![] },
            Err(problem) => ReportResult { written: vec![], problems: vec![format!("JUnit report {}: {problem}", self.path.display())] },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::TrialRecord;
    use crate::verdict::{Evidence, FailureReason, Verdict};

    #[test]
    fn failures_with_terminal_escapes_and_markup_still_make_valid_xml() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junit.xml");
        let mut report = JunitReport::new(path.clone());
        report.on_event(&RunEvent::Started { suite: "s", provider: "lab", cni: "reference" });
        let verdict = Verdict {
            statistics: Vec::new(),
            counters: Vec::new(),
            figures: Vec::new(),
            check: "source <address> & \u{1b}[31mcolour\u{1b}[0m".into(),
            subject: "pod a/b".into(),
            passed: false,
            expected: Evidence::new("egress-ip", "1.2.3.4"),
            observed: Evidence::new("pod", "10.0.0.1"),
            reason: Some(FailureReason::WrongSource),
            look_at: String::new(),
        };
        let record = TrialRecord {
            scenario: "x".into(),
            sentence: "y".into(),
            outcome: TrialOutcome::Failed(verdict),
            duration: Duration::ZERO,
            provided_by_harness: vec!["lab reference egress gateway".into()],
            bundle: None,
        };
        report.on_event(&RunEvent::TrialFinished(&record));
        report.on_event(&RunEvent::Finished { elapsed: Duration::ZERO });
        let result = report.finish();
        assert_eq!(result.written, vec![path.clone()]);
        let xml = std::fs::read_to_string(&path).unwrap();
        assert!(!xml.contains('\u{1b}'), "no raw escape characters in XML");
        assert!(xml.contains("&lt;address&gt; &amp;"), "{xml}");
        assert!(xml.contains(r#"type="wrong source address""#), "{xml}");
        assert!(xml.contains(r#"<property name="provided-by-harness" value="lab reference egress gateway"/>"#), "{xml}");
    }

    /// A sequential split verdict's JUnit case states its error rates, the requests it took,
    /// where it stopped, its worst case and its average for a correct split.
    #[test]
    fn a_sequential_split_states_where_it_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junit.xml");
        let mut report = JunitReport::new(path.clone());
        report.on_event(&RunEvent::Started { suite: "s", provider: "lab", cni: "reference" });
        let criteria = crate::fixtures::load_canary_budgets(&crate::fixtures::fixture_path("budgets/canary.yaml")).unwrap().criteria();
        let plan = criteria.sequential_plan(&[50, 50]);
        let backends = [("a".to_owned(), 50), ("b".to_owned(), 50)];
        let counts = [plan.looks[2] / 2, plan.looks[2] - plan.looks[2] / 2];
        let (decision, split, stop) = plan.decide(2, &backends, &counts);
        assert_eq!(decision, crate::verdict::sequential::Decision::Passed);
        let verdict = plan.verdict(&split, &stop, "route r", "the Gateway");
        let record = TrialRecord {
            scenario: "x".into(),
            sentence: "y".into(),
            outcome: TrialOutcome::Passed(verdict),
            duration: Duration::ZERO,
            provided_by_harness: vec![],
            bundle: None,
        };
        report.on_event(&RunEvent::TrialFinished(&record));
        report.on_event(&RunEvent::Finished { elapsed: Duration::ZERO });
        assert!(report.finish().problems.is_empty());
        let xml = std::fs::read_to_string(&path).unwrap();
        for expected in [
            format!(r#"<property name="statistics.requests" value="{}"/>"#, plan.looks[2]),
            format!(
                r#"<property name="statistics.stopped" value="look 3 of 10: pass bound: every share shown within 5 points (5 points, or half its weight if less) at {} requests"/>"#,
                plan.looks[2]
            ),
            format!(r#"<property name="statistics.requests-worst-case" value="{}"/>"#, plan.worst_case()),
            format!(r#"<property name="statistics.requests-average-when-correct" value="{:.0}"/>"#, plan.average_when_correct().unwrap()),
            r#"<property name="statistics.suite-false-fail-rate" value="0.01"/>"#.to_owned(),
            "split verdicts only; its timed and exact checks (liveness, every request answered, mirror copies) are outside it".to_owned(),
        ] {
            assert!(xml.contains(&expected), "{expected} in {xml}");
        }
    }
}
