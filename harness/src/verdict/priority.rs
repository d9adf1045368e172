//! Priority preservation (TSN): did a talker's packets reach the node NIC's qdisc in the
//! class its `SO_PRIORITY` maps to? Judged on the qdisc's own per-class packet counters,
//! as the metadata-proxy paper reads `tc -s` after a run.

use std::collections::BTreeMap;

use super::{Counter, Evidence, FailureReason, Verdict};

/// A traffic class of the node NIC's qdisc: its role (what golden records hold) and its
/// class id (`tc`'s name for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrafficClass {
    pub role: &'static str,
    pub id: &'static str,
}

/// The paper's priority map: 1 and 2 are time-sensitive classes, the rest best effort.
pub const CLASS_1: TrafficClass = TrafficClass { role: "class-1", id: "1:1" };
pub const CLASS_2: TrafficClass = TrafficClass { role: "class-2", id: "1:2" };
pub const BEST_EFFORT: TrafficClass = TrafficClass { role: "best-effort", id: "1:3" };
/// Not a talker's (ARP, a tunnel's own ARP, the node's control traffic): counted apart,
/// never a talker's class (see `bpf/tsn_classify.c`).
pub const NOT_A_TALKER: TrafficClass = TrafficClass { role: "not-a-talker", id: "1:4" };
pub const IPV4_CLASSES: [TrafficClass; 3] = [CLASS_1, CLASS_2, BEST_EFFORT];

pub fn class_of_priority(priority: u32) -> TrafficClass {
    match priority {
        1 => CLASS_1,
        2 => CLASS_2,
        _ => BEST_EFFORT,
    }
}

/// Per-class packet counters from `tc -s class show` (class id -> packets sent).
pub fn parse_class_counters(text: &str) -> BTreeMap<String, u64> {
    let mut counters = BTreeMap::new();
    let mut class: Option<String> = None;
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["class", _kind, id, ..] => class = Some((*id).to_owned()),
            ["Sent", _bytes, "bytes", packets, "pkt", ..] => {
                if let (Some(id), Ok(packets)) = (class.take(), packets.parse()) {
                    counters.insert(id, packets);
                }
            }
            _ => {}
        }
    }
    counters
}

/// The counters' growth between two readings.
pub fn growth(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after.iter().map(|(id, n)| (id.clone(), n.saturating_sub(before.get(id).copied().unwrap_or(0)))).collect()
}

/// Did at least `at_least` packets of a talker with `priority` land in its class, and none
/// of them in another IPv4 class? `grew` is each class's growth while it alone talked.
/// (UDP: one packet per datagram; TCP: segments are the stack's choice, so at least one.)
pub fn talker_kept_its_class(talker: &str, priority: u32, at_least: u64, grew: &BTreeMap<String, u64>, nic: &str) -> Verdict {
    let sorting = Sorting {
        classes: [CLASS_1, CLASS_2, BEST_EFFORT],
        check: "traffic class of a talker's packets at the node NIC's qdisc",
        reason: FailureReason::WrongClass,
    };
    let mut verdict = sorting.judge(talker, class_of_priority(priority), at_least, grew);
    verdict.subject = format!("talker {talker} with priority {priority} on {nic}");
    verdict.look_at = format!("where the pod's priority is saved and restored (a metadata proxy restores it at {nic}'s egress, after forwarding)");
    verdict
}

/// With the delivery-time classifier (`bpf/tsn_classify.c` built with DELIVERY_TIME):
/// the talker's delivery time on CLOCK_TAI, as far ahead as it set it (within the
/// classifier's tolerance); another clock or value; none.
pub const DELIVERY_TIME_KEPT: TrafficClass = TrafficClass { role: "delivery-time-kept", id: "1:1" };
pub const DELIVERY_TIME_OFF: TrafficClass = TrafficClass { role: "delivery-time-off", id: "1:2" };
pub const DELIVERY_TIME_LOST: TrafficClass = TrafficClass { role: "delivery-time-lost", id: "1:3" };

/// Did every datagram of a talker that set `SO_TXTIME` reach the NIC with the delivery
/// time it set (same clock, same value within the classifier's tolerance)?
pub fn delivery_time_kept(talker: &str, at_least: u64, grew: &BTreeMap<String, u64>, nic: &str, delay: &str) -> Verdict {
    let sorting = Sorting {
        classes: [DELIVERY_TIME_KEPT, DELIVERY_TIME_OFF, DELIVERY_TIME_LOST],
        check: "delivery time (SO_TXTIME) of a talker's packets at the node NIC",
        reason: FailureReason::DeliveryTimeChanged,
    };
    let mut verdict = sorting.judge(talker, DELIVERY_TIME_KEPT, at_least, grew);
    verdict.subject = format!("talker {talker} with a delivery time {delay} ahead on CLOCK_TAI, on {nic}");
    verdict.look_at = format!("what clears or rewrites skb->tstamp between the pod and {nic} (a metadata proxy restores it with the priority)");
    verdict
}

/// The delivery-time classifier's class for a packet that carries none: where every
/// packet of a talker that never set `SO_TXTIME` belongs.
pub const NO_DELIVERY_TIME: TrafficClass = TrafficClass { role: "no-delivery-time", id: DELIVERY_TIME_LOST.id };

/// Did every datagram of a talker that set no delivery time reach the NIC carrying none?
/// One that carries a time (another talker's, left as per-packet state, or one made up on
/// the way) would be held back or sent early by a time-aware qdisc.
pub fn no_delivery_time_added(talker: &str, at_least: u64, grew: &BTreeMap<String, u64>, nic: &str) -> Verdict {
    let sorting = Sorting {
        classes: [DELIVERY_TIME_KEPT, DELIVERY_TIME_OFF, NO_DELIVERY_TIME],
        check: "delivery time of a talker that set none, at the node NIC",
        reason: FailureReason::DeliveryTimeChanged,
    };
    let mut verdict = sorting.judge(talker, NO_DELIVERY_TIME, at_least, grew);
    verdict.subject = format!("talker {talker} without SO_TXTIME, on {nic}");
    verdict.look_at = format!(
        "what sets skb->tstamp on packets that had none between the pod and {nic} (a metadata proxy that restores a delivery time from stale per-packet state)"
    );
    verdict
}

/// How a classifier sorted a talker's packets: three classes it judges, the fourth for
/// what is not a talker's.
struct Sorting {
    classes: [TrafficClass; 3],
    check: &'static str,
    reason: FailureReason,
}

impl Sorting {
    /// At least `at_least` packets in `expected`, none in the other two. A failure names
    /// every class that took some (in the classes' order, so the role holds no counts and
    /// stays the same from run to run: "class-1 and best-effort"), or `missing` when fewer
    /// than `at_least` came and none went astray; the detail gives the counts, most first
    /// ("class-1 (47), best-effort (3)").
    fn judge(&self, talker: &str, expected: TrafficClass, at_least: u64, grew: &BTreeMap<String, u64>) -> Verdict {
        let count = |class: TrafficClass| grew.get(class.id).copied().unwrap_or(0);
        let elsewhere: u64 = self.classes.iter().filter(|c| **c != expected).map(|c| count(*c)).sum();
        let passed = count(expected) >= at_least && elsewhere == 0;
        let took_some: Vec<TrafficClass> = self.classes.iter().copied().filter(|c| count(*c) > 0).collect();
        let observed = match (passed, elsewhere) {
            (true, _) => expected.role.to_owned(),
            (false, 0) => "missing".to_owned(),
            (false, _) => took_some.iter().map(|c| c.role).collect::<Vec<_>>().join(" and "),
        };
        let mut most_first = took_some.clone();
        most_first.sort_by_key(|c| std::cmp::Reverse(count(*c)));
        let where_they_went = match (passed, elsewhere) {
            (false, 0) => format!("{} of at least {at_least} came; ", count(expected)),
            (false, _) => format!("{}; ", most_first.iter().map(|c| format!("{} ({})", c.role, count(*c))).collect::<Vec<_>>().join(", ")),
            (true, _) => String::new(),
        };
        let all_classes = [self.classes[0], self.classes[1], self.classes[2], NOT_A_TALKER];
        let table = all_classes.iter().map(|c| format!("{} ({}): {}", c.id, c.role, count(*c))).collect::<Vec<_>>().join(", ");
        Verdict {
            statistics: Vec::new(),
            counters: all_classes.iter().map(|c| Counter { subject: talker.to_owned(), name: c.role.to_owned(), value: count(*c) }).collect(),
            figures: Vec::new(),
            check: self.check.into(),
            subject: talker.to_owned(),
            passed,
            expected: Evidence::new(expected.role, format!("all packets (at least {at_least}) in {} ({}), none in another class", expected.id, expected.role)),
            observed: Evidence::new(observed, format!("{where_they_went}packets per class: {table}")),
            reason: (!passed).then_some(self.reason),
            look_at: String::new(),
        }
    }
}

/// The paper's talkers together, each judged by [`talker_kept_its_class`] and named by a
/// stable name (its pod's): roles read "talker-1 class-1, talker-2 class-2, ..." so golden
/// records hold each talker's class role and no counts.
pub fn talkers_kept_their_classes(talkers: Vec<(String, Verdict)>) -> Verdict {
    every_talker("traffic class of each talker's packets at the node NIC's qdisc", talkers)
}

/// Talkers together under `check`, each judged alone and named by a stable name; fails
/// with the first that failed.
pub fn every_talker(check: &str, talkers: Vec<(String, Verdict)>) -> Verdict {
    let joined = |part: &dyn Fn(&str, &Verdict) -> String, separator: &str| talkers.iter().map(|(name, v)| part(name, v)).collect::<Vec<_>>().join(separator);
    let failed = talkers.iter().find(|(_, v)| !v.passed).map(|(_, v)| v);
    // Parts that count the same talker (SO_TXTIME's talker and its best effort after it)
    // would report the same counter twice, and a report keyed by it keeps one: then every
    // counter is named by its part too.
    let mut counters: Vec<super::Counter> = talkers.iter().flat_map(|(_, v)| v.counters.clone()).collect();
    let keys: std::collections::BTreeSet<(&str, &str)> = counters.iter().map(|c| (c.subject.as_str(), c.name.as_str())).collect();
    if keys.len() < counters.len() {
        counters = talkers
            .iter()
            .flat_map(|(part, v)| v.counters.iter().map(move |c| super::Counter { subject: format!("{part} {}", c.subject), ..c.clone() }))
            .collect();
    }
    Verdict {
        statistics: Vec::new(),
        counters,
        figures: Vec::new(),
        check: check.into(),
        subject: joined(&|_, v| v.subject.clone(), "; "),
        passed: failed.is_none(),
        expected: Evidence::new(
            joined(&|name, v| format!("{name} {}", v.expected.role), ", "),
            joined(&|name, v| format!("{name}: {}", v.expected.detail), "; "),
        ),
        observed: Evidence::new(
            joined(&|name, v| format!("{name} {}", v.observed.role), ", "),
            joined(&|name, v| format!("{name}: {}", v.observed.detail), "; "),
        ),
        reason: failed.and_then(|v| v.reason),
        look_at: failed.map(|v| v.look_at.clone()).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOWN: &str = "class htb 1:1 root prio 0 rate 10Gbit ceil 10Gbit burst 0b cburst 0b \n Sent 5400 bytes 50 pkt (dropped 0, overlimits 0 requeues 0) \n backlog 0b 0p requeues 0\nclass htb 1:3 root prio 0 rate 10Gbit ceil 10Gbit burst 0b cburst 0b \n Sent 3296 bytes 33 pkt (dropped 0, overlimits 0 requeues 0) \n";

    #[test]
    fn parts_counting_the_same_talker_report_counters_of_their_own() {
        let with = BTreeMap::from([("1:1".to_owned(), 50)]);
        let without = BTreeMap::from([("1:3".to_owned(), 50)]);
        let verdict = every_talker(
            "delivery time",
            vec![
                ("talker".into(), delivery_time_kept("tsn/talker", 50, &with, "eth0", "5ms")),
                ("best-effort".into(), no_delivery_time_added("tsn/talker", 50, &without, "eth0")),
            ],
        );
        let keys: std::collections::BTreeSet<(String, String)> = verdict.counters.iter().map(|c| (c.subject.clone(), c.name.clone())).collect();
        assert_eq!(keys.len(), verdict.counters.len(), "{:?}", verdict.counters);
        assert!(
            keys.contains(&("talker tsn/talker".to_owned(), "delivery-time-kept".to_owned()))
                && keys.contains(&("best-effort tsn/talker".to_owned(), "no-delivery-time".to_owned())),
            "{keys:?}"
        );
        // Talkers of their own keep their counters' names as they were.
        let one = talker_kept_its_class("tsn/talker-1", 1, 50, &with, "eth0");
        assert_eq!(talkers_kept_their_classes(vec![("talker-1".into(), one.clone())]).counters, one.counters);
    }

    #[test]
    fn counters_are_read_per_class() {
        assert_eq!(parse_class_counters(SHOWN), BTreeMap::from([("1:1".into(), 50), ("1:3".into(), 33)]));
    }

    #[test]
    fn a_talker_whose_packets_all_land_in_best_effort_lost_its_priority() {
        let grew = BTreeMap::from([("1:3".to_owned(), 50), ("1:4".to_owned(), 2)]);
        let verdict = talker_kept_its_class("tsn-t1/talker", 1, 50, &grew, "node eth0");
        assert_eq!((verdict.passed, verdict.reason, verdict.observed.role.as_str()), (false, Some(FailureReason::WrongClass), "best-effort"));
        assert!(
            verdict.message().contains("all packets (at least 50) in 1:1 (class-1)") && verdict.message().contains("1:3 (best-effort): 50"),
            "{}",
            verdict.message()
        );
    }

    #[test]
    fn arp_in_its_own_class_cannot_make_a_wrong_class_look_right() {
        let grew = BTreeMap::from([("1:1".to_owned(), 50), ("1:4".to_owned(), 3)]);
        assert!(talker_kept_its_class("t", 1, 50, &grew, "eth0").passed);
        let short = BTreeMap::from([("1:1".to_owned(), 49), ("1:3".to_owned(), 1)]);
        let verdict = talker_kept_its_class("t", 1, 50, &short, "eth0");
        assert!(!verdict.passed && verdict.observed.role == "class-1 and best-effort", "one packet in best effort fails it: {}", verdict.message());
        assert!(verdict.observed.detail.starts_with("class-1 (49), best-effort (1); "), "most first, with counts: {}", verdict.observed.detail);
        let mostly_best_effort = BTreeMap::from([("1:1".to_owned(), 3), ("1:3".to_owned(), 47)]);
        let verdict = talker_kept_its_class("t", 1, 50, &mostly_best_effort, "eth0");
        assert_eq!(verdict.observed.role, "class-1 and best-effort", "the role is in the classes' order, whatever the counts");
        assert!(verdict.observed.detail.starts_with("best-effort (47), class-1 (3); "), "{}", verdict.observed.detail);
        let lost = BTreeMap::from([("1:1".to_owned(), 10), ("1:4".to_owned(), 40)]);
        let verdict = talker_kept_its_class("t", 1, 50, &lost, "eth0");
        assert_eq!(verdict.observed.role, "missing", "ARP cannot make up for packets that never came");
        assert!(verdict.observed.detail.starts_with("10 of at least 50 came; "), "{}", verdict.observed.detail);
    }

    #[test]
    fn talkers_together_name_each_talker_s_class_and_fail_with_the_first_that_lost_it() {
        let kept = talker_kept_its_class("ns/talker-1", 1, 50, &BTreeMap::from([("1:1".to_owned(), 50)]), "eth0");
        let lost = talker_kept_its_class("ns/talker-2", 2, 50, &BTreeMap::from([("1:3".to_owned(), 50)]), "eth0");
        let together = talkers_kept_their_classes(vec![("talker-1".into(), kept.clone()), ("talker-2".into(), lost)]);
        assert_eq!((together.passed, together.reason), (false, Some(FailureReason::WrongClass)));
        assert_eq!(
            (together.expected.role.as_str(), together.observed.role.as_str()),
            ("talker-1 class-1, talker-2 class-2", "talker-1 class-1, talker-2 best-effort")
        );
        assert!(
            together.message().contains("talker-2: best-effort (50); packets per class: 1:1 (class-1): 0, 1:2 (class-2): 0, 1:3 (best-effort): 50"),
            "{}",
            together.message()
        );
        assert_eq!(together.counters.len(), 8, "four classes per talker");
        assert!(talkers_kept_their_classes(vec![("talker-1".into(), kept)]).passed);
    }

    #[test]
    fn a_delivery_time_lost_or_changed_on_the_way_fails_naming_which() {
        let kept = BTreeMap::from([("1:1".to_owned(), 50), ("1:4".to_owned(), 2)]);
        assert!(delivery_time_kept("t", 50, &kept, "eth0", "500ms").passed);
        let lost = BTreeMap::from([("1:3".to_owned(), 50)]);
        let verdict = delivery_time_kept("t", 50, &lost, "eth0", "500ms");
        assert_eq!((verdict.passed, verdict.reason, verdict.observed.role.as_str()), (false, Some(FailureReason::DeliveryTimeChanged), "delivery-time-lost"));
        let off = BTreeMap::from([("1:1".to_owned(), 45), ("1:2".to_owned(), 5)]);
        assert_eq!(delivery_time_kept("t", 50, &off, "eth0", "500ms").observed.role, "delivery-time-kept and delivery-time-off");
    }

    #[test]
    fn a_talker_without_a_delivery_time_must_reach_the_nic_without_one() {
        let none = BTreeMap::from([("1:3".to_owned(), 50), ("1:4".to_owned(), 2)]);
        assert!(no_delivery_time_added("t", 50, &none, "eth0").passed);
        let stale = BTreeMap::from([("1:3".to_owned(), 26), ("1:1".to_owned(), 24)]);
        let verdict = no_delivery_time_added("t", 50, &stale, "eth0");
        assert_eq!(
            (verdict.passed, verdict.reason, verdict.observed.role.as_str()),
            (false, Some(FailureReason::DeliveryTimeChanged), "delivery-time-kept and no-delivery-time")
        );
        assert!(
            verdict.observed.detail.starts_with("no-delivery-time (26), delivery-time-kept (24); ") && verdict.message().contains("stale per-packet state"),
            "{}",
            verdict.message()
        );
    }

    #[test]
    fn a_best_effort_talker_belongs_in_best_effort() {
        let grew = BTreeMap::from([("1:3".to_owned(), 20)]);
        assert!(talker_kept_its_class("t", 0, 20, &grew, "eth0").passed);
        let lifted = BTreeMap::from([("1:2".to_owned(), 20)]);
        assert_eq!(talker_kept_its_class("t", 0, 20, &lifted, "eth0").observed.role, "class-2");
        let leaked = BTreeMap::from([("1:3".to_owned(), 49), ("1:2".to_owned(), 1)]);
        let verdict = talker_kept_its_class("t", 0, 50, &leaked, "eth0");
        assert_eq!((verdict.passed, verdict.observed.role.as_str()), (false, "class-2 and best-effort"), "one packet lifted out of best effort fails it");
        assert!(verdict.counters.iter().any(|c| c.name == "class-2" && c.value == 1), "{:?}", verdict.counters);
    }
}
