//! Time slots (TSN with taprio): did each talker's datagrams leave the node NIC inside its
//! class's gate window? Judged on the listener's kernel receive times, folded onto the
//! schedule's cycle, against where the *node's own* talkers of each priority land: their
//! priority reaches the qdisc with nothing in between, so their phases are each gate as
//! seen at the listener, path delay included, measured in the same run.

use super::priority::{class_of_priority, TrafficClass, BEST_EFFORT, CLASS_1, CLASS_2};
use super::{Counter, Evidence, FailureReason, Verdict};

/// A taprio schedule: a cycle of gates, each open for one class for a while.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateSchedule {
    pub cycle_ns: u64,
    pub gates: Vec<Gate>,
}

/// One gate of a schedule: `class` may send from `open_ns` into the cycle for `length_ns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gate {
    pub class: TrafficClass,
    pub open_ns: u64,
    pub length_ns: u64,
}

/// The paper's schedule: a 40 us cycle, priority 1 for 10 us, priority 2 for 10 us, best
/// effort for 20 us.
pub fn paper_schedule() -> GateSchedule {
    GateSchedule {
        cycle_ns: 40_000,
        gates: vec![
            Gate { class: CLASS_1, open_ns: 0, length_ns: 10_000 },
            Gate { class: CLASS_2, open_ns: 10_000, length_ns: 10_000 },
            Gate { class: BEST_EFFORT, open_ns: 20_000, length_ns: 20_000 },
        ],
    }
}

impl GateSchedule {
    /// `tc qdisc ... taprio` arguments for this schedule on a NIC with a transmit queue per
    /// gate: gate *i* is traffic class *i*, each priority goes to its class's gate (by the
    /// paper's priority map), the cycle starts at CLOCK_TAI's epoch.
    pub fn taprio_arguments(&self) -> Vec<String> {
        let tc_of = |priority: u32| self.gates.iter().position(|g| g.class == class_of_priority(priority)).unwrap_or(self.gates.len() - 1);
        let mut args: Vec<String> = vec!["taprio".into(), "num_tc".into(), self.gates.len().to_string(), "map".into()];
        args.extend((0..16).map(|priority| tc_of(priority).to_string()));
        args.push("queues".into());
        args.extend((0..self.gates.len()).map(|tc| format!("1@{tc}")));
        args.extend(["base-time".into(), "0".into()]);
        for (tc, gate) in self.gates.iter().enumerate() {
            args.extend(["sched-entry".into(), "S".into(), format!("{:02x}", 1u32 << tc), gate.length_ns.to_string()]);
        }
        args.extend(["clockid".into(), "CLOCK_TAI".into()]);
        args
    }
}

/// How far a receive time may stray from its class's window (the path's jitter between
/// the NIC and the listener's kernel), each side.
pub const JITTER_TOLERANCE_NS: u64 = 2_000;
/// The share of a reference talker's datagrams its window is drawn around: a few may be
/// delayed on the way (an interrupt, another CPU's softirq) without widening it.
pub const REFERENCE_COVERAGE: f64 = 0.95;
/// The share of a talker's datagrams that must fall in its own class's window.
pub const IN_WINDOW_SHARE: f64 = 0.9;
/// Datagrams a reference talker must have been heard with to draw its window.
pub const REFERENCE_AT_LEAST: usize = 20;

/// An arc of the cycle: from `start_ns` for `length_ns`, wrapping at the cycle's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arc {
    pub start_ns: u64,
    pub length_ns: u64,
}

impl Arc {
    pub fn contains(&self, phase_ns: u64, cycle_ns: u64) -> bool {
        (phase_ns + cycle_ns - self.start_ns % cycle_ns) % cycle_ns < self.length_ns
    }

    fn overlaps(&self, other: &Arc, cycle_ns: u64) -> bool {
        self.contains(other.start_ns, cycle_ns) || other.contains(self.start_ns, cycle_ns)
    }

    fn widened(&self, by_ns: u64, cycle_ns: u64) -> Arc {
        Arc { start_ns: (self.start_ns + cycle_ns - by_ns % cycle_ns) % cycle_ns, length_ns: (self.length_ns + 2 * by_ns).min(cycle_ns) }
    }

    fn describe(&self, cycle_ns: u64) -> String {
        format!(
            "{:.1}-{:.1} us of the {:.0} us cycle",
            self.start_ns as f64 / 1e3,
            ((self.start_ns + self.length_ns) % cycle_ns) as f64 / 1e3,
            cycle_ns as f64 / 1e3
        )
    }
}

/// Where a receive time falls in the cycle (gates open at multiples of the cycle from the
/// clock's epoch: the schedule's base time is 0).
pub fn phase(time_ns: u64, cycle_ns: u64) -> u64 {
    time_ns % cycle_ns
}

/// The narrowest arc of the cycle holding at least `coverage` of `phases` (at least one).
pub fn narrowest_arc(phases: &[u64], cycle_ns: u64, coverage: f64) -> Arc {
    let mut sorted: Vec<u64> = phases.iter().map(|p| p % cycle_ns).collect();
    sorted.sort_unstable();
    let n = sorted.len();
    if n == 0 {
        return Arc { start_ns: 0, length_ns: 0 };
    }
    let k = ((coverage * n as f64).ceil() as usize).clamp(1, n);
    (0..n)
        .map(|i| {
            let j = i + k - 1;
            let end = if j < n { sorted[j] } else { sorted[j - n] + cycle_ns };
            Arc { start_ns: sorted[i], length_ns: end - sorted[i] + 1 }
        })
        .min_by_key(|arc| arc.length_ns)
        .expect("at least one phase")
}

/// Each class's window at the listener: where the node's own talker of that class landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassWindows {
    pub cycle_ns: u64,
    pub windows: Vec<(TrafficClass, Arc)>,
}

impl ClassWindows {
    fn window_of(&self, class: TrafficClass) -> Option<Arc> {
        self.windows.iter().find(|(c, _)| *c == class).map(|(_, arc)| *arc)
    }

    /// The window `phase` falls in, if any.
    fn class_at(&self, phase: u64) -> Option<TrafficClass> {
        self.windows.iter().find(|(_, arc)| arc.contains(phase, self.cycle_ns)).map(|(class, _)| *class)
    }

    fn describe(&self) -> String {
        self.windows.iter().map(|(class, arc)| format!("{}: {}", class.role, arc.describe(self.cycle_ns))).collect::<Vec<_>>().join(", ")
    }
}

/// Each class's window at the listener, from the node's own talkers (a class and the
/// receive times of its datagrams): the narrowest arc holding [`REFERENCE_COVERAGE`] of
/// them, widened by `tolerance_ns` each side. An error says why there is nothing to judge
/// against: too few datagrams heard, a class spread wider than its gate (the qdisc does
/// not gate), or two classes' windows overlapping (the path's jitter hides the gates).
pub fn windows_from_reference(schedule: &GateSchedule, reference: &[(TrafficClass, Vec<u64>)], tolerance_ns: u64) -> Result<ClassWindows, String> {
    let cycle = schedule.cycle_ns;
    let mut windows = Vec::new();
    for gate in &schedule.gates {
        let times = reference.iter().find(|(class, _)| *class == gate.class).map(|(_, times)| times.as_slice()).unwrap_or_default();
        if times.len() < REFERENCE_AT_LEAST {
            return Err(format!(
                "the node's own {} talker was heard with {} datagrams, fewer than the {REFERENCE_AT_LEAST} its window is drawn from",
                gate.class.role,
                times.len()
            ));
        }
        let phases: Vec<u64> = times.iter().map(|t| phase(*t, cycle)).collect();
        let arc = narrowest_arc(&phases, cycle, REFERENCE_COVERAGE);
        if arc.length_ns > gate.length_ns + 2 * tolerance_ns {
            return Err(format!(
                "{:.0} % of the node's own {} datagrams spread over {}, wider than its {:.0} us gate (with {:.0} us of jitter each side): the NIC's qdisc does not gate by class",
                REFERENCE_COVERAGE * 100.0,
                gate.class.role,
                arc.describe(cycle),
                gate.length_ns as f64 / 1e3,
                tolerance_ns as f64 / 1e3
            ));
        }
        windows.push((gate.class, arc.widened(tolerance_ns, cycle)));
    }
    for (i, (a, arc_a)) in windows.iter().enumerate() {
        for (b, arc_b) in &windows[i + 1..] {
            if arc_a.overlaps(arc_b, cycle) {
                return Err(format!(
                    "the node's own {} and {} datagrams arrive in overlapping windows ({} and {}): the path's jitter is wider than the gates",
                    a.role,
                    b.role,
                    arc_a.describe(cycle),
                    arc_b.describe(cycle)
                ));
            }
        }
    }
    Ok(ClassWindows { cycle_ns: cycle, windows })
}

/// Did at least `at_least` datagrams of a talker with `priority` reach the listener, and
/// at least [`IN_WINDOW_SHARE`] of them inside its class's window? A failure names the
/// window most of them fell in instead (`outside-every-window` when none), or `missing`.
pub fn talker_in_its_gate_window(talker: &str, priority: u32, at_least: u64, received_ns: &[u64], windows: &ClassWindows, nic: &str) -> Verdict {
    let expected = class_of_priority(priority);
    let mut in_class: Vec<(String, u64)> = windows.windows.iter().map(|(class, _)| (class.role.to_owned(), 0)).collect();
    let mut outside = 0;
    for time in received_ns {
        match windows.class_at(phase(*time, windows.cycle_ns)) {
            Some(class) => in_class.iter_mut().find(|(role, _)| role == class.role).expect("every window is listed").1 += 1,
            None => outside += 1,
        }
    }
    let count = |role: &str| in_class.iter().find(|(r, _)| r == role).map_or(0, |(_, n)| *n);
    let heard = received_ns.len() as u64;
    let own = count(expected.role);
    let needed = (IN_WINDOW_SHARE * heard as f64).ceil() as u64;
    let passed = heard >= at_least && own >= needed;
    let observed = if passed {
        expected.role.to_owned()
    } else if heard < at_least {
        "missing".to_owned()
    } else {
        in_class
            .iter()
            .filter(|(role, _)| role != expected.role)
            .chain([&("outside-every-window".to_owned(), outside)])
            .max_by_key(|(_, n)| *n)
            .map_or("missing".to_owned(), |(role, _)| role.clone())
    };
    let table = in_class.iter().chain([&("outside-every-window".to_owned(), outside)]).map(|(role, n)| format!("{role}: {n}")).collect::<Vec<_>>().join(", ");
    let own_window = windows.window_of(expected).map_or_else(|| "no window".to_owned(), |arc| arc.describe(windows.cycle_ns));
    Verdict {
        statistics: Vec::new(),
        counters: in_class
            .iter()
            .chain([&("outside-every-window".to_owned(), outside)])
            .map(|(role, n)| Counter { subject: talker.to_owned(), name: format!("window-{role}"), value: *n })
            .collect(),
        figures: Vec::new(),
        check: "gate window of a talker's datagrams, as the listener received them".into(),
        subject: format!("talker {talker} with priority {priority} through {nic}'s taprio"),
        passed,
        expected: Evidence::new(
            expected.role,
            format!(
                "at least {:.0} % of at least {at_least} datagrams in {}'s window ({own_window}, where the node's own priority-{priority} datagrams arrive)",
                IN_WINDOW_SHARE * 100.0,
                expected.role
            ),
        ),
        observed: Evidence::new(observed, format!("{heard} datagrams heard; per window: {table} (windows: {})", windows.describe())),
        reason: (!passed).then_some(FailureReason::OutsideGateWindow),
        look_at: format!("whether the pod's priority reaches {nic}'s taprio (a metadata proxy restores it at {nic}'s egress, after forwarding)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Receive times of `n` datagrams sent in `class`'s gate of the paper's schedule, one
    /// every few cycles, after a path delay `delay_ns` and exponential jitter of mean
    /// `jitter_ns`, over a clock that has run for a while.
    fn received_in(class: TrafficClass, n: usize, delay_ns: u64, jitter_ns: f64, rng: &mut rand::rngs::StdRng) -> Vec<u64> {
        let schedule = paper_schedule();
        let gate = schedule.gates.iter().find(|g| g.class == class).unwrap();
        (0..n as u64)
            .map(|i| {
                let cycle_start = 1_700_000_000_000_000_000 + (i * 7 + 3) * schedule.cycle_ns;
                // A burst queued behind the gate leaves back to back from its opening.
                let in_gate = (i % 8) * 200 + rng.random_range(0..200);
                let jitter = -jitter_ns * (1.0 - rng.random::<f64>()).ln();
                cycle_start + gate.open_ns + in_gate.min(gate.length_ns - 1) + delay_ns + jitter as u64
            })
            .collect()
    }

    fn reference(delay_ns: u64, rng: &mut rand::rngs::StdRng) -> Vec<(TrafficClass, Vec<u64>)> {
        [CLASS_1, CLASS_2, BEST_EFFORT].into_iter().map(|c| (c, received_in(c, 50, delay_ns, 300.0, rng))).collect()
    }

    #[test]
    fn the_paper_s_schedule_as_taprio_arguments() {
        let expected = "taprio num_tc 3 map 2 0 1 2 2 2 2 2 2 2 2 2 2 2 2 2 queues 1@0 1@1 1@2 base-time 0 sched-entry S 01 10000 sched-entry S 02 10000 sched-entry S 04 20000 clockid CLOCK_TAI";
        assert_eq!(paper_schedule().taprio_arguments().join(" "), expected);
    }

    #[test]
    fn the_narrowest_arc_wraps_at_the_end_of_the_cycle() {
        let arc = narrowest_arc(&[39_000, 39_500, 500, 1_000, 20_000], 40_000, 0.8);
        assert_eq!(arc, Arc { start_ns: 39_000, length_ns: 2_001 });
        assert!(arc.contains(0, 40_000) && arc.contains(39_999, 40_000) && !arc.contains(2_001, 40_000));
        assert_eq!(narrowest_arc(&[5], 40_000, 0.95), Arc { start_ns: 5, length_ns: 1 });
    }

    #[test]
    fn talkers_that_keep_their_priority_land_in_their_windows_whatever_the_path_delay() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        // 37 us of delay moves priority 1's window across the cycle's end.
        for delay in [0, 13_000, 37_000, 1_234_567] {
            let windows = windows_from_reference(&paper_schedule(), &reference(delay, &mut rng), JITTER_TOLERANCE_NS).unwrap();
            for (priority, class) in [(1, CLASS_1), (2, CLASS_2), (0, BEST_EFFORT)] {
                let verdict = talker_in_its_gate_window("ns/talker", priority, 50, &received_in(class, 50, delay, 300.0, &mut rng), &windows, "eth0");
                assert!(verdict.passed, "delay {delay}: {}", verdict.message());
            }
        }
    }

    #[test]
    fn a_talker_whose_priority_was_lost_lands_in_best_effort_s_window_and_fails_naming_it() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(10);
        let windows = windows_from_reference(&paper_schedule(), &reference(5_000, &mut rng), JITTER_TOLERANCE_NS).unwrap();
        let verdict = talker_in_its_gate_window("ns/talker-1", 1, 50, &received_in(BEST_EFFORT, 50, 5_000, 300.0, &mut rng), &windows, "node w1 eth0");
        assert_eq!(
            (verdict.passed, verdict.reason, verdict.expected.role.as_str(), verdict.observed.role.as_str()),
            (false, Some(FailureReason::OutsideGateWindow), "class-1", "best-effort")
        );
        assert!(verdict.message().contains("class-1: 0, class-2: 0, best-effort: 50"), "{}", verdict.message());
        // Swapped priorities: each in the other's window.
        let swapped = talker_in_its_gate_window("ns/talker-2", 2, 50, &received_in(CLASS_1, 50, 5_000, 300.0, &mut rng), &windows, "eth0");
        assert_eq!(swapped.observed.role, "class-1");
    }

    #[test]
    fn a_tenth_outside_its_window_fails_and_fewer_pass() {
        let windows = ClassWindows {
            cycle_ns: 40_000,
            windows: vec![(CLASS_1, Arc { start_ns: 0, length_ns: 10_000 }), (BEST_EFFORT, Arc { start_ns: 20_000, length_ns: 20_000 })],
        };
        let times = |outside: u64| (0..50).map(|i| if i < outside { 15_000 } else { 5_000 + 40_000 * i }).collect::<Vec<_>>();
        assert!(talker_in_its_gate_window("t", 1, 50, &times(5), &windows, "eth0").passed, "45 of 50 is 90 %");
        let six = talker_in_its_gate_window("t", 1, 50, &times(6), &windows, "eth0");
        assert!(!six.passed && six.message().contains("outside-every-window: 6"), "{}", six.message());
        let short = talker_in_its_gate_window("t", 1, 50, &times(0)[..49], &windows, "eth0");
        assert_eq!((short.passed, short.observed.role.as_str()), (false, "missing"), "a datagram lost is not a datagram in its window");
    }

    #[test]
    fn without_gating_or_with_too_much_jitter_there_is_nothing_to_judge_against() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        // A qdisc that does not gate: every class anywhere in the cycle.
        let ungated: Vec<(TrafficClass, Vec<u64>)> =
            [CLASS_1, CLASS_2, BEST_EFFORT].into_iter().map(|c| (c, (0..50).map(|_| rng.random_range(0..40_000u64)).collect())).collect();
        let error = windows_from_reference(&paper_schedule(), &ungated, JITTER_TOLERANCE_NS).unwrap_err();
        assert!(error.contains("does not gate"), "{error}");
        // Gated, but the path's jitter (mean 8 us) smears the windows into each other.
        let smeared = windows_from_reference(
            &paper_schedule(),
            &[CLASS_1, CLASS_2, BEST_EFFORT].map(|c| (c, received_in(c, 50, 0, 8_000.0, &mut rng))),
            JITTER_TOLERANCE_NS,
        )
        .unwrap_err();
        assert!(smeared.contains("does not gate") || smeared.contains("overlapping"), "{smeared}");
        let quiet = windows_from_reference(&paper_schedule(), &[(CLASS_1, vec![1; 5])], JITTER_TOLERANCE_NS).unwrap_err();
        assert!(quiet.contains("class-1 talker was heard with 5 datagrams"), "{quiet}");
    }
}
