//! Upgrade verdicts: what one CNI version makes, the next one (or the previous, after a
//! rollback) must still CHECK, DEL without leftovers, and reach, and IPAM must never hand
//! out an address twice.

use std::net::IpAddr;

use std::time::Duration;

use cni_probe::hold::{HoldEnd, HoldReport};
use cni_probe::Observation;

use super::{reach, Evidence, FailureReason, Verdict};

fn verdict(check: &str, subject: String, passed: bool, expected: Evidence, observed: Evidence, reason: Option<FailureReason>, look_at: String) -> Verdict {
    Verdict { statistics: Vec::new(), counters: Vec::new(), figures: Vec::new(), check: check.into(), subject, passed, expected, observed, reason: (!passed).then_some(reason).flatten(), look_at }
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

/// Did DEL by `deleter` of a pod `maker` made succeed and leave its node as before the pod
/// (`leftovers`: the node's changes, as `cni_spec` words them)?
pub fn del_leaves_nothing(pod: &str, node: &str, deleter: &str, maker: &str, del_error: Option<&str>, leftovers: &[String]) -> Verdict {
    let mut problems: Vec<String> = del_error.map(|e| format!("DEL failed: {e}")).into_iter().collect();
    problems.extend(leftovers.iter().cloned());
    verdict(
        "what DEL leaves on the node across versions",
        format!("pod {pod} on node {node}, made by {maker}, deleted by {deleter}"),
        problems.is_empty(),
        Evidence::new("node-as-before", "DEL succeeds and the node's links, addresses, routes, rules, iptables and nft, qdiscs, IPAM files and BPF pins are as before the pod"),
        match (del_error, leftovers.is_empty()) {
            (None, true) => Evidence::new("node-as-before", "nothing of the pod left"),
            (Some(_), _) => Evidence::new("del-failed", problems.join("; ")),
            (None, false) => Evidence::new("left-behind", problems.join("; ")),
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
    let expected = Evidence::new("reached-with-distinct-addresses", format!("each of {} requests between old and new pods answered, every pod's address its own", requests.len()));
    let subject = format!("pods made by {new} and by {old}: {}", addresses.iter().map(|(pod, address)| format!("{pod} ({address})")).collect::<Vec<_>>().join(", "));
    if !shared.is_empty() {
        let look_at = format!("the IPAM state {new} reads: an address {old} handed out must stay taken");
        return verdict("reach and addresses across versions", subject, false, expected, Evidence::new("address-reused", shared.join("; ")), Some(FailureReason::AddressReused), look_at);
    }
    let failed = requests.iter().find(|(_, _, observation)| !matches!(observation, Observation::Answered { .. }));
    match failed {
        None => verdict("reach and addresses across versions", subject, true, expected.clone(), Evidence::new(expected.role.clone(), format!("{} requests answered", requests.len())), None, String::new()),
        Some((client, server, observation)) => {
            let (observed, reason) = reach::unanswered(observation);
            let unanswered = requests.iter().filter(|(_, _, o)| !matches!(o, Observation::Answered { .. })).map(|(c, s, o)| format!("{c} -> {s}: {}", o.kind())).collect::<Vec<_>>().join("; ");
            let observed = Evidence::new(observed.role, format!("{unanswered}; first: {client} -> {server}: {}", observed.detail));
            verdict("reach and addresses across versions", subject, false, expected, observed, reason, format!("the route and bridge between {client} and {server}: one was made by {old}, one by {new}"))
        }
    }
}

/// Did every connection opened before the upgrade to `to` (from `from`) stay open through
/// it, echoing with no gap longer than `budget`? `held`: each connection's name and report.
/// A reset or close fails it first, then a gap over budget, then one never opened.
pub fn connections_held(to: &str, from: &str, held: &[(String, HoldReport)], budget: Duration) -> Verdict {
    let gaps = held.iter().map(|(name, r)| format!("{name}: longest gap {} ms over {} exchanges, {}", r.longest_gap_ms, r.exchanges, ending(&r.ended))).collect::<Vec<_>>().join("; ");
    let names = held.iter().map(|(name, r)| format!("{name} ({})", r.to)).collect::<Vec<_>>().join(", ");
    let reset = held.iter().find(|(_, r)| matches!(r.ended, HoldEnd::Reset { .. } | HoldEnd::Closed | HoldEnd::Failed { .. }));
    let stalled = held.iter().filter(|(_, r)| Duration::from_millis(r.longest_gap_ms) > budget).max_by_key(|(_, r)| r.longest_gap_ms);
    let never = held.iter().find(|(_, r)| matches!(r.ended, HoldEnd::NeverConnected { .. }));
    let (observed, reason) = match (reset, stalled, never) {
        (Some((name, r)), _, _) => (Evidence::new("connection-reset", format!("{name} {} after {} ms; {gaps}", ending(&r.ended), r.held_ms)), Some(FailureReason::ConnectionReset)),
        (None, Some((name, r)), _) => (Evidence::new("gap-over-budget", format!("{name} stalled {} ms (budget {} ms); {gaps}", r.longest_gap_ms, budget.as_millis())), Some(FailureReason::OverBudget)),
        (None, None, Some((name, r))) => (Evidence::new("never-connected", format!("{name}: {}; {gaps}", ending(&r.ended))), Some(FailureReason::ProbeFailed)),
        (None, None, None) if held.is_empty() => (Evidence::new("no-connection", "no connection was held"), Some(FailureReason::ProbeFailed)),
        (None, None, None) => (Evidence::new("every-connection-held", gaps), None),
    };
    verdict(
        "long-lived TCP connections through an upgrade",
        format!("connections {names}, opened under {from}, held while it was upgraded to {to}"),
        reason.is_none(),
        Evidence::new("every-connection-held", format!("each connection open to the end, no gap between echoes longer than {} ms", budget.as_millis())),
        observed,
        reason,
        format!("what the upgrade to {to} touches on the connections' path: NAT and filter chains flushed or rebuilt, conntrack entries, routes or links replaced while they carry traffic"),
    )
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
        assert!(connections_held("new", "old", &[("same-node".into(), held(40, HoldEnd::Held)), ("across".into(), held(1000, HoldEnd::Held))], budget).passed, "a gap of exactly the budget is within it");
        let stalled = connections_held("new", "old", &[("same-node".into(), held(40, HoldEnd::Held)), ("across".into(), held(1001, HoldEnd::Held))], budget);
        assert_eq!((stalled.passed, stalled.reason, stalled.observed.role.as_str()), (false, Some(FailureReason::OverBudget), "gap-over-budget"));
        assert!(stalled.message().contains("across stalled 1001 ms (budget 1000 ms)") && stalled.message().contains("upgraded to new"), "{}", stalled.message());
        let reset = connections_held("new", "old", &[("across".into(), held(2000, HoldEnd::Held)), ("to-external".into(), held(30, HoldEnd::Reset { detail: "Connection reset by peer".into() }))], budget);
        assert_eq!((reset.reason, reset.observed.role.as_str()), (Some(FailureReason::ConnectionReset), "connection-reset"), "a reset is named before a stall");
        assert!(reset.message().contains("to-external reset (Connection reset by peer)"), "{}", reset.message());
        assert_eq!(connections_held("new", "old", &[], budget).reason, Some(FailureReason::ProbeFailed), "no connection proves nothing");
    }

    #[test]
    fn one_pod_failing_check_fails_it_naming_the_pod_and_both_versions() {
        let all = [("old-1".to_owned(), None), ("old-2".to_owned(), None)];
        assert!(every_pod_checks("1.9.1", "1.1.1", &all).passed);
        let one = [("old-1".to_owned(), None), ("old-2".to_owned(), Some("bridge: no such link".to_owned()))];
        let verdict = every_pod_checks("1.9.1", "1.1.1", &one);
        assert_eq!((verdict.passed, verdict.reason, verdict.observed.role.as_str()), (false, Some(FailureReason::CheckFailed), "check-failed"));
        assert!(verdict.message().contains("1 of 2 failed: old-2: bridge: no such link") && verdict.message().contains("made by 1.1.1, checked by 1.9.1"), "{}", verdict.message());
        assert!(!every_pod_checks("1.9.1", "1.1.1", &[]).passed, "no pod checked proves nothing");
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
        let answered = || Observation::Answered { reply: cni_probe::EchoReply { client: "10.244.1.2:41000".parse().unwrap(), server: "new-1".into(), path: "/".into() } };
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
}
