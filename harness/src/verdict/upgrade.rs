//! Upgrade verdicts: what one CNI version makes, the next one (or the previous, after a
//! rollback) must still CHECK, DEL without leftovers, and reach, and IPAM must never hand
//! out an address twice.

use std::net::IpAddr;

use std::time::Duration;

use cni_probe::hold::{HoldEnd, HoldReport};
use cni_probe::Observation;

use super::performance::Figure;
use super::regression::{self, RegressionCriteria};
use super::snat::{AddressBook, ExpectedSource};
use super::{reach, Counter, Evidence, FailureReason, Verdict};
use crate::model::Pod;

/// One request to the external echo while an upgrade ran: when it was sent (from the
/// first sample) and what came back.
#[derive(Debug, Clone)]
pub struct SourceSample {
    pub at: Duration,
    pub seen: Observation,
}

/// Where a moment falls against the upgrade's `window`, for a reader.
fn phase(at: Duration, window: &std::ops::Range<Duration>) -> &'static str {
    if at < window.start {
        "before the switch"
    } else if at <= window.end {
        "during the switch"
    } else {
        "after the switch"
    }
}

/// Was every pod's traffic, sampled continuously while the CNI was upgraded from `from` to
/// `to` (`window`: when the switch ran), seen outside with its own expected source (a
/// selected pod's the egress IP, an unselected one's its node's), with no stretch without
/// an answer longer than `budget`? A wrong source fails first (naming the pod, what it was
/// seen with and when), then a silence over budget; requests that got no answer are not
/// wrong sources, and are counted.
pub fn sources_kept(
    to: &str,
    from: &str,
    sampled: &[(Pod, ExpectedSource, Vec<SourceSample>)],
    window: &std::ops::Range<Duration>,
    budget: Duration,
    book: &AddressBook,
) -> Verdict {
    let mut summaries = Vec::new();
    let mut wrong: Option<(String, Vec<String>)> = None;
    let mut longest: Option<(String, Duration)> = None;
    for (pod, expected, samples) in sampled {
        let name = format!("{}/{}", pod.namespace, pod.name);
        let mut roles = std::collections::BTreeMap::<&str, usize>::new();
        let mut first_wrong = None;
        let mut unanswered = 0;
        // From the first sample to the last, the longest stretch between two answers
        // with the expected source (or from an end to the nearest such answer).
        let (mut last_right, mut gap) = (samples.first().map(|s| s.at), Duration::ZERO);
        for sample in samples {
            match &sample.seen {
                Observation::Answered { reply } => {
                    let (role, detail) = book.describe(reply.client.ip(), pod);
                    *roles.entry(role.name()).or_default() += 1;
                    if reply.client.ip() == expected.address {
                        gap = gap.max(sample.at.saturating_sub(last_right.unwrap_or(sample.at)));
                        last_right = Some(sample.at);
                    } else if first_wrong.is_none() {
                        first_wrong = Some(format!("{detail} at {:.2} s, {}", sample.at.as_secs_f64(), phase(sample.at, window)));
                    }
                }
                _ => unanswered += 1,
            }
        }
        if let (Some(last), Some(end)) = (last_right, samples.last()) {
            gap = gap.max(end.at.saturating_sub(last));
        }
        let seen = roles.iter().map(|(role, n)| format!("{role} {n}")).collect::<Vec<_>>().join(", ");
        summaries.push(format!(
            "{name}: {} samples ({seen}; {unanswered} unanswered), longest without {} {} ms",
            samples.len(),
            expected.role.name(),
            gap.as_millis()
        ));
        if let (Some(first), None) = (first_wrong, &wrong) {
            wrong = Some((
                format!(
                    "{name} seen as {} (expected {}), first {first}",
                    roles.keys().filter(|r| **r != expected.role.name()).copied().collect::<Vec<_>>().join(" and "),
                    expected.description
                ),
                vec![expected.look_at.clone()],
            ));
        }
        if longest.as_ref().is_none_or(|(_, g)| gap > *g) {
            longest = Some((name, gap));
        }
    }
    let summary = summaries.join("; ");
    let switch = format!("switch from {:.2} s to {:.2} s", window.start.as_secs_f64(), window.end.as_secs_f64());
    let empty = sampled.iter().find(|(_, _, samples)| samples.is_empty());
    let (observed, reason, look_at) = match (wrong, longest, empty) {
        (Some((what, look_at)), _, _) => {
            (Evidence::new("wrong-source", format!("{what}; {summary}; {switch}")), Some(FailureReason::WrongSource), look_at.join("; "))
        }
        (None, _, Some((pod, _, _))) => {
            (Evidence::new("no-samples", format!("pod {}/{} took no sample", pod.namespace, pod.name)), Some(FailureReason::ProbeFailed), String::new())
        }
        (None, Some((name, gap)), None) if gap > budget => (
            Evidence::new(
                "silence-over-budget",
                format!("{name} went {} ms without its source (budget {} ms); {summary}; {switch}", gap.as_millis(), budget.as_millis()),
            ),
            Some(FailureReason::OverBudget),
            format!("what the upgrade to {to} replaces on the pods' way out (routes to the gateway node, NAT chains) and how long it is missing"),
        ),
        _ => (Evidence::new("every-source-kept", format!("{summary}; {switch}")), None, String::new()),
    };
    let pods = sampled.iter().map(|(pod, expected, _)| format!("{}/{} ({})", pod.namespace, pod.name, expected.role.name())).collect::<Vec<_>>().join(", ");
    verdict(
        "source addresses seen outside through an upgrade",
        format!("pods {pods}, sampled while {from} was upgraded to {to}"),
        reason.is_none(),
        Evidence::new(
            "every-source-kept",
            format!(
                "every answer with the pod's own expected source, before, during and after the switch; no stretch without it longer than {} ms",
                budget.as_millis()
            ),
        ),
        observed,
        reason,
        match look_at.is_empty() {
            true => String::new(),
            false => format!("{look_at}, as the upgrade to {to} left it"),
        },
    )
}

fn verdict(check: &str, subject: String, passed: bool, expected: Evidence, observed: Evidence, reason: Option<FailureReason>, look_at: String) -> Verdict {
    Verdict {
        statistics: Vec::new(),
        counters: Vec::new(),
        figures: Vec::new(),
        check: check.into(),
        subject,
        passed,
        expected,
        observed,
        reason: (!passed).then_some(reason).flatten(),
        look_at,
    }
}

/// Did CNI CHECK by `checker` (the version the nodes run now) pass on every pod `maker`
/// made? `checks` are each pod's name and the error its CHECK returned, if any.
pub fn every_pod_checks(checker: &str, maker: &str, checks: &[(String, Option<String>)]) -> Verdict {
    let failed: Vec<String> = checks.iter().filter_map(|(pod, error)| error.as_ref().map(|e| format!("{pod}: {e}"))).collect();
    let pods = checks.iter().map(|(pod, _)| pod.as_str()).collect::<Vec<_>>().join(", ");
    verdict(
        "CNI CHECK of pods across versions",
        format!("pods {pods}, made by {maker}, checked by {checker}"),
        failed.is_empty() && !checks.is_empty(),
        Evidence::new("every-pod-checks", format!("CHECK by {checker} succeeds on each of the {} pods {maker} made", checks.len())),
        match failed.is_empty() {
            true => Evidence::new("every-pod-checks", format!("CHECK succeeded on {pods}")),
            false => Evidence::new("check-failed", format!("{} of {} failed: {}", failed.len(), checks.len(), failed.join("; "))),
        },
        Some(FailureReason::CheckFailed),
        format!("what {checker}'s CHECK reads that {maker} writes differently (its state files, chains, the cached result's version)"),
    )
}

/// A verdict that blames the crossing of versions (`across`: what `version` did to pods
/// another version made) ruled on by its control, `control`: the same operation by the same
/// version on pods it made itself, with the same features, in the same trial. Only a
/// failure the control does not share is the upgrade's; when the control fails too, the
/// outcome says the fault is the version's own (reason [`FailureReason::VersionsOwnFault`]),
/// with both results as evidence. A passing control is named beside the cross-version
/// evidence, so a reader sees the blame was ruled in.
pub fn ruled_by_control(across: Verdict, version: &str, kind: Control, control: &Verdict) -> Verdict {
    let control_said = format!("control, {version} {}: {}", kind.what(), control.observed.detail);
    // The same fault: the control fell short as the cross-version check did (its observed
    // role). A control that fell short otherwise (its DEL took away what an old pod holds,
    // as a renumbered IPAM's does) was itself hit by the crossing of versions.
    let shares_the_fault = !control.passed && control.observed.role == across.observed.role;
    match (across.passed, control.passed, shares_the_fault) {
        (true, _, _) => Verdict { observed: Evidence::new(across.observed.role.clone(), format!("{}; {control_said}", across.observed.detail)), ..across },
        (false, true, _) => Verdict {
            observed: Evidence::new(across.observed.role.clone(), format!("{}; {control_said} (so the fault is {})", across.observed.detail, kind.blamed())),
            ..across
        },
        (false, false, false) => Verdict {
            observed: Evidence::new(
                across.observed.role.clone(),
                format!(
                    "{}; {control_said} (it fell short otherwise, as {}, not {}: not the same fault, so {} is to blame)",
                    across.observed.detail,
                    control.observed.role,
                    across.observed.role,
                    kind.blamed()
                ),
            ),
            ..across
        },
        (false, false, true) => Verdict {
            observed: Evidence::new(kind.role(), format!("across versions: {}; {control_said}", across.observed.detail)),
            reason: Some(FailureReason::VersionsOwnFault),
            look_at: format!("{version} itself, not the upgrade: it fails the same {} ({})", kind.what(), control.subject),
            ..across
        },
    }
}

/// What a control ran: the same version on pods it made itself (a CHECK or DEL across
/// versions), or the same connections held as long before the upgrade, with nothing
/// upgraded (connections held through it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    ItsOwnPods,
    NothingUpgraded,
}

impl Control {
    fn what(self) -> &'static str {
        match self {
            Control::ItsOwnPods => "on pods it made itself",
            Control::NothingUpgraded => "holding the same connections as long, with nothing upgraded",
        }
    }

    fn blamed(self) -> &'static str {
        match self {
            Control::ItsOwnPods => "the crossing of versions",
            Control::NothingUpgraded => "the upgrade",
        }
    }

    /// The observed role when the control shares the fault.
    pub fn role(self) -> &'static str {
        match self {
            Control::ItsOwnPods => "fails-on-its-own-pods-too",
            Control::NothingUpgraded => "fails-with-nothing-upgraded-too",
        }
    }
}

/// A precondition the old version `from` did not meet before anything was upgraded (a
/// selected pod not leaving with the egress IP): the upgrade cannot be blamed, the outcome
/// is that version's own fault, with what it did as the evidence.
pub fn fails_before_the_upgrade(before: Verdict, from: &str) -> Verdict {
    Verdict {
        subject: format!("before any upgrade, under {from}: {}", before.subject),
        observed: Evidence::new(
            "fails-before-the-upgrade",
            format!("under {from}, with nothing upgraded: {} ({})", before.observed.detail, before.observed.role),
        ),
        reason: Some(FailureReason::VersionsOwnFault),
        look_at: format!("{from} itself, not the upgrade: {}", before.look_at),
        ..before
    }
}

/// Did connections held under `version` with nothing upgraded (a control) stay open, with no
/// gap over `budget`? Judged as [`connections_held`] judges them through an upgrade.
pub fn connections_held_with_nothing_upgraded(version: &str, held: &[(String, HoldReport)], budget: Duration) -> Verdict {
    let mut verdict = connections_held_through(&format!("held under {version}, with nothing upgraded"), held, budget);
    verdict.look_at = format!(
        "what on the connections' path under {version} breaks them with nothing changing: conntrack timeouts, rules that reject or drop established traffic"
    );
    verdict
}

/// Several named parts of one scenario as one verdict: the first failing part, or, when
/// every part passed, the last part's verdict with every part's evidence in it (a passing
/// rollback shows its CHECK, reach and DEL, not only the last).
pub fn every_part<const N: usize>(parts: [(&str, Verdict); N]) -> Verdict {
    let evidence = parts.iter().map(|(name, v)| format!("{name}: {}", v.observed.detail)).collect::<Vec<_>>().join(" | ");
    let all_passed = parts.iter().all(|(_, v)| v.passed);
    let mut verdict = super::budget::all_of(parts.into_iter().map(|(_, v)| v));
    if all_passed {
        verdict.observed.detail = evidence;
    }
    verdict
}

/// Did DEL by `deleter` of a pod `maker` made succeed and leave its node as before the pod
/// (`leftovers`: the node's changes, as `cni_spec` words them)?
pub fn del_leaves_nothing(pod: &str, node: &str, deleter: &str, maker: &str, del_error: Option<&str>, leftovers: &[String]) -> Verdict {
    let mut problems: Vec<String> = del_error.map(|e| format!("DEL failed: {e}")).into_iter().collect();
    problems.extend(leftovers.iter().cloned());
    verdict(
        "what DEL leaves on the node across versions",
        format!("pod {pod} on node {node}, made by {maker}, deleted by {deleter}"),
        problems.is_empty(),
        Evidence::new(
            "node-as-before",
            "DEL succeeds and the node's links, addresses, routes, rules, iptables and nft, qdiscs, IPAM files and BPF pins are as before the pod",
        ),
        match (del_error, leftovers.is_empty()) {
            (None, true) => Evidence::new("node-as-before", "nothing of the pod left"),
            (Some(_), _) => Evidence::new("del-failed", problems.join("; ")),
            (None, false) if leftovers.iter().any(|l| l.starts_with("left behind")) => Evidence::new("left-behind", problems.join("; ")),
            // Only what the node had before the pod is gone: the DEL took away another's.
            (None, false) => Evidence::new("took-away", problems.join("; ")),
        },
        Some(FailureReason::LeftBehind),
        format!("what {maker} made for the pod that {deleter}'s DEL does not find or read (state file names and formats, chain names, pin paths)"),
    )
}

/// Do pods of both versions reach each other (`requests`: client, server, what the client
/// saw), and does every pod hold an address no other pod holds (`addresses`)? `new` made
/// the pods made last, `old` the others.
pub fn versions_reach_each_other(new: &str, old: &str, requests: &[(String, String, Observation)], addresses: &[(String, IpAddr)]) -> Verdict {
    let mut shared = Vec::new();
    for (i, (pod, address)) in addresses.iter().enumerate() {
        if let Some((other, _)) = addresses[..i].iter().find(|(_, a)| a == address) {
            shared.push(format!("{pod} and {other} both hold {address}"));
        }
    }
    let expected = Evidence::new(
        "reached-with-distinct-addresses",
        format!("each of {} requests between old and new pods answered, every pod's address its own", requests.len()),
    );
    let subject =
        format!("pods made by {new} and by {old}: {}", addresses.iter().map(|(pod, address)| format!("{pod} ({address})")).collect::<Vec<_>>().join(", "));
    if !shared.is_empty() {
        let look_at = format!("the IPAM state {new} reads: an address {old} handed out must stay taken");
        return verdict(
            "reach and addresses across versions",
            subject,
            false,
            expected,
            Evidence::new("address-reused", shared.join("; ")),
            Some(FailureReason::AddressReused),
            look_at,
        );
    }
    let failed = requests.iter().find(|(_, _, observation)| !matches!(observation, Observation::Answered { .. }));
    match failed {
        None => verdict(
            "reach and addresses across versions",
            subject,
            true,
            expected.clone(),
            Evidence::new(expected.role.clone(), format!("{} requests answered", requests.len())),
            None,
            String::new(),
        ),
        Some((client, server, observation)) => {
            let (observed, reason) = reach::unanswered(observation);
            let unanswered = requests
                .iter()
                .filter(|(_, _, o)| !matches!(o, Observation::Answered { .. }))
                .map(|(c, s, o)| format!("{c} -> {s}: {}", o.kind()))
                .collect::<Vec<_>>()
                .join("; ");
            let observed = Evidence::new(observed.role, format!("{unanswered}; first: {client} -> {server}: {}", observed.detail));
            verdict(
                "reach and addresses across versions",
                subject,
                false,
                expected,
                observed,
                reason,
                format!("the route and bridge between {client} and {server}: one was made by {old}, one by {new}"),
            )
        }
    }
}

/// Did every connection opened before the upgrade to `to` (from `from`) stay open through
/// it, echoing with no gap longer than `budget`? `held`: each connection's name and report.
/// A reset or close fails it first, then a gap over budget, then one never opened.
pub fn connections_held(to: &str, from: &str, held: &[(String, HoldReport)], budget: Duration) -> Verdict {
    let mut verdict = connections_held_through(&format!("opened under {from}, held while it was upgraded to {to}"), held, budget);
    verdict.look_at = format!("what the upgrade to {to} touches on the connections' path: NAT and filter chains flushed or rebuilt, conntrack entries, routes or links replaced while they carry traffic");
    verdict
}

/// Connections `how` ("held while ..."), each open to the end with no gap over `budget`.
fn connections_held_through(how: &str, held: &[(String, HoldReport)], budget: Duration) -> Verdict {
    let gaps = held
        .iter()
        .map(|(name, r)| format!("{name}: longest gap {} ms over {} exchanges, {}", r.longest_gap_ms, r.exchanges, ending(&r.ended)))
        .collect::<Vec<_>>()
        .join("; ");
    let names = held.iter().map(|(name, r)| format!("{name} ({})", r.to)).collect::<Vec<_>>().join(", ");
    let reset = held.iter().find(|(_, r)| matches!(r.ended, HoldEnd::Reset { .. } | HoldEnd::Closed | HoldEnd::Failed { .. }));
    let stalled = held.iter().filter(|(_, r)| Duration::from_millis(r.longest_gap_ms) > budget).max_by_key(|(_, r)| r.longest_gap_ms);
    let never = held.iter().find(|(_, r)| matches!(r.ended, HoldEnd::NeverConnected { .. }));
    let (observed, reason) = match (reset, stalled, never) {
        (Some((name, r)), _, _) => {
            (Evidence::new("connection-reset", format!("{name} {} after {} ms; {gaps}", ending(&r.ended), r.held_ms)), Some(FailureReason::ConnectionReset))
        }
        (None, Some((name, r)), _) => (
            Evidence::new("gap-over-budget", format!("{name} stalled {} ms (budget {} ms); {gaps}", r.longest_gap_ms, budget.as_millis())),
            Some(FailureReason::OverBudget),
        ),
        (None, None, Some((name, r))) => (Evidence::new("never-connected", format!("{name}: {}; {gaps}", ending(&r.ended))), Some(FailureReason::ProbeFailed)),
        (None, None, None) if held.is_empty() => (Evidence::new("no-connection", "no connection was held"), Some(FailureReason::ProbeFailed)),
        (None, None, None) => (Evidence::new("every-connection-held", gaps), None),
    };
    let mut verdict = verdict(
        "long-lived TCP connections through an upgrade",
        format!("connections {names}, {how}"),
        reason.is_none(),
        Evidence::new("every-connection-held", format!("each connection open to the end, no gap between echoes longer than {} ms", budget.as_millis())),
        observed,
        reason,
        String::new(),
    );
    verdict.counters = gap_counters(held, budget);
    verdict
}

/// The name of the counters that carry each connection's longest gap (and, under the
/// subject [`GAP_BUDGET_SUBJECT`], the budget): reports plot them.
pub const LONGEST_GAP: &str = "longest-gap-ms";
pub const GAP_BUDGET_SUBJECT: &str = "budget";

/// Each connection's longest gap and exchanges, and the budget, as counters.
fn gap_counters(held: &[(String, HoldReport)], budget: Duration) -> Vec<Counter> {
    let counter = |subject: &str, name: &str, value: u64| Counter { subject: subject.to_owned(), name: name.to_owned(), value };
    held.iter()
        .flat_map(|(name, r)| [counter(name, LONGEST_GAP, r.longest_gap_ms), counter(name, "exchanges", r.exchanges)])
        .chain(std::iter::once(counter(GAP_BUDGET_SUBJECT, LONGEST_GAP, budget.as_millis() as u64)))
        .collect()
}

/// Are the figures measured under `to` (`after`) no worse than under `from` (`before`),
/// each pair compared by the regression test `cargo xtask compare` uses (its level split
/// over the figures)? Both versions' figures go with the verdict, each named after its
/// version's side (`.before-upgrade`, `.after-upgrade`).
pub fn no_figure_regresses(to: &str, from: &str, before: &[Figure], after: &[Figure], criteria: RegressionCriteria) -> Verdict {
    let (comparisons, unmatched) = regression::compare(before, after, criteria);
    let describe = |c: &regression::Comparison| {
        let p = c.p_value.map_or("exact".to_owned(), |p| format!("p {p:.4}"));
        format!("{}: median {:.3} {} under {from}, {:.3} under {to} ({:+.1} %, {p})", c.name, c.baseline, c.unit, c.candidate, c.change * 100.0)
    };
    let regressed: Vec<String> = comparisons.iter().filter(|c| c.regression).map(describe).collect();
    let all = comparisons.iter().map(describe).collect::<Vec<_>>().join("; ");
    let (observed, reason) = match (regressed.is_empty(), comparisons.is_empty() || !unmatched.is_empty()) {
        (false, _) => (Evidence::new("regressed", format!("{}; all: {all}", regressed.join("; "))), Some(FailureReason::Regressed)),
        (true, true) => {
            (Evidence::new("not-compared", format!("figures measured under one version only: {}", unmatched.join(", "))), Some(FailureReason::ProbeFailed))
        }
        (true, false) => (Evidence::new("no-regression", all), None),
    };
    let level = criteria.alpha / comparisons.len().max(1) as f64;
    let mut verdict = verdict(
        "performance across versions",
        format!("{} measured under {from} and under {to} in one run, in alternating blocks", comparisons.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")),
        reason.is_none(),
        Evidence::new(
            "no-regression",
            format!(
                "no figure significantly worse under {to} than under {from} made {:.0} % worse (one-sided exact Mann–Whitney, alpha {} over {} figure(s): {level:.4} each)",
                criteria.smallest_regression * 100.0,
                criteria.alpha,
                comparisons.len()
            ),
        ),
        observed,
        reason,
        format!("what {to} does more per pod or per packet than {from}: its ADD (plugins, IPAM, locks) and the datapath it builds"),
    );
    let side = |figures: &[Figure], suffix: &str| figures.iter().map(|f| Figure { name: format!("{}.{suffix}", f.name), ..f.clone() }).collect::<Vec<_>>();
    verdict.figures = [side(before, "before-upgrade"), side(after, "after-upgrade")].concat();
    verdict
}

fn ending(ended: &HoldEnd) -> String {
    match ended {
        HoldEnd::Held => "held".into(),
        HoldEnd::Reset { detail } => format!("reset ({detail})"),
        HoldEnd::Closed => "closed by the peer".into(),
        HoldEnd::NeverConnected { detail } => format!("never connected ({detail})"),
        HoldEnd::Failed { detail } => format!("failed ({detail})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(gap: u64, ended: HoldEnd) -> HoldReport {
        HoldReport { to: "10.244.1.3:8090".parse().unwrap(), exchanges: 100, longest_gap_ms: gap, held_ms: 3000, ended }
    }

    #[test]
    fn a_connection_reset_or_stalled_past_the_budget_fails_it_naming_the_connection() {
        let budget = Duration::from_millis(1000);
        assert!(
            connections_held("new", "old", &[("same-node".into(), held(40, HoldEnd::Held)), ("across".into(), held(1000, HoldEnd::Held))], budget).passed,
            "a gap of exactly the budget is within it"
        );
        let stalled = connections_held("new", "old", &[("same-node".into(), held(40, HoldEnd::Held)), ("across".into(), held(1001, HoldEnd::Held))], budget);
        assert_eq!((stalled.passed, stalled.reason, stalled.observed.role.as_str()), (false, Some(FailureReason::OverBudget), "gap-over-budget"));
        assert!(
            stalled.message().contains("across stalled 1001 ms (budget 1000 ms)") && stalled.message().contains("upgraded to new"),
            "{}",
            stalled.message()
        );
        let reset = connections_held(
            "new",
            "old",
            &[("across".into(), held(2000, HoldEnd::Held)), ("to-external".into(), held(30, HoldEnd::Reset { detail: "Connection reset by peer".into() }))],
            budget,
        );
        assert_eq!((reset.reason, reset.observed.role.as_str()), (Some(FailureReason::ConnectionReset), "connection-reset"), "a reset is named before a stall");
        assert!(reset.message().contains("to-external reset (Connection reset by peer)"), "{}", reset.message());
        assert_eq!(connections_held("new", "old", &[], budget).reason, Some(FailureReason::ProbeFailed), "no connection proves nothing");
        let gaps: Vec<(String, u64)> = stalled.counters.iter().filter(|c| c.name == LONGEST_GAP).map(|c| (c.subject.clone(), c.value)).collect();
        assert_eq!(
            gaps,
            [("same-node".to_owned(), 40), ("across".to_owned(), 1001), (GAP_BUDGET_SUBJECT.to_owned(), 1000)],
            "each gap and the budget, for the report's plot"
        );
    }

    #[test]
    fn one_pod_failing_check_fails_it_naming_the_pod_and_both_versions() {
        let all = [("old-1".to_owned(), None), ("old-2".to_owned(), None)];
        assert!(every_pod_checks("1.9.1", "1.1.1", &all).passed);
        let one = [("old-1".to_owned(), None), ("old-2".to_owned(), Some("bridge: no such link".to_owned()))];
        let verdict = every_pod_checks("1.9.1", "1.1.1", &one);
        assert_eq!((verdict.passed, verdict.reason, verdict.observed.role.as_str()), (false, Some(FailureReason::CheckFailed), "check-failed"));
        assert!(
            verdict.message().contains("1 of 2 failed: old-2: bridge: no such link") && verdict.message().contains("made by 1.1.1, checked by 1.9.1"),
            "{}",
            verdict.message()
        );
        assert!(!every_pod_checks("1.9.1", "1.1.1", &[]).passed, "no pod checked proves nothing");
    }

    #[test]
    fn a_cross_version_failure_the_control_shares_is_the_version_s_own_fault() {
        let ok = |pod: &str| (pod.to_owned(), None);
        let failed = |pod: &str| (pod.to_owned(), Some("could not check ipv6 dnat: chain CNI-DN-1 not found".to_owned()));
        // Portmap 1.1.1's CHECK bug: it fails on the pods it made itself just as on old ones.
        let across = every_pod_checks("1.1.1", "1.9.1", &[failed("u/old-1"), failed("u/old-2")]);
        let own = every_pod_checks("1.1.1", "1.1.1", &[failed("u/control-1"), failed("u/control-2")]);
        let verdict = ruled_by_control(across.clone(), "1.1.1", Control::ItsOwnPods, &own);
        assert!(!verdict.passed, "still red: the version has the fault");
        assert_eq!(verdict.reason, Some(FailureReason::VersionsOwnFault));
        assert_eq!(verdict.observed.role, "fails-on-its-own-pods-too");
        assert!(
            verdict.observed.detail.contains("u/old-1") && verdict.observed.detail.contains("u/control-1"),
            "both results are the evidence: {}",
            verdict.observed.detail
        );
        assert!(verdict.look_at.starts_with("1.1.1 itself, not the upgrade"), "{}", verdict.look_at);
        // The control passes: the crossing of versions is to blame, as before.
        let own_ok = every_pod_checks("1.1.1", "1.1.1", &[ok("u/control-1"), ok("u/control-2")]);
        let verdict = ruled_by_control(across, "1.1.1", Control::ItsOwnPods, &own_ok);
        assert_eq!((verdict.passed, verdict.reason, verdict.observed.role.as_str()), (false, Some(FailureReason::CheckFailed), "check-failed"));
        assert!(verdict.observed.detail.contains("so the fault is the crossing of versions"), "{}", verdict.observed.detail);
        // A pass names its control too, and stays a pass whatever the control says.
        let passed = ruled_by_control(every_pod_checks("1.9.1", "1.1.1", &[ok("u/old-1")]), "1.9.1", Control::ItsOwnPods, &own);
        assert!(passed.passed && passed.reason.is_none() && passed.observed.detail.contains("control, 1.9.1 on pods it made itself"));
        // The same rule for DEL.
        let left = ["left behind: iptables-save: -A CNI-DN-1 -j DNAT".to_owned()];
        let del_across = del_leaves_nothing("u/old", "w1", "1.9.1", "1.1.1", None, &left);
        let del_own = del_leaves_nothing("u/control", "w1", "1.9.1", "1.9.1", None, &left);
        assert_eq!(ruled_by_control(del_across.clone(), "1.9.1", Control::ItsOwnPods, &del_own).reason, Some(FailureReason::VersionsOwnFault));
        assert_eq!(
            ruled_by_control(del_across.clone(), "1.9.1", Control::ItsOwnPods, &del_leaves_nothing("u/control", "w1", "1.9.1", "1.9.1", None, &[])).reason,
            Some(FailureReason::LeftBehind)
        );
        // A control hit by the crossing itself (its pod got an old pod's address, so its DEL
        // took the old pod's rules away) does not share the fault: the upgrade is to blame.
        let took_away =
            del_leaves_nothing("u/control", "w1", "1.9.1", "1.9.1", None, &["removed: iptables-save: -A CNI-FORWARD -s 10.244.1.2/32 -j ACCEPT".to_owned()]);
        assert_eq!(took_away.observed.role, "took-away");
        let verdict = ruled_by_control(del_across, "1.9.1", Control::ItsOwnPods, &took_away);
        assert_eq!((verdict.reason, verdict.observed.role.as_str()), (Some(FailureReason::LeftBehind), "left-behind"));
        assert!(verdict.observed.detail.contains("not the same fault, so the crossing of versions is to blame"), "{}", verdict.observed.detail);
    }

    #[test]
    fn connections_broken_with_nothing_upgraded_too_are_the_old_version_s_fault() {
        use cni_probe::hold::{HoldEnd, HoldReport};
        let report = |ended: HoldEnd, gap: u64| HoldReport { to: "10.0.0.9:8090".parse().unwrap(), held_ms: 3000, exchanges: 30, longest_gap_ms: gap, ended };
        let reset = || vec![("pod-to-the-external-host".to_owned(), report(HoldEnd::Reset { detail: "connection reset by peer".into() }, 100))];
        let held = || vec![("pod-to-the-external-host".to_owned(), report(HoldEnd::Held, 100))];
        let budget = Duration::from_secs(1);
        let across = connections_held("1.9.1", "1.1.1", &reset(), budget);
        assert_eq!((across.passed, across.reason), (false, Some(FailureReason::ConnectionReset)));
        // The old version resets them with nothing upgraded: its fault, both results shown.
        let control = connections_held_with_nothing_upgraded("1.1.1", &reset(), budget);
        assert!(control.subject.contains("held under 1.1.1, with nothing upgraded"), "{}", control.subject);
        let verdict = ruled_by_control(across.clone(), "1.1.1", Control::NothingUpgraded, &control);
        assert_eq!((verdict.reason, verdict.observed.role.as_str()), (Some(FailureReason::VersionsOwnFault), "fails-with-nothing-upgraded-too"));
        assert!(
            verdict.look_at.starts_with("1.1.1 itself, not the upgrade: it fails the same holding the same connections as long, with nothing upgraded"),
            "{}",
            verdict.look_at
        );
        assert!(
            verdict.observed.detail.starts_with("across versions: pod-to-the-external-host reset")
                && verdict.observed.detail.contains("control, 1.1.1 holding the same connections"),
            "{}",
            verdict.observed.detail
        );
        // Held with nothing upgraded: the upgrade is to blame.
        let verdict = ruled_by_control(across, "1.1.1", Control::NothingUpgraded, &connections_held_with_nothing_upgraded("1.1.1", &held(), budget));
        assert_eq!(verdict.reason, Some(FailureReason::ConnectionReset));
        assert!(verdict.observed.detail.ends_with("(so the fault is the upgrade)"), "{}", verdict.observed.detail);
        // A precondition the old version missed before the upgrade is its own fault.
        let before = fails_before_the_upgrade(verdict, "1.1.1");
        assert_eq!((before.reason, before.observed.role.as_str()), (Some(FailureReason::VersionsOwnFault), "fails-before-the-upgrade"));
        assert!(before.subject.starts_with("before any upgrade, under 1.1.1: ") && before.look_at.starts_with("1.1.1 itself, not the upgrade"), "{before:?}");
    }

    #[test]
    fn a_passing_scenario_of_several_parts_shows_every_part_s_evidence() {
        let check = every_pod_checks("1.1.1", "1.9.1", &[("u/new-1".to_owned(), None)]);
        let del = del_leaves_nothing("u/new-3", "w1", "1.1.1", "1.9.1", None, &[]);
        let both = every_part([("CHECK", check.clone()), ("DEL", del.clone())]);
        assert!(both.passed);
        assert!(
            both.observed.detail.contains("CHECK: CHECK succeeded on u/new-1") && both.observed.detail.contains("DEL: nothing of the pod left"),
            "{}",
            both.observed.detail
        );
        assert_eq!(both.observed.role, del.observed.role, "the role (the golden record) is the last part's, as before");
        let failing = every_part([("CHECK", every_pod_checks("1.1.1", "1.9.1", &[("u/new-1".to_owned(), Some("x".to_owned()))])), ("DEL", del)]);
        assert_eq!(failing.reason, Some(FailureReason::CheckFailed), "the first failing part decides");
    }

    #[test]
    fn a_leftover_or_a_failed_del_fails_it_for_that_reason() {
        assert!(del_leaves_nothing("p", "n", "new", "old", None, &[]).passed);
        let left = del_leaves_nothing("p", "n", "new", "old", None, &["left behind: file /var/lib/cni/10.244.1.5".to_owned()]);
        assert_eq!((left.passed, left.reason, left.observed.role.as_str()), (false, Some(FailureReason::LeftBehind), "left-behind"));
        assert!(left.message().contains("10.244.1.5"), "{}", left.message());
        assert_eq!(del_leaves_nothing("p", "n", "new", "old", Some("exit 1"), &[]).observed.role, "del-failed");
    }

    #[test]
    fn a_shared_address_fails_before_reachability_and_an_unanswered_request_names_the_pair() {
        let answered =
            || Observation::Answered { reply: cni_probe::EchoReply { client: "10.244.1.2:41000".parse().unwrap(), server: "new-1".into(), path: "/".into() } };
        let a: IpAddr = "10.244.1.2".parse().unwrap();
        let b: IpAddr = "10.244.1.3".parse().unwrap();
        let requests = vec![("old-1".to_owned(), "new-1".to_owned(), answered())];
        assert!(versions_reach_each_other("new", "old", &requests, &[("old-1".into(), a), ("new-1".into(), b)]).passed);
        let reused = versions_reach_each_other("new", "old", &requests, &[("old-1".into(), a), ("new-1".into(), a)]);
        assert_eq!((reused.reason, reused.observed.role.as_str()), (Some(FailureReason::AddressReused), "address-reused"));
        assert!(reused.message().contains("new-1 and old-1 both hold 10.244.1.2"), "{}", reused.message());
        let lost = vec![("old-1".to_owned(), "new-1".to_owned(), Observation::TimedOut { detail: "3 s".into() })];
        let verdict = versions_reach_each_other("new", "old", &lost, &[("old-1".into(), a), ("new-1".into(), b)]);
        assert_eq!(verdict.reason, Some(FailureReason::TimedOut));
        assert!(verdict.message().contains("old-1 -> new-1"), "{}", verdict.message());
    }

    mod sources {
        use super::super::*;
        use crate::model::{labels, Node, NodeRole};

        fn ip(s: &str) -> IpAddr {
            s.parse().unwrap()
        }

        fn pod(name: &str, address: &str) -> Pod {
            Pod { name: name.into(), namespace: "prod".into(), labels: labels([]), node: "worker".into(), address: ip(address) }
        }

        fn book() -> AddressBook {
            AddressBook {
                nodes: vec![Node { name: "worker".into(), role: NodeRole::Worker, labels: labels([]), address: ip("172.18.0.3") }],
                pods: vec![pod("web", "10.244.1.2"), pod("db", "10.244.1.3")],
                egress_ips: vec![(ip("172.18.0.200"), "egress policy p".into())],
            }
        }

        fn seen(at_ms: u64, source: Option<&str>) -> SourceSample {
            let seen = match source {
                Some(source) => Observation::Answered {
                    reply: cni_probe::EchoReply { client: format!("{source}:40000").parse().unwrap(), server: "external".into(), path: "/".into() },
                },
                None => Observation::TimedOut { detail: "2 s".into() },
            };
            SourceSample { at: Duration::from_millis(at_ms), seen }
        }

        /// Samples every 100 ms from 0 to 2000 ms, each `source(at)`.
        fn every_100_ms(source: impl Fn(u64) -> Option<&'static str>) -> Vec<SourceSample> {
            (0..=20).map(|i| seen(i * 100, source(i * 100))).collect()
        }

        fn judge(web: Vec<SourceSample>, db: Vec<SourceSample>) -> Verdict {
            let egress = ExpectedSource::egress_ip(ip("172.18.0.200"), "egress policy p", "worker2");
            let node = ExpectedSource::node_of(&pod("db", "10.244.1.3"), &book()).unwrap();
            let window = Duration::from_millis(400)..Duration::from_millis(1600);
            sources_kept(
                "1.9.1",
                "1.1.1",
                &[(pod("web", "10.244.1.2"), egress, web), (pod("db", "10.244.1.3"), node, db)],
                &window,
                Duration::from_millis(1000),
                &book(),
            )
        }

        #[test]
        fn every_sample_with_its_own_source_passes() {
            let verdict = judge(every_100_ms(|_| Some("172.18.0.200")), every_100_ms(|_| Some("172.18.0.3")));
            assert!(verdict.passed, "{}", verdict.message());
            assert!(
                verdict.observed.detail.contains("prod/web: 21 samples (egress-ip 21; 0 unanswered), longest without egress-ip 100 ms"),
                "{}",
                verdict.observed.detail
            );
        }

        #[test]
        fn one_sample_with_another_source_fails_naming_the_pod_the_address_and_the_phase() {
            let verdict = judge(every_100_ms(|at| Some(if at == 900 { "10.244.1.2" } else { "172.18.0.200" })), every_100_ms(|_| Some("172.18.0.3")));
            assert_eq!((verdict.passed, verdict.reason, verdict.observed.role.as_str()), (false, Some(FailureReason::WrongSource), "wrong-source"));
            assert!(
                verdict.message().contains(
                    "prod/web seen as pod (expected 172.18.0.200, egress IP of egress policy p), first 10.244.1.2, pod prod/web at 0.90 s, during the switch"
                ),
                "{}",
                verdict.message()
            );
            assert!(verdict.message().contains("upgraded to 1.9.1") && verdict.look_at.contains("gateway node worker2"), "{}", verdict.look_at);
            // The unselected pod seen with the egress IP is as wrong, after the switch too.
            let leaked = judge(every_100_ms(|_| Some("172.18.0.200")), every_100_ms(|at| Some(if at == 1900 { "172.18.0.200" } else { "172.18.0.3" })));
            assert_eq!(leaked.reason, Some(FailureReason::WrongSource));
            assert!(leaked.message().contains("prod/db seen as egress-ip") && leaked.message().contains("after the switch"), "{}", leaked.message());
        }

        #[test]
        fn lost_answers_are_not_a_wrong_source_but_a_silence_past_the_budget_fails() {
            // 800-1700 unanswered: 1000 ms from the answer at 700 to the one at 1800... is 1100 ms.
            let silent = judge(every_100_ms(|at| (!(800..=1700).contains(&at)).then_some("172.18.0.200")), every_100_ms(|_| Some("172.18.0.3")));
            assert_eq!((silent.reason, silent.observed.role.as_str()), (Some(FailureReason::OverBudget), "silence-over-budget"), "{}", silent.message());
            assert!(
                silent.message().contains("prod/web went 1100 ms without its source (budget 1000 ms)") && silent.message().contains("10 unanswered"),
                "{}",
                silent.message()
            );
            // 800-1600 unanswered: exactly the budget, from 700 to 1700.
            let within = judge(every_100_ms(|at| (!(800..=1600).contains(&at)).then_some("172.18.0.200")), every_100_ms(|_| Some("172.18.0.3")));
            assert!(within.passed, "{}", within.message());
            // Silence at the end counts up to the last sample.
            let tail = judge(every_100_ms(|at| (at < 900).then_some("172.18.0.200")), every_100_ms(|_| Some("172.18.0.3")));
            assert_eq!(tail.reason, Some(FailureReason::OverBudget), "{}", tail.message());
        }

        #[test]
        fn a_pod_without_samples_proves_nothing() {
            let verdict = judge(Vec::new(), every_100_ms(|_| Some("172.18.0.3")));
            assert_eq!((verdict.passed, verdict.reason), (false, Some(FailureReason::ProbeFailed)));
        }
    }
}
