//! Budget verdicts: a measured duration against the budget a fixture states.

use std::time::Duration;

use super::{Evidence, FailureReason, Verdict};

/// Was `measured` within `budget`? The roles say only which side of the budget it fell.
pub fn within(check: &str, subject: &str, budget: Duration, measured: Duration, look_at: &str) -> Verdict {
    let over = measured > budget;
    Verdict {
        statistics: Vec::new(),
        counters: Vec::new(),
        figures: Vec::new(),
        check: check.to_owned(),
        subject: subject.to_owned(),
        passed: !over,
        expected: Evidence::new("within-budget", format!("at most {:.1}s", budget.as_secs_f64())),
        observed: Evidence::new(if over { "over-budget" } else { "within-budget" }, format!("{:.1}s", measured.as_secs_f64())),
        reason: over.then_some(FailureReason::OverBudget),
        look_at: look_at.to_owned(),
    }
}

/// A wait for something to happen within `budget` ran out (`wait`, after `waited`) before
/// it happened at all: over budget, and never done.
pub fn never_within(check: &str, subject: &str, budget: Duration, waited: Duration, never: &str, wait: &str, look_at: &str) -> Verdict {
    let mut verdict = within(check, subject, budget, waited.max(budget + Duration::from_millis(1)), look_at);
    verdict.observed = Evidence::new("never", format!("{never} after {:.1}s ({wait} ran out)", waited.as_secs_f64()));
    verdict
}

/// The first failing verdict, else the last: a scenario with several checks fails for the
/// first one that did not hold. The statistical parameters of every check are kept.
pub fn all_of(verdicts: impl IntoIterator<Item = Verdict>) -> Verdict {
    let verdicts: Vec<Verdict> = verdicts.into_iter().collect();
    let statistics: Vec<_> = verdicts.iter().flat_map(|v| v.statistics.clone()).collect();
    let counters: Vec<_> = verdicts.iter().flat_map(|v| v.counters.clone()).collect();
    let figures: Vec<_> = verdicts.iter().flat_map(|v| v.figures.clone()).collect();
    let mut chosen = verdicts.iter().find(|v| !v.passed).or(verdicts.last()).cloned().expect("at least one verdict");
    chosen.statistics = statistics;
    chosen.counters = counters;
    chosen.figures = figures;
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_budget_fails_and_says_by_how_much() {
        let verdict = within("egress IP failover time", "egress policy p", Duration::from_secs(30), Duration::from_secs(42), "the CNI's agent");
        assert_eq!(verdict.reason, Some(FailureReason::OverBudget));
        assert!(verdict.message().contains("expected within-budget (at most 30.0s), observed over-budget (42.0s)"), "{}", verdict.message());
        assert!(within("t", "s", Duration::from_secs(30), Duration::from_secs(30), "").passed);
    }

    #[test]
    fn a_wait_that_ran_out_fails_as_never_done_and_names_the_wait() {
        let verdict = never_within(
            "egress IP failover time",
            "egress policy p",
            Duration::from_secs(30),
            Duration::from_secs(60),
            "still on node w1",
            "twice failoverSeconds",
            "the CNI's agent",
        );
        assert!(!verdict.passed && verdict.reason == Some(FailureReason::OverBudget) && verdict.observed.role == "never", "{}", verdict.message());
        assert!(verdict.message().contains("observed never (still on node w1 after 60.0s (twice failoverSeconds ran out))"), "{}", verdict.message());
        let early = never_within("t", "s", Duration::from_secs(30), Duration::from_secs(1), "not done", "w", "");
        assert!(!early.passed, "a wait cut short is still never done");
    }

    #[test]
    fn all_of_reports_the_first_failure() {
        let ok = within("a", "s", Duration::from_secs(2), Duration::from_secs(1), "");
        let late = within("b", "s", Duration::from_secs(1), Duration::from_secs(2), "");
        assert_eq!(all_of([ok.clone(), late.clone()]).check, "b");
        assert_eq!(all_of([ok.clone()]).check, "a");
    }
}
