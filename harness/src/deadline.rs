//! The trial's deadline, seen by every wait inside it: a wait takes its own named budget
//! cut to what remains of the trial, so when time runs out the error names the wait that
//! was waiting (and its pod logs or last state), never a bare "scenario timed out".

use std::cell::RefCell;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// When a trial ends, shared by its body's thread (whose waits it cuts) and the runner
/// (which gives up on the body then): a step whose planned budget is known only when it
/// starts (a CNI replacement on kind, planned node by node) moves it later with
/// [`extend`], and both see the new end.
#[derive(Debug, Clone)]
pub struct TrialClock(Arc<Mutex<ClockState>>);

#[derive(Debug)]
struct ClockState {
    at: Instant,
    extended_by: Duration,
}

impl TrialClock {
    /// A trial ending `budget` from now.
    pub fn starting_now(budget: Duration) -> Self {
        Self(Arc::new(Mutex::new(ClockState { at: Instant::now() + budget, extended_by: Duration::ZERO })))
    }

    /// When the trial ends now.
    pub fn at(&self) -> Instant {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).at
    }

    /// How much later than its own budget the trial ends, by [`extend`].
    pub fn extended_by(&self) -> Duration {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).extended_by
    }

    fn extend(&self, by: Duration) {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        state.at += by;
        state.extended_by += by;
    }
}

/// The deadline of the trial running on this thread.
#[derive(Debug, Clone)]
struct TrialDeadline {
    clock: TrialClock,
    name: &'static str,
}

thread_local! {
    static TRIAL: RefCell<Option<TrialDeadline>> = const { RefCell::new(None) };
}

/// While it lives, waits on this thread end by `clock`'s end at the latest.
#[must_use = "the deadline holds only while the guard lives"]
pub struct TrialGuard(());

impl Drop for TrialGuard {
    fn drop(&mut self) {
        TRIAL.with(|t| t.borrow_mut().take());
    }
}

/// Sets the deadline of the trial running on this thread; `name` is its budget's name.
pub fn enter(clock: TrialClock, name: &'static str) -> TrialGuard {
    TRIAL.with(|t| *t.borrow_mut() = Some(TrialDeadline { clock, name }));
    TrialGuard(())
}

/// Moves the end of the trial running on this thread `by` later (a step about to run with
/// a planned budget of its own); outside a trial, nothing.
pub fn extend(by: Duration) {
    TRIAL.with(|t| {
        if let Some(trial) = t.borrow().as_ref() {
            trial.clock.extend(by);
        }
    });
}

/// The budget one wait may use.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    pub duration: Duration,
    /// The wait's own budget name, and whether the trial's end cut it short.
    pub name: String,
}

impl Budget {
    /// A timeout error naming what was awaited and this budget.
    pub fn timed_out(&self, what: &str) -> crate::HarnessError {
        crate::HarnessError::Timeout { what: format!("{what} ({})", self.name), seconds: self.duration.as_secs_f64() }
    }
}

/// `own` (called `own_name`), or less when the trial on this thread ends sooner.
pub fn budget(own: Duration, own_name: &str) -> Budget {
    let trial = TRIAL.with(|t| t.borrow().clone());
    match trial {
        Some(trial) => {
            let left = trial.clock.at().saturating_duration_since(Instant::now());
            if left < own {
                Budget { duration: left, name: format!("{own_name}, cut to the {:.1}s left of {}", left.as_secs_f64(), trial.name) }
            } else {
                Budget { duration: own, name: own_name.to_owned() }
            }
        }
        None => Budget { duration: own, name: own_name.to_owned() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_a_trial_a_wait_keeps_its_own_budget() {
        assert_eq!(
            budget(Duration::from_secs(180), "KubeTimeouts::pod_ready"),
            Budget { duration: Duration::from_secs(180), name: "KubeTimeouts::pod_ready".into() }
        );
    }

    #[test]
    fn inside_a_trial_a_longer_wait_is_cut_and_says_so() {
        let _trial = enter(TrialClock::starting_now(Duration::from_secs(10)), "Timeouts::trial");
        let cut = budget(Duration::from_secs(180), "KubeTimeouts::pod_ready");
        assert!(cut.duration <= Duration::from_secs(10));
        assert!(cut.name.starts_with("KubeTimeouts::pod_ready, cut to the") && cut.name.ends_with("left of Timeouts::trial"), "{}", cut.name);
        assert_eq!(budget(Duration::from_secs(1), "Timeouts::request").name, "Timeouts::request", "a shorter wait is not cut");
    }

    #[test]
    fn a_step_s_planned_budget_moves_the_trial_s_end_for_its_waits_and_its_runner() {
        let clock = TrialClock::starting_now(Duration::from_secs(10));
        let runner = clock.clone();
        let _trial = enter(clock, "Timeouts::trial");
        extend(Duration::from_secs(600));
        assert!(budget(Duration::from_secs(300), "x").duration == Duration::from_secs(300), "a wait inside the step is not cut");
        assert!(runner.at() > Instant::now() + Duration::from_secs(600) && runner.extended_by() == Duration::from_secs(600));
    }

    #[test]
    fn the_guard_ends_the_deadline() {
        drop(enter(TrialClock::starting_now(Duration::ZERO), "Timeouts::trial"));
        assert_eq!(budget(Duration::from_secs(3), "x").duration, Duration::from_secs(3));
    }
}

/// Pauses between looks at something that settles in the background (the kernel's clean-up
/// of a namespace): the first after 100 ms, each next twice as long, the last ending at the
/// deadline. A state that never settles (a leftover that is a verdict) costs a handful of
/// looks, not one every 100 ms for the whole wait.
#[derive(Debug, Clone)]
pub struct Backoff {
    deadline: Instant,
    pause: Duration,
}

impl Backoff {
    /// Looks for at most `wait` from now.
    pub fn within(wait: Duration) -> Self {
        Self { deadline: Instant::now() + wait, pause: Duration::from_millis(100) }
    }

    /// Sleeps until the next look; `false` once the deadline has passed (look no more).
    pub fn pause(&mut self) -> bool {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        std::thread::sleep(self.pause.min(left));
        self.pause *= 2;
        true
    }
}

#[cfg(test)]
mod backoff_tests {
    use super::*;

    #[test]
    fn pauses_double_and_the_last_ends_at_the_deadline() {
        let started = Instant::now();
        let mut backoff = Backoff::within(Duration::from_millis(500));
        let mut looks = 0;
        while backoff.pause() {
            looks += 1;
        }
        // 100 + 200 + the 200 left: three pauses, then none.
        assert_eq!(looks, 3);
        assert!(started.elapsed() >= Duration::from_millis(500));
    }
}
