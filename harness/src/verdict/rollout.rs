//! Rollout verdicts: a new route version is live (not just accepted) within its budget,
//! every request is answered by a backend, and a mirror gets one copy per request.

use std::time::Duration;

use cni_probe::LoadReport;

use super::{Evidence, FailureReason, Verdict};

/// How a route's new version went live, as measured from outside.
#[derive(Debug, Clone, PartialEq)]
pub struct Convergence {
    pub generation: u64,
    /// A whole batch of answers carried the new generation.
    pub live: bool,
    pub elapsed: Duration,
    /// Generations seen in the last batch, by value ("" for answers without one).
    pub last_seen: std::collections::BTreeMap<String, u64>,
}

/// Was the new version live within `budget`? A stale version is not a slow one.
pub fn live_within(route: &str, convergence: &Convergence, budget: Duration) -> Verdict {
    let seen = convergence.last_seen.iter().map(|(g, n)| format!("{n} x generation {}", if g.is_empty() { "none" } else { g })).collect::<Vec<_>>().join(", ");
    let (role, reason, detail) = match (convergence.live, convergence.elapsed <= budget) {
        (true, true) => ("new-route-live", None, format!("live after {:.2}s", convergence.elapsed.as_secs_f64())),
        (true, false) => ("slow-to-converge", Some(FailureReason::OverBudget), format!("live only after {:.2}s", convergence.elapsed.as_secs_f64())),
        (false, _) => ("stale-route", Some(FailureReason::StaleRoute), format!("after {:.2}s still {seen}", convergence.elapsed.as_secs_f64())),
    };
    Verdict {
        statistics: Vec::new(),
        counters: Vec::new(),
        figures: Vec::new(),
        check: "new route version live".into(),
        subject: format!("route {route}"),
        passed: reason.is_none(),
        expected: Evidence::new("new-route-live", format!("every answer from generation {} within {:.1}s", convergence.generation, budget.as_secs_f64())),
        observed: Evidence::new(role, detail),
        reason,
        look_at: "the Gateway's configuration reload (is the route programmed, and is the new version served?)".into(),
    }
}

/// Did every request of `report` get an HTTP 200 from one of `backends`?
pub fn answered_by_backends(route: &str, report: &LoadReport, backends: &[String]) -> Verdict {
    let by_backends: u64 = backends.iter().filter_map(|b| report.by_server.get(b)).sum();
    let problems: Vec<String> = report
        .by_status
        .iter()
        .filter(|(status, _)| **status != 200)
        .map(|(status, n)| format!("{n} x HTTP {status}"))
        .chain(report.failures.iter().map(|(kind, n)| format!("{n} x {kind}")))
        .chain(report.by_server.iter().filter(|(s, _)| !backends.contains(s)).map(|(s, n)| format!("{n} answered by {s}")))
        .chain(report.odd_answers.iter().map(|a| format!("such as {a:?}")))
        .collect();
    let passed = by_backends == report.requests && problems.is_empty();
    Verdict {
        statistics: Vec::new(),
        counters: Vec::new(),
        figures: Vec::new(),
        check: "every request answered by a backend".into(),
        subject: format!("route {route}"),
        passed,
        expected: Evidence::new("all-answered", format!("{} of {} answered by {}", report.requests, report.requests, backends.join(", "))),
        observed: Evidence::new(if passed { "all-answered" } else { "errors" }, if passed { format!("{by_backends} answered") } else { problems.join(", ") }),
        reason: (!passed).then_some(FailureReason::ErrorAnswers),
        look_at: "the route's backends and the Gateway's upstreams".into(),
    }
}

/// Did the mirror get a copy of each of the `sent` requests?
pub fn mirrored(route: &str, sent: u64, copies: u64) -> Verdict {
    let passed = copies == sent;
    Verdict {
        statistics: Vec::new(),
        counters: Vec::new(),
        figures: Vec::new(),
        check: "a copy of every request at the mirror".into(),
        subject: format!("route {route}"),
        passed,
        expected: Evidence::new("copy-per-request", format!("{sent} copies")),
        observed: Evidence::new(
            if passed {
                "copy-per-request"
            } else if copies < sent {
                "copies-missing"
            } else {
                "extra-copies"
            },
            match copies.cmp(&sent) {
                std::cmp::Ordering::Less => format!("{copies} copies: {} missing", sent - copies),
                std::cmp::Ordering::Greater => {
                    format!("{copies} copies: {} extra (requests copied more than once, or counted that were not sent)", copies - sent)
                }
                std::cmp::Ordering::Equal => format!("{copies} copies"),
            },
        ),
        reason: (!passed).then_some(FailureReason::MirrorMismatch),
        look_at: "the route's RequestMirror filter and the Gateway's mirror configuration".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn convergence(live: bool, seconds: u64) -> Convergence {
        Convergence { generation: 2, live, elapsed: Duration::from_secs(seconds), last_seen: BTreeMap::from([("1".to_owned(), 20)]) }
    }

    #[test]
    fn stale_is_not_slow() {
        let stale = live_within("r", &convergence(false, 20), Duration::from_secs(10));
        assert_eq!((stale.reason, stale.observed.role.as_str()), (Some(FailureReason::StaleRoute), "stale-route"));
        assert!(stale.message().contains("still 20 x generation 1"), "{}", stale.message());
        let slow = live_within("r", &convergence(true, 12), Duration::from_secs(10));
        assert_eq!(slow.reason, Some(FailureReason::OverBudget));
        assert!(live_within("r", &convergence(true, 1), Duration::from_secs(10)).passed);
    }

    #[test]
    fn errors_and_strangers_are_not_backend_answers() {
        let mut report = LoadReport { requests: 10, ..Default::default() };
        report.by_server.insert("v1".into(), 8);
        report.by_status.insert(200, 8);
        report.by_status.insert(502, 2);
        let verdict = answered_by_backends("r", &report, &["v1".into(), "v2".into()]);
        assert_eq!(verdict.reason, Some(FailureReason::ErrorAnswers));
        assert!(verdict.message().contains("2 x HTTP 502"), "{}", verdict.message());
    }

    #[test]
    fn missing_copies_fail_the_mirror() {
        assert!(mirrored("r", 100, 100).passed);
        let missing = mirrored("r", 100, 0);
        assert_eq!((missing.reason, missing.observed.role.as_str()), (Some(FailureReason::MirrorMismatch), "copies-missing"));
        assert!(missing.message().contains("100 missing"), "{}", missing.message());
        let extra = mirrored("r", 100, 103);
        assert_eq!(extra.observed.role, "extra-copies");
        assert!(extra.message().contains("3 extra") && !extra.message().contains("missing"), "{}", extra.message());
    }
}
