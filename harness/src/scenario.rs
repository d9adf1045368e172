//! Scenarios and suites, and the runner that turns a suite into a libtest-mimic test binary.
//!
//! One cluster per test binary, built by the first scenario that needs it and torn down
//! before the process exits, whether scenarios pass, fail, panic or time out (`--list`
//! and `--exact` with no match build nothing). Scenarios share the cluster and isolate
//! themselves by unique names, so they run in parallel.

use std::panic::AssertUnwindSafe;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cni_probe::Observation;
use libtest_mimic::{Arguments, Completion, Failed, Trial};

use crate::cni::{CniProfile, Feature};
use crate::error::{HarnessError, Result};
use crate::fixtures;
use crate::model::{EgressPolicy, EgressStatus, HttpRoute, LabelSelector, Labels, NamespaceSpec, Node, NodeRole, Pod, PodSpec, ROUTE_GENERATION_HEADER};
use crate::provider::{Cluster, ProviderChoice};
use crate::report::{Destinations, EventStream, RunEvent, TrialOutcome, TrialRecord};
use crate::verdict::rollout::{self, Convergence};
use crate::verdict::sequential::Decision;
use crate::verdict::snat::{self, AddressBook, ExpectedSource};
use crate::verdict::upgrade::SourceSample;
use crate::verdict::{budget, reach, Verdict};

/// What became of an egress IP after its node failed.
#[derive(Debug, Clone)]
pub enum EgressMove {
    /// Reported on another node, this long after the fault.
    Moved { status: EgressStatus, took: Duration },
    /// Still on the failed node when `wait` ran out.
    Stayed { waited: Duration, wait: String },
}

/// Every kind of wait, with its budget. Waits take their budget from here, never a literal.
#[derive(Debug, Clone)]
pub struct Timeouts {
    /// One scenario from start to verdict, set-up included.
    pub trial: Duration,
    /// How long past the trial's end its own waits get to report which of them ran out,
    /// before the runner gives up on the trial as a whole.
    pub trial_grace: Duration,
    /// One probe request (connect and answer).
    pub request: Duration,
    /// An egress policy reporting itself realized.
    pub egress_realized: Duration,
    /// Mirrored copies arriving at the mirror after the last answer.
    pub mirror_copies: Duration,
    /// Egress traffic showing the expected source after the policy reports itself realized
    /// (a control plane may say so before every node's datapath is programmed).
    pub egress_datapath: Duration,
    /// How long connections are held open around an in-place upgrade of the CNI: the
    /// upgrade must finish within it (the lab's takes milliseconds; kind's rolls an agent
    /// DaemonSet node by node).
    pub upgrade_hold: Duration,
    /// How long a trial may take to mend what it broke (an upgraded CNI rolled back, a
    /// failed node restored) before the next trial starts: on kind a rollback is another
    /// rolling upgrade.
    pub mend: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            trial: Duration::from_secs(300),
            trial_grace: Duration::from_secs(5),
            request: Duration::from_secs(3),
            egress_realized: Duration::from_secs(30),
            mirror_copies: Duration::from_secs(5),
            egress_datapath: Duration::from_secs(30),
            upgrade_hold: Duration::from_secs(180),
            mend: Duration::from_secs(600),
        }
    }
}

/// A scenario body: set-up, traffic, verdict.
pub type ScenarioBody = fn(&mut ScenarioContext) -> Result<Verdict>;

/// One declarative scenario: its name, the sentence it tests, what it needs, its body.
#[derive(Clone)]
pub struct Scenario {
    pub name: &'static str,
    pub sentence: &'static str,
    pub requires: &'static [Feature],
    /// It breaks the cluster on purpose (a node fails): it runs after every other scenario,
    /// with nothing beside it, like Kubernetes e2e's `[Serial]`/`[Disruptive]`.
    pub disruptive: bool,
    pub body: ScenarioBody,
}

/// The two CNIs of an upgrade: the one the cluster is made with, and the one it is
/// upgraded to in place (and rolled back from).
#[derive(Debug, Clone)]
pub struct UpgradePair {
    pub from: CniProfile,
    pub to: CniProfile,
}

impl UpgradePair {
    /// What an upgrade suite's reports call their subject (and key its golden records by):
    /// the pair, `<from>-to-<to>`, so no pair's records are compared with another's.
    pub fn label(&self) -> String {
        format!("{}-to-{}", self.from.name, self.to.name)
    }
}

/// Names the profile an upgrade suite upgrades to, when its default is not wanted.
pub const UPGRADE_TO_VARIABLE: &str = "CNICONF_UPGRADE_TO";

/// An upgrade pair, or why it could not be formed (a profile that does not load).
pub type Upgrade = Option<std::result::Result<Arc<UpgradePair>, String>>;

/// A CNI profile and the scenarios to run against it.
pub struct Suite {
    name: String,
    /// The profile run unless `CNICONF_CNI` names another: a name under `fixtures/cni/`.
    default_cni: String,
    /// For an upgrade suite, the profile upgraded to unless `CNICONF_UPGRADE_TO` names another.
    default_upgrade_to: Option<String>,
    scenarios: Vec<Scenario>,
    timeouts: Timeouts,
}

impl Suite {
    pub fn new(name: &str, default_cni: &str) -> Self {
        Self { name: name.to_owned(), default_cni: default_cni.to_owned(), default_upgrade_to: None, scenarios: Vec::new(), timeouts: Timeouts::default() }
    }

    /// Makes it an upgrade suite: its cluster's CNI is upgraded in place to this profile
    /// (or to the one `CNICONF_UPGRADE_TO` names) by the scenarios that say so.
    pub fn upgrading_to(mut self, default: &str) -> Self {
        self.default_upgrade_to = Some(default.to_owned());
        self
    }

    pub fn scenarios(mut self, scenarios: Vec<Scenario>) -> Self {
        self.scenarios.extend(scenarios);
        self
    }

    /// Runs the suite as a test binary: parses libtest arguments, runs, reports, tears down.
    pub fn run(self) -> ExitCode {
        // A vendor's suite binary is also its probe, run under that name in the pods.
        if let Some(probe_ended) = crate::tools::run_as_probe_when_called_so() {
            return probe_ended;
        }
        let args = Arguments::from_args();
        crate::logging::init();
        let suite_span = tracing::info_span!("suite", name = %self.name);
        let _suite = suite_span.clone().entered();
        let started = Instant::now();
        // The CNI comes from a profile file (CNICONF_CNI may name another); the Gateway
        // implementation is an axis of its own (CNICONF_GATEWAY may pick another). A profile
        // that does not load fails every scenario with the reason.
        let (mut cni, provider) = match crate::cni::profile_from_env(&self.default_cni) {
            Ok(cni) => (cni, Ok(())),
            Err(e) => (CniProfile::unloaded(&std::env::var(crate::cni::CNI_VARIABLE).unwrap_or_else(|_| self.default_cni.clone())), Err(e)),
        };
        let provider = provider
            .and_then(|()| crate::gateway::from_env(&cni.name))
            .map(|chosen| cni.gateway = chosen.or(cni.gateway.take()))
            .and_then(|()| ProviderChoice::from_env(&cni))
            .map_err(|e| e.to_string());
        let timeouts = provider.as_ref().map(|p| p.timeouts()).unwrap_or_else(|_| self.timeouts.clone());
        let destinations = Destinations::for_suite(&self.name);
        let events = EventStream::new(destinations.reporters());
        let provider_name = provider.as_ref().map(|p| p.name()).unwrap_or("unknown");
        let mut features: Vec<Feature> = self.scenarios.iter().flat_map(|s| s.requires.iter().copied()).collect();
        features.dedup();
        let upgrade = self.default_upgrade_to.as_ref().map(|default| {
            let to = std::env::var(UPGRADE_TO_VARIABLE).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.clone());
            crate::cni::load_profile(&to)
                .map(|to| Arc::new(UpgradePair { from: cni.clone(), to }))
                .map_err(|e| format!("the profile to upgrade to ({UPGRADE_TO_VARIABLE}={to}): {e}"))
        });
        let collection = crate::diagnostics::Collect::from_env()
            .map(|mode| Collection { root: destinations.bundles.clone(), mode, profile_commands: cni.node_collectors.clone() })
            .map_err(|e| e.to_string());
        let run = Arc::new(SuiteRun { collection, cni, upgrade, features, provider, timeouts, cluster: Mutex::new(None), events, trials: AtomicUsize::new(0) });
        let trial_of = |scenario: Scenario| {
            let run = Arc::clone(&run);
            let suite_span = suite_span.clone();
            Trial::ignorable_test(scenario.name, move || {
                let _trial = tracing::info_span!(parent: &suite_span, "trial", scenario = scenario.name).entered();
                let record = run.run_trial(&scenario);
                run.events.emit(RunEvent::TrialFinished(&record));
                match record.outcome {
                    TrialOutcome::Passed(_) => Ok(Completion::Completed),
                    TrialOutcome::Ignored(reason) => Ok(Completion::ignored_with(reason)),
                    failed => Err(Failed::from(failed.message())),
                }
            })
        };
        let (alone, shared): (Vec<Scenario>, Vec<Scenario>) = self.scenarios.iter().cloned().partition(|s| s.disruptive);
        let (alone, shared): (Vec<Trial>, Vec<Trial>) = (alone.into_iter().map(trial_of).collect(), shared.into_iter().map(trial_of).collect());
        if args.list {
            return libtest_mimic::run(&args, shared.into_iter().chain(alone).collect()).exit_code();
        }
        destinations.clear_earlier_bundles();
        let subject = match &run.upgrade {
            Some(Ok(pair)) => pair.label(),
            _ => run.cni.name.clone(),
        };
        run.events.emit(RunEvent::Started { suite: &self.name, provider: provider_name, cni: &subject });
        let conclusion = run_shared_then_alone(&args, shared, alone);
        // Conclusion::exit would skip every Drop: tear down first, then report, then exit.
        let teardown = run.teardown();
        run.events.emit(RunEvent::Finished { elapsed: started.elapsed() });
        let reports = run.events.finish();
        for problem in reports.problems.iter().chain(teardown.as_ref().err()) {
            tracing::error!("{problem}");
        }
        crate::cleanup::wait_if_interrupted();
        if conclusion.has_failed() || !reports.problems.is_empty() || teardown.is_err() {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    }
}

/// Runs the `shared` trials side by side, then each of the `alone` (disruptive) trials
/// after all of them, one at a time, with nothing beside it.
pub fn run_shared_then_alone(args: &Arguments, shared: Vec<Trial>, alone: Vec<Trial>) -> libtest_mimic::Conclusion {
    let mut conclusion = libtest_mimic::run(args, shared);
    if !alone.is_empty() {
        let one_at_a_time = Arguments { test_threads: Some(1), ..args.clone() };
        let serial = libtest_mimic::run(&one_at_a_time, alone);
        conclusion.num_filtered_out += serial.num_filtered_out;
        conclusion.num_passed += serial.num_passed;
        conclusion.num_failed += serial.num_failed;
        conclusion.num_ignored += serial.num_ignored;
        conclusion.num_measured += serial.num_measured;
    }
    conclusion
}

/// The state one suite run shares between its trials.
struct SuiteRun {
    cni: CniProfile,
    /// Where and when trials leave a diagnostics bundle, or why the mode is not understood.
    collection: std::result::Result<Collection, String>,
    upgrade: Upgrade,
    /// Everything the suite's scenarios need, for providers that install add-ons.
    features: Vec<Feature>,
    provider: std::result::Result<ProviderChoice, String>,
    timeouts: Timeouts,
    /// Built on first use; an error is kept so every trial reports the same one.
    cluster: Mutex<Option<std::result::Result<Arc<dyn Cluster>, String>>>,
    events: EventStream,
    trials: AtomicUsize,
}

impl SuiteRun {
    fn cluster(&self) -> std::result::Result<Arc<dyn Cluster>, String> {
        let mut slot = self.cluster.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(built) = slot.as_ref() {
            return built.clone();
        }
        let built = match &self.provider {
            Ok(provider) => provider.provision(&self.cni, &self.features).map_err(|e| e.to_string()),
            Err(e) => Err(e.clone()),
        };
        match &built {
            Ok(cluster) => {
                // An upgrade's report names both versions: what the cluster is made with, and
                // what it is upgraded to.
                let mut info = cluster.info().clone();
                if let Some(Ok(pair)) = &self.upgrade {
                    let binaries = std::env::current_exe()
                        .ok()
                        .and_then(|exe| exe.parent().and_then(|deps| deps.parent()).map(std::path::Path::to_path_buf))
                        .unwrap_or_default();
                    info.components.extend(crate::provider::components::upgraded_to(&pair.to, &binaries));
                }
                self.events.emit(RunEvent::ClusterReady(&info))
            }
            Err(error) => self.events.emit(RunEvent::ProvisioningFailed { error }),
        }
        *slot = Some(built.clone());
        built
    }

    fn run_trial(&self, scenario: &Scenario) -> TrialRecord {
        let started = Instant::now();
        let mut provided_by_harness = Vec::new();
        let mut bundle = None;
        let outcome = match self.cannot_host(scenario) {
            Some(reason) => TrialOutcome::Ignored(reason),
            None => match (self.cluster(), &self.collection) {
                (_, Err(reason)) => TrialOutcome::Error(reason.clone()),
                (Ok(cluster), Ok(collection)) => {
                    let trial = self.trials.fetch_add(1, Ordering::SeqCst) + 1;
                    // What the harness itself provides for this scenario is said, never credited
                    // to the CNI under test.
                    provided_by_harness =
                        crate::provider::components::harness_parts_for(&cluster.info().components, scenario.requires).iter().map(|c| c.name.clone()).collect();
                    // Other processes of the run may share the cluster: a disruptive trial waits
                    // until it has it alone, and keeps others out until it ends.
                    let _beside = crate::provider::runs::trial_lock(&cluster.info().cluster, scenario.disruptive);
                    let (outcome, collected) =
                        run_scenario_collecting(&cluster, scenario, &self.timeouts, &format!("t{trial}"), self.upgrade.clone(), Some(collection));
                    bundle = collected;
                    outcome
                }
                (Err(error), _) => TrialOutcome::Error(format!("cluster could not be provisioned: {error}")),
            },
        };
        TrialRecord {
            scenario: scenario.name.to_owned(),
            sentence: scenario.sentence.to_owned(),
            outcome,
            duration: started.elapsed(),
            provided_by_harness,
            bundle,
        }
    }

    fn cannot_host(&self, scenario: &Scenario) -> Option<String> {
        // A configuration error (an unknown provider, a broken profile) is every trial's
        // error, never hidden behind a feature the placeholder profile lacks.
        let provider = self.provider.as_ref().ok()?;
        if let Some(reason) = provider.unavailable(&self.cni) {
            return Some(reason);
        }
        scenario.requires.iter().find_map(|&feature| {
            if let Some(reason) = self.cni.lacks(feature) {
                return Some(reason);
            }
            provider.cannot_host(&self.cni, feature)
        })
    }

    fn teardown(&self) -> std::result::Result<(), String> {
        let built = self.cluster.lock().unwrap_or_else(|e| e.into_inner()).take();
        match built {
            Some(Ok(cluster)) => cluster.teardown().map_err(|e| format!("failed to tear down cluster {}: {e}; run `cargo xtask gc`", cluster.info().cluster)),
            _ => Ok(()),
        }
    }
}

/// Runs one scenario on `cluster` under the trial timeout, catching panics; `trial` makes
/// its object names unique. Self-tests call this directly on a faulty lab. Every wait in
/// the body takes its budget from what remains of the trial ([`crate::deadline`]), so a
/// trial that runs out of time fails naming the wait that ran out.
pub fn run_scenario(cluster: &Arc<dyn Cluster>, scenario: &Scenario, timeouts: &Timeouts, trial: &str) -> TrialOutcome {
    run_scenario_upgrading(cluster, scenario, timeouts, trial, None)
}

/// [`run_scenario`] with the upgrade pair the scenario's upgrades and rollbacks use.
pub fn run_scenario_upgrading(cluster: &Arc<dyn Cluster>, scenario: &Scenario, timeouts: &Timeouts, trial: &str, upgrade: Upgrade) -> TrialOutcome {
    run_scenario_collecting(cluster, scenario, timeouts, trial, upgrade, None).0
}

/// Where and for which trials a diagnostics bundle is collected.
#[derive(Debug, Clone)]
pub struct Collection {
    /// A bundle goes into `<root>/<scenario>-<trial>`.
    pub root: std::path::PathBuf,
    pub mode: crate::diagnostics::Collect,
    /// The profile's own commands on every node.
    pub profile_commands: Vec<crate::model::DiagnosticCommand>,
}

/// [`run_scenario_upgrading`], and with `collection` a diagnostics bundle of the trial as
/// its body left the cluster (before anything it broke is mended), for the trials the mode
/// wants; returns the outcome and where the bundle is. A trial that timed out gets a bundle
/// of the cluster without its flows (its body still holds them).
pub fn run_scenario_collecting(
    cluster: &Arc<dyn Cluster>,
    scenario: &Scenario,
    timeouts: &Timeouts,
    trial: &str,
    upgrade: Upgrade,
    collection: Option<&Collection>,
) -> (TrialOutcome, Option<std::path::PathBuf>) {
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let (bundle_tx, bundle_rx) = std::sync::mpsc::channel();
    let (mended_tx, mended_rx) = std::sync::mpsc::channel::<()>();
    let mut cx = ScenarioContext::new(Arc::clone(cluster), trial, timeouts.clone());
    cx.upgrade = upgrade;
    // A bundle compares the rule counters with these: what the trial's traffic went through.
    if collection.is_some_and(|c| c.mode.wants(true)) {
        cx.rules_at_start = Some(crate::diagnostics::rule_counters(cluster.as_ref()));
    }
    let body = scenario.body;
    // Its end moves later while a step with a planned budget of its own runs (a CNI
    // replacement: `ScenarioContext::upgrade_cni`).
    let clock = crate::deadline::TrialClock::starting_now(timeouts.trial);
    // Set when the runner gave up on the body: its own bundle is then taken already.
    let abandoned = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let span = tracing::Span::current();
    let (name, collect, body_clock, body_abandoned) = (scenario.name, collection.cloned(), clock.clone(), Arc::clone(&abandoned));
    std::thread::spawn(move || {
        let _span = span.entered();
        let outcome = {
            let _deadline = crate::deadline::enter(body_clock, "Timeouts::trial");
            outcome_of(std::panic::catch_unwind(AssertUnwindSafe(|| body(&mut cx))))
        };
        let failed = outcome.is_failure();
        let wanted = collect.filter(|c| c.mode.wants(failed) && !matches!(outcome, TrialOutcome::Ignored(_)));
        let message = outcome.message();
        let _ = done_tx.send(outcome);
        if let Some(collection) = wanted.filter(|_| !body_abandoned.load(Ordering::SeqCst)) {
            let _ = bundle_tx.send(cx.collect_bundle(name, &message, &collection));
        }
        // What the trial broke is mended here (see `Drop`), after its bundle saw it broken.
        drop(cx);
        let _ = mended_tx.send(());
    });
    let outcome = loop {
        let wait = clock.at().saturating_duration_since(Instant::now()) + timeouts.trial_grace;
        match done_rx.recv_timeout(wait) {
            Ok(outcome) => break Some(outcome),
            // Moved later while it waited: wait on.
            Err(_) if clock.at() + timeouts.trial_grace > Instant::now() => continue,
            Err(_) => break None,
        }
    };
    let timed_out = outcome.is_none();
    let outcome = outcome.unwrap_or_else(|| {
        abandoned.store(true, Ordering::SeqCst);
        let extended = clock.extended_by();
        let planned = if extended.is_zero() { String::new() } else { format!(", {}s of it planned CNI replacements", extended.as_secs()) };
        TrialOutcome::Error(format!("scenario timed out after {}s (Timeouts::trial{planned})", (timeouts.trial + extended).as_secs()))
    });
    let failed = outcome.is_failure();
    let bundle = match collection.filter(|c| c.mode.wants(failed) && !matches!(outcome, TrialOutcome::Ignored(_))) {
        None => None,
        // The body is still running with its flows: the cluster is read as it is.
        Some(collection) if timed_out => {
            Some(ScenarioContext::new(Arc::clone(cluster), trial, timeouts.clone()).collect_bundle(scenario.name, &outcome.message(), collection))
        }
        Some(_) => bundle_rx.recv_timeout(crate::diagnostics::LIMITS.time + Duration::from_secs(30)).ok(),
    };
    // The next trial (or the process's end) must not come while this one is still rolling
    // a CNI back or restoring a node: the caller's trial lock is held until then. A body
    // that ran past its budget gets as long again to end and mend (its waits end with the
    // trial's deadline, so it ends soon after; then its rollback runs).
    if mended_rx.recv_timeout(timeouts.mend).is_err() {
        tracing::error!(
            "trial {trial} of {}: {} after {} s (Timeouts::mend); later trials may find the cluster unmended",
            scenario.name,
            if timed_out { "its body, timed out, has still not ended and mended what it broke" } else { "still mending what it broke" },
            timeouts.mend.as_secs()
        );
    }
    (outcome, bundle)
}

/// A body's result as the reports say it.
fn outcome_of(result: std::thread::Result<Result<Verdict>>) -> TrialOutcome {
    match result {
        Ok(Ok(verdict)) if verdict.passed => TrialOutcome::Passed(verdict),
        Ok(Ok(verdict)) => TrialOutcome::Failed(verdict),
        Ok(Err(HarnessError::CannotObserve { reason })) => TrialOutcome::Ignored(reason),
        Ok(Err(error)) => TrialOutcome::Error(error.to_string()),
        Err(panic) => {
            let message = panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
            TrialOutcome::Error(format!("scenario panicked: {}", message.unwrap_or_default()))
        }
    }
}

/// Runs the scenarios on `cluster` as a suite run would: the ordinary ones side by side,
/// then each disruptive one alone; returns each outcome by scenario name. Self-tests use
/// it to see which scenarios a fault breaks.
pub fn run_scenarios(cluster: &Arc<dyn Cluster>, scenarios: &[Scenario], timeouts: &Timeouts) -> Vec<(&'static str, TrialOutcome)> {
    run_scenarios_collecting(cluster, scenarios, timeouts, None).into_iter().map(|(name, outcome, _)| (name, outcome)).collect()
}

/// [`run_scenarios`], each trial with its diagnostics bundle where `collection` wants one.
pub fn run_scenarios_collecting(
    cluster: &Arc<dyn Cluster>,
    scenarios: &[Scenario],
    timeouts: &Timeouts,
    collection: Option<&Collection>,
) -> Vec<(&'static str, TrialOutcome, Option<std::path::PathBuf>)> {
    let trial = |i: usize| format!("t{}", i + 1);
    let run = |i: usize, scenario: &Scenario| {
        let (outcome, bundle) = run_scenario_collecting(cluster, scenario, timeouts, &trial(i), None, collection);
        (scenario.name, outcome, bundle)
    };
    let mut outcomes: Vec<_> = std::thread::scope(|scope| {
        let running: Vec<_> =
            scenarios.iter().enumerate().filter(|(_, scenario)| !scenario.disruptive).map(|(i, scenario)| scope.spawn(move || run(i, scenario))).collect();
        running.into_iter().map(|handle| handle.join().expect("run_scenario catches panics")).collect()
    });
    outcomes.extend(scenarios.iter().enumerate().filter(|(_, s)| s.disruptive).map(|(i, scenario)| run(i, scenario)));
    outcomes
}

fn labels_of_app(service: &str) -> Labels {
    crate::model::labels([("app", service)])
}

/// What a scenario body works with: the cluster, seen through names unique to its trial.
pub struct ScenarioContext {
    cluster: Arc<dyn Cluster>,
    trial: String,
    timeouts: Timeouts,
    book: AddressBook,
    /// Nodes the trial made fail, restored when it ends.
    failed_nodes: Vec<Node>,
    /// The upgrade the trial may make, and whether the cluster runs its `to` now (then it
    /// is rolled back when the trial ends).
    upgrade: Upgrade,
    upgraded: bool,
    /// The requests the trial made, in order, for a failure's path trace.
    flows: Mutex<Vec<crate::diagnostics::Flow>>,
    /// The talkers it ran, in order, for a failure's priority trace.
    talks: Mutex<Vec<crate::diagnostics::Talk>>,
    /// Every node's iptables rule counters when it started, where a bundle may be wanted.
    rules_at_start: Option<crate::diagnostics::RuleCounters>,
}

impl Drop for ScenarioContext {
    /// What a trial breaks, it mends, whether its body returned, failed or panicked.
    fn drop(&mut self) {
        if self.upgraded {
            if let Err(e) = self.roll_back_cni() {
                tracing::error!("failed to roll the CNI back after the trial: {e}");
            }
        }
        for node in self.failed_nodes.drain(..) {
            if let Err(e) = self.cluster.restore_node(&node) {
                tracing::error!("failed to restore node {}: {e}", node.name);
            }
        }
    }
}

impl ScenarioContext {
    /// `trial` (t1, t2, ...) and the run's id make every name the trial creates unique to it.
    fn new(cluster: Arc<dyn Cluster>, trial: &str, timeouts: Timeouts) -> Self {
        let book = AddressBook { nodes: cluster.nodes().to_vec(), ..Default::default() };
        let trial = format!("{trial}-{}", cluster.info().run_id);
        Self {
            cluster,
            trial,
            timeouts,
            book,
            failed_nodes: Vec::new(),
            upgrade: None,
            upgraded: false,
            flows: Mutex::new(Vec::new()),
            talks: Mutex::new(Vec::new()),
            rules_at_start: None,
        }
    }

    /// Sends a request from `pod` to `url` and keeps it as one of the trial's flows.
    fn request(&self, pod: &Pod, url: &str) -> Result<Observation> {
        self.flows.lock().unwrap_or_else(|e| e.into_inner()).push(crate::diagnostics::Flow { client: pod.clone(), url: url.to_owned() });
        self.cluster.request_from(pod, url, self.timeouts.request)
    }

    /// Keeps a talker the trial ran as one of its flows, for a failure's priority trace.
    pub(crate) fn record_talk(&self, talk: crate::diagnostics::Talk) {
        self.talks.lock().unwrap_or_else(|e| e.into_inner()).push(talk);
    }

    /// A diagnostics bundle of this trial, as it left the cluster.
    fn collect_bundle(&self, scenario: &str, outcome: &str, collection: &Collection) -> std::path::PathBuf {
        let flows = self.flows.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let talks = self.talks.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let evidence = crate::diagnostics::TrialEvidence {
            scenario,
            trial: &self.trial,
            outcome,
            flows: &flows,
            talks: &talks,
            book: &self.book,
            profile_commands: &collection.profile_commands,
            rules_at_start: self.rules_at_start.as_ref(),
        };
        crate::diagnostics::collect(&self.cluster, &evidence, &crate::diagnostics::bundle_dir(&collection.root, scenario, &self.trial))
    }

    /// The cluster, for the families' operations built on its primitives.
    pub(crate) fn cluster(&self) -> &Arc<dyn Cluster> {
        &self.cluster
    }

    /// Creates a namespace named `<base>-<trial>-<run id>` with `labels`; returns its name.
    pub fn namespace(&mut self, base: &str, labels: Labels) -> Result<String> {
        let name = format!("{base}-{}", self.trial);
        self.cluster.create_namespace(&NamespaceSpec { name: name.clone(), labels })?;
        Ok(name)
    }

    /// Creates a pod on `node` and waits until its network is ready.
    pub fn pod(&mut self, namespace: &str, name: &str, labels: Labels, node: &Node) -> Result<Pod> {
        self.pod_reached_through(namespace, name, labels, node, &[])
    }

    /// [`pod`](Self::pod), reached also on its node's address at each of `host_ports`.
    pub fn pod_reached_through(&mut self, namespace: &str, name: &str, labels: Labels, node: &Node, host_ports: &[crate::model::HostPort]) -> Result<Pod> {
        let pod = self.cluster.create_pod(&PodSpec {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            labels,
            node: node.name.clone(),
            host_ports: host_ports.to_vec(),
        })?;
        self.book.pods.push(pod.clone());
        Ok(pod)
    }

    /// Keeps a pod created outside [`pod`](Self::pod) (several at once) in the trial's book.
    pub(crate) fn remember_pod(&mut self, pod: Pod) {
        self.book.pods.push(pod);
    }

    /// The first node that `matches`, or an error saying what was wanted.
    fn node_where(&self, what: &str, wanted: String, matches: impl Fn(&Node) -> bool) -> Result<Node> {
        self.cluster.nodes().iter().find(|n| matches(n)).cloned().ok_or_else(|| HarnessError::NotFound { what: what.into(), wanted })
    }

    /// Loads an HTTPRoute fixture and makes it the trial's: a unique name, and its path
    /// prefix under `/<trial>` so routes of parallel trials never meet.
    pub fn http_route(&mut self, fixture: &str) -> Result<HttpRoute> {
        let mut route = fixtures::load_http_route(&fixtures::fixture_path(fixture))?;
        route.name = format!("{}-{}", route.name, self.trial);
        route.path_prefix = format!("/{}{}", self.trial, route.path_prefix);
        Ok(route)
    }

    /// One probe pod per Service the route sends to (backends, then the mirror), named as
    /// the Service and spread over the workers.
    pub fn backend_pods(&mut self, namespace: &str, route: &HttpRoute) -> Result<Vec<Pod>> {
        let workers: Vec<Node> = self.cluster.nodes().iter().filter(|n| n.role == NodeRole::Worker).cloned().collect();
        if workers.is_empty() {
            return Err(HarnessError::NotFound { what: "worker node".into(), wanted: "any, for the route's backends".into() });
        }
        let services = route.backends.iter().map(|b| b.service.clone()).chain(route.mirror_to.iter().map(|(s, _)| s.clone()));
        services.enumerate().map(|(i, service)| self.pod(namespace, &service, labels_of_app(&service), &workers[i % workers.len()])).collect()
    }

    /// Applies the route as its next generation and measures from outside until a whole
    /// batch of answers comes from it; the verdict says whether it went live within the budget.
    pub fn roll_out(&mut self, namespace: &str, route: &mut HttpRoute) -> Result<Verdict> {
        let budget = Duration::from_secs_f64(self.canary_budgets()?.converge_seconds);
        // Measured up to twice the budget, so a slow route is told from a stale one.
        let limit = crate::deadline::budget(budget * 2, "twice convergeSeconds of budgets/canary.yaml");
        route.generation += 1;
        self.cluster.apply_http_route(namespace, route)?;
        // From the route being accepted (by the API, or the lab's gateway) until it answers.
        let started = Instant::now();
        let url = self.cluster.gateway_url(&route.path_prefix);
        let wanted = route.generation.to_string();
        let convergence = loop {
            let batch = self.cluster.load_from_outside(&url, &self.load(20, Some(ROUTE_GENERATION_HEADER), false))?;
            let live = batch.by_header.get(&wanted) == Some(&batch.requests) && batch.requests > 0;
            if live || started.elapsed() >= limit.duration {
                break Convergence { generation: route.generation, live, elapsed: started.elapsed(), last_seen: batch.by_header };
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        Ok(rollout::live_within(&route.name, &convergence, budget))
    }

    /// Sends requests through the route from outside, in the sequential split verdict's
    /// batches until a look decides, and judges every answer and the split by the weights.
    pub fn split_seen_outside(&mut self, route: &HttpRoute) -> Result<Verdict> {
        let backends: Vec<(String, u32)> = route.backends.iter().map(|b| (b.service.clone(), b.weight)).collect();
        let names: Vec<String> = backends.iter().map(|(n, _)| n.clone()).collect();
        let url = self.cluster.gateway_url(&route.path_prefix);
        let counts = |report: &cni_probe::LoadReport| names.iter().map(|n| report.by_server.get(n).copied().unwrap_or(0)).collect();
        let (report, mut split) =
            self.split_judged_sequentially(&url, &backends, false, counts, &format!("route {}", route.name), "the Gateway's upstream weights for the route")?;
        split.observed.detail.push_str(&format!(
            "; load: {} requests at 8 concurrent, {:.0} requests/s, latency p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms (worst batch)",
            report.requests, report.requests_per_second, report.latency_ms.p50, report.latency_ms.p90, report.latency_ms.p99
        ));
        Ok(budget::all_of([rollout::answered_by_backends(&route.name, &report, &names), split]))
    }

    /// Sends the sequential plan's batches to `url` until a look decides on the `counts` per
    /// backend; returns every answer and the split's verdict.
    fn split_judged_sequentially(
        &mut self,
        url: &str,
        backends: &[(String, u32)],
        new_connection_per_request: bool,
        counts: impl Fn(&cni_probe::LoadReport) -> Vec<u64>,
        subject: &str,
        look_at: &str,
    ) -> Result<(cni_probe::LoadReport, Verdict)> {
        let weights: Vec<u32> = backends.iter().map(|(_, w)| *w).collect();
        let plan = self.canary_budgets()?.criteria().sequential_plan(&weights);
        let mut seen = cni_probe::LoadReport::default();
        for (look, &planned) in plan.looks.iter().enumerate() {
            seen.absorb(self.cluster.load_from_outside(url, &self.load(planned - seen.requests, None, new_connection_per_request))?);
            let (decision, split, stop) = plan.decide(look, backends, &counts(&seen));
            if decision != Decision::Continue {
                return Ok((seen, plan.verdict(&split, &stop, subject, look_at)));
            }
        }
        unreachable!("the plan's last look decides")
    }
    /// Exposes the pods matching `selector` (their HTTP echo) as a LoadBalancer Service;
    /// returns its URL.
    pub fn load_balancer_service(&mut self, namespace: &str, name: &str, selector: Labels) -> Result<String> {
        self.cluster.expose_service(namespace, name, &selector, 8080)
    }

    /// Exposes the pods matching `selector` (their hold echo, [`cni_probe::hold::HOLD_PORT`])
    /// as a LoadBalancer Service; returns its address outside.
    pub fn load_balancer_service_to_the_hold_echo(&mut self, namespace: &str, name: &str, selector: Labels) -> Result<std::net::SocketAddr> {
        let url = self.cluster.expose_service(namespace, name, &selector, cni_probe::hold::HOLD_PORT)?;
        let host = url.trim_start_matches("http://").trim_end_matches('/');
        host.parse()
            .or_else(|_| host.parse::<std::net::IpAddr>().map(|ip| std::net::SocketAddr::new(ip, 80)))
            .map_err(|_| HarnessError::NotFound { what: "address".into(), wanted: format!("of Service {namespace}/{name} in {url}") })
    }

    /// Sends requests to `url` from outside, in the sequential split verdict's batches, for a
    /// split by group size (one share per pod), and judges the split between the groups.
    pub fn split_between_groups_seen_outside(&mut self, url: &str, groups: &[(&str, &[Pod])]) -> Result<Verdict> {
        let backends: Vec<(String, u32)> = groups.iter().map(|(name, pods)| ((*name).to_owned(), pods.len() as u32)).collect();
        let counts = |report: &cni_probe::LoadReport| groups.iter().map(|(_, pods)| pods.iter().filter_map(|p| report.by_server.get(&p.name)).sum()).collect();
        // A Service balances per connection: each request needs its own for independent choices.
        let look_at = "the Service's endpoint selection (per-endpoint probabilities)";
        let (report, split) = self.split_judged_sequentially(url, &backends, true, counts, &format!("Service at {url}"), look_at)?;
        let pods: Vec<String> = groups.iter().flat_map(|(_, pods)| pods.iter().map(|p| p.name.clone())).collect();
        Ok(budget::all_of([rollout::answered_by_backends(url, &report, &pods), split]))
    }

    /// Sends `requests` through a mirroring route and judges that clients were answered by
    /// the backends while `mirror` got exactly one copy of each. Only requests under the
    /// route's trial-unique path count as copies (the kubelet probes pods on `/`); the copies
    /// are awaited until exactly `requests` arrived or `Timeouts::mirror_copies` ran out.
    pub fn mirroring_seen(&mut self, route: &HttpRoute, mirror: &Pod, requests: u64) -> Result<Verdict> {
        let before = self.cluster.served_requests(mirror, &route.path_prefix)?;
        let report = self.cluster.load_from_outside(&self.cluster.gateway_url(&route.path_prefix), &self.load(requests, None, false))?;
        let backends: Vec<String> = route.backends.iter().map(|b| b.service.clone()).collect();
        let deadline = Instant::now() + crate::deadline::budget(self.timeouts.mirror_copies, "Timeouts::mirror_copies").duration;
        let copies = loop {
            let copies = self.cluster.served_requests(mirror, &route.path_prefix)?.saturating_sub(before);
            // Copies only ever grow: more than sent will not get better by waiting.
            if copies >= requests || Instant::now() >= deadline {
                break copies;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        Ok(budget::all_of([rollout::answered_by_backends(&route.name, &report, &backends), rollout::mirrored(&route.name, requests, copies)]))
    }

    /// A load from outside: `requests` at the suites' concurrency of 8 (4 for small batches).
    fn load(&self, requests: u64, header: Option<&str>, new_connection_per_request: bool) -> cni_probe::LoadOptions {
        cni_probe::LoadOptions {
            requests,
            concurrency: if requests < 50 { 4 } else { 8 },
            timeout: self.timeouts.request,
            header: header.map(str::to_owned),
            new_connection_per_request,
        }
    }

    fn canary_budgets(&self) -> Result<fixtures::CanaryBudgets> {
        fixtures::load_canary_budgets(&fixtures::fixture_path("budgets/canary.yaml"))
    }

    /// The trial's upgrade pair, or why there is none.
    pub fn upgrade_pair(&self) -> Result<Arc<UpgradePair>> {
        match &self.upgrade {
            Some(Ok(pair)) => Ok(Arc::clone(pair)),
            Some(Err(reason)) => Err(HarnessError::NotFound { what: "upgrade target".into(), wanted: reason.clone() }),
            None => Err(HarnessError::NotFound {
                what: "upgrade target".into(),
                wanted: format!("this suite upgrades to nothing (an upgrade suite names its target; {UPGRADE_TO_VARIABLE} picks another)"),
            }),
        }
    }

    /// Upgrades the cluster's CNI in place to the pair's `to`; the trial rolls it back when
    /// it ends, however it ends.
    pub fn upgrade_cni(&mut self) -> Result<Arc<UpgradePair>> {
        let pair = self.upgrade_pair()?;
        self.upgraded = true;
        self.cluster.replace_cni(&pair.to)?;
        Ok(pair)
    }

    /// Does what the upgrade to the pair's `to` needs before its switch (Cilium's pre-flight
    /// check), before a scenario starts what it holds through the switch.
    pub fn prepare_upgrade(&mut self) -> Result<()> {
        let pair = self.upgrade_pair()?;
        self.cluster.prepare_cni_replacement(&pair.to)
    }

    /// Rolls the cluster's CNI back to the pair's `from`.
    pub fn roll_back_cni(&mut self) -> Result<()> {
        let pair = self.upgrade_pair()?;
        self.cluster.replace_cni(&pair.from)?;
        self.upgraded = false;
        Ok(())
    }

    /// The waits' budgets on this trial's provider.
    pub fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }

    /// The first worker node.
    pub fn a_worker(&self) -> Result<Node> {
        self.node_where("worker node", "any".into(), |n| n.role == NodeRole::Worker)
    }

    /// The control-plane node (pods placed there tolerate its taint).
    pub fn control_plane(&self) -> Result<Node> {
        self.node_where("control-plane node", "any".into(), |n| n.role == NodeRole::ControlPlane)
    }

    /// Makes the node fail without warning; returns the moment just before the fault, from
    /// which a failover is timed. The node is restored when the trial ends, however it ends.
    pub fn fail_node(&mut self, name: &str) -> Result<Instant> {
        let node = self.node_where("node", format!("`{name}`"), |n| n.name == name)?;
        let before_the_fault = Instant::now();
        self.failed_nodes.push(node.clone());
        self.cluster.fail_node(&node)?;
        Ok(before_the_fault)
    }

    /// Waits until the policy's egress IP is reported on a node other than `from`: the new
    /// status and how long it took since `started` (the fault). The wait is bounded by
    /// twice the budget, so a slow failover is measured (and judged against the budget)
    /// rather than cut short; an IP that never moves is [`EgressMove::Stayed`], naming the
    /// wait that ran out.
    pub fn await_egress_moved(&mut self, policy: &EgressPolicy, from: &str, started: Instant, budget: Duration) -> Result<EgressMove> {
        let limit = crate::deadline::budget(budget * 2, "twice failoverSeconds of budgets/egress.yaml");
        loop {
            if let Some(status) = self.cluster.egress_status(policy, &self.selected_by(policy))? {
                if status.egress_node != from {
                    return Ok(EgressMove::Moved { status, took: started.elapsed() });
                }
            }
            if started.elapsed() >= limit.duration {
                return Ok(EgressMove::Stayed { waited: started.elapsed(), wait: limit.name.to_owned() });
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Excludes the external host from the policy's destinations (Cilium `excludedCIDRs`).
    pub fn exclude_external_host(&self, policy: &mut EgressPolicy) -> Result<()> {
        let url = self.cluster.external_echo_url();
        let host = url.trim_start_matches("http://").split(['/', ':']).next().unwrap_or_default();
        let address: std::net::Ipv4Addr =
            host.parse().map_err(|_| HarnessError::NotFound { what: "IPv4 address".into(), wanted: format!("of the external echo {url}") })?;
        policy.excluded_cidrs.push(ipnet::Ipv4Net::new(address, 32).expect("a /32 is valid"));
        Ok(())
    }

    /// A worker node that `selector` does not select (e.g. one that is not an egress gateway).
    pub fn worker_outside(&self, selector: &LabelSelector) -> Result<Node> {
        self.node_where("worker node", format!("outside the selector {:?}", selector.match_labels), |n| {
            n.role == NodeRole::Worker && !selector.matches(&n.labels)
        })
    }

    /// Loads an egress policy fixture and fills in the run-specific values: a unique name,
    /// an egress IP of this cluster, and a namespace selector narrowed to `namespace`.
    pub fn egress_policy(&mut self, fixture: &str, namespace: &str) -> Result<EgressPolicy> {
        let mut policy = fixtures::load_antrea_egress(&fixtures::fixture_path(fixture))?;
        policy.name = format!("{}-{}", policy.name, self.trial);
        policy.egress_ip = self.cluster.allocate_egress_ip()?;
        policy.namespace_selector.match_labels.insert("kubernetes.io/metadata.name".into(), namespace.to_owned());
        self.book.egress_ips.push((policy.egress_ip, format!("egress policy {}", policy.name)));
        Ok(policy)
    }

    /// Applies the policy and waits until the CNI reports it realized with its egress IP:
    /// the datapath state the traffic needs, checked before any traffic.
    pub fn realize_egress_policy(&mut self, policy: &EgressPolicy) -> Result<EgressStatus> {
        self.cluster.apply_egress_policy(policy)?;
        let budget = crate::deadline::budget(self.timeouts.egress_realized, "Timeouts::egress_realized");
        let deadline = Instant::now() + budget.duration;
        loop {
            match self.cluster.egress_status(policy, &self.selected_by(policy))? {
                Some(status) if status.egress_ip == policy.egress_ip => return Ok(status),
                _ if Instant::now() >= deadline => {
                    return Err(budget.timed_out(&format!("egress policy {} to be realized with egress IP {}", policy.name, policy.egress_ip)))
                }
                _ => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// The trial's pods that `policy` selects (its namespace selector is narrowed to the
    /// trial's namespace by [`egress_policy`](Self::egress_policy)).
    fn selected_by(&self, policy: &EgressPolicy) -> Vec<Pod> {
        let namespace = policy.namespace_selector.match_labels.get("kubernetes.io/metadata.name");
        self.book.pods.iter().filter(|p| Some(&p.namespace) == namespace && policy.pod_selector.matches(&p.labels)).cloned().collect()
    }

    /// Calls the external echo from `client` until it sees `expected` as the source or
    /// `Timeouts::egress_datapath` runs out, and judges the last answer: a datapath still
    /// being programmed is waited for, a wrong source stays a wrong source (never a bare
    /// timeout), and the time it took is in the evidence.
    pub fn source_seen_outside_once_programmed(&self, client: &Pod, expected: &ExpectedSource) -> Result<Verdict> {
        let budget = crate::deadline::budget(self.timeouts.egress_datapath, "Timeouts::egress_datapath");
        let started = Instant::now();
        let mut requests = 0;
        loop {
            let seen = self.request_external_echo(client)?;
            requests += 1;
            let mut verdict = snat::source_address(expected, &seen, client, &self.book);
            let took = started.elapsed();
            if verdict.passed {
                verdict.observed.detail.push_str(&format!("; seen after {requests} request(s) in {:.1}s", took.as_secs_f64()));
                return Ok(verdict);
            }
            if took >= budget.duration {
                verdict.observed.detail.push_str(&format!("; still so after {requests} request(s) over {:.1}s ({})", took.as_secs_f64(), budget.name));
                return Ok(verdict);
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Calls the external echo server from `pod`.
    pub fn request_external_echo(&self, pod: &Pod) -> Result<Observation> {
        self.request(pod, &self.cluster.external_echo_url())
    }

    /// Holds a TCP connection from each pod (or, for `None`, from the external host) to its
    /// address (a serving probe's hold echo, or a Service in front of one)
    /// for `duration` (an upgrade's `Timeouts::upgrade_hold`), runs `during` once they are
    /// all exchanging, and returns each connection's report by its name. `during` must end
    /// half a second before the connections do, or it was not held through: that is the
    /// budget run out, not a verdict.
    pub fn hold_connections_while<T>(
        &mut self,
        holds: &[(&str, Option<&Pod>, std::net::SocketAddr)],
        duration: Duration,
        during: impl FnOnce(&mut Self) -> Result<T>,
    ) -> Result<(Vec<(String, cni_probe::hold::HoldReport)>, T)> {
        /// Long enough for every holder to be connected and exchanging before `during`.
        const CONNECTED: Duration = Duration::from_millis(500);
        /// Held on after `during`, so what it left behind is measured too.
        const HELD_AFTER: Duration = Duration::from_millis(500);
        let cluster = Arc::clone(&self.cluster);
        std::thread::scope(|scope| {
            let holders: Vec<_> = holds
                .iter()
                .map(|(name, pod, to)| {
                    let cluster = Arc::clone(&cluster);
                    let args = vec!["hold".to_owned(), to.to_string(), "--for-ms".to_owned(), duration.as_millis().to_string()];
                    scope.spawn(move || -> Result<(String, cni_probe::hold::HoldReport)> {
                        let (output, place) = match pod {
                            Some(pod) => (cluster.run_probe_in(pod, &args)?, format!("pod {}/{}", pod.namespace, pod.name)),
                            None => (cluster.run_probe_outside(&args)?, "the external host".to_owned()),
                        };
                        Ok(((*name).to_owned(), crate::provider::probe_output(&output, || format!("cni-probe {} in {place}", args.join(" ")))?))
                    })
                })
                .collect();
            let started = Instant::now();
            std::thread::sleep(CONNECTED);
            let done = during(self);
            let took = started.elapsed();
            let reports: Result<Vec<_>> = holders.into_iter().map(|h| h.join().expect("a holder returns its report")).collect();
            let done = done?;
            // Connections that ended before `during` did were not held through it.
            if took + HELD_AFTER > duration {
                let budget = crate::deadline::Budget { duration, name: "Timeouts::upgrade_hold".into() };
                return Err(budget.timed_out(&format!(
                    "what the connections were held through to end {:.1}s before they were closed (it ended after {:.1}s)",
                    HELD_AFTER.as_secs_f64(),
                    took.as_secs_f64()
                )));
            }
            Ok((reports?, done))
        })
    }

    /// Calls the external echo from each of `pods` over and over, from a little before
    /// `during` runs until a little after, and returns every pod's samples (when each was
    /// sent, from the first, and what came back) with the window `during` took.
    pub fn sample_sources_while<T>(
        &mut self,
        pods: &[&Pod],
        during: impl FnOnce(&mut Self) -> Result<T>,
    ) -> Result<(Vec<(Pod, Vec<SourceSample>)>, std::ops::Range<Duration>, T)> {
        /// Samples taken before and after `during`: its window has a steady state on both sides.
        const STEADY: Duration = Duration::from_millis(400);
        const BETWEEN_SAMPLES: Duration = Duration::from_millis(40);
        let cluster = Arc::clone(&self.cluster);
        let (url, timeout) = (cluster.external_echo_url(), self.timeouts.request);
        let stop = std::sync::atomic::AtomicBool::new(false);
        let started = Instant::now();
        std::thread::scope(|scope| {
            let samplers: Vec<_> = pods
                .iter()
                .map(|pod| {
                    let (cluster, url, stop) = (Arc::clone(&cluster), &url, &stop);
                    scope.spawn(move || -> Result<(Pod, Vec<SourceSample>)> {
                        let mut samples = Vec::new();
                        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                            let at = started.elapsed();
                            samples.push(SourceSample { at, seen: cluster.request_from(pod, url, timeout)? });
                            std::thread::sleep(BETWEEN_SAMPLES);
                        }
                        Ok(((*pod).clone(), samples))
                    })
                })
                .collect();
            std::thread::sleep(STEADY);
            let from = started.elapsed();
            let done = during(self);
            let window = from..started.elapsed();
            std::thread::sleep(STEADY);
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            let samples: Result<Vec<_>> = samplers.into_iter().map(|s| s.join().expect("a sampler returns its samples")).collect();
            Ok((samples?, window, done?))
        })
    }

    /// Calls `server`'s echo (every pod serves one on [`crate::model::POD_PORT`]) from `client`.
    pub fn request_pod(&self, client: &Pod, server: &Pod) -> Result<Observation> {
        self.request(client, &format!("http://{}/", std::net::SocketAddr::new(server.address, crate::model::POD_PORT)))
    }

    /// Calls a port on the external host where nothing listens, from `pod`.
    pub fn request_closed_external_port(&self, pod: &Pod) -> Result<Observation> {
        self.request(pod, &self.cluster.external_closed_port_url())
    }

    /// The expectation that `pod` is seen with its own node's address.
    pub fn its_node_ip(&self, pod: &Pod) -> Result<ExpectedSource> {
        ExpectedSource::node_of(pod, &self.book)
            .ok_or_else(|| HarnessError::NotFound { what: "node".into(), wanted: format!("`{}` of pod {}/{}", pod.node, pod.namespace, pod.name) })
    }

    /// The expectation that traffic is seen with the realized policy's egress IP.
    pub fn the_egress_ip(&self, policy: &EgressPolicy, status: &EgressStatus) -> ExpectedSource {
        ExpectedSource::egress_ip(status.egress_ip, &format!("egress policy {}", policy.name), &status.egress_node)
    }

    /// Judges the source address the external host saw.
    pub fn source_seen_outside(&self, client: &Pod, expected: &ExpectedSource, observation: &Observation) -> Verdict {
        snat::source_address(expected, observation, client, &self.book)
    }

    /// Judges each pod's sources sampled while the CNI was upgraded from `from` to `to`
    /// (`window`: when), each against what that pod must be seen with.
    pub fn sources_kept_through_the_upgrade(
        &self,
        to: &str,
        from: &str,
        sampled: &[(Pod, ExpectedSource, Vec<SourceSample>)],
        window: &std::ops::Range<Duration>,
        budget: Duration,
    ) -> Verdict {
        crate::verdict::upgrade::sources_kept(to, from, sampled, window, budget, &self.book)
    }

    /// Judges a request that must be refused, naming what it was sent to.
    pub fn refused(&self, target: &str, client: &Pod, observation: &Observation) -> Verdict {
        reach::refused(target, client, observation)
    }
}

#[cfg(test)]
mod tests {
    //! The runner's mechanics (panics, timeouts, ignoring), on a stand-in cluster that
    //! carries no traffic: no verdict about a datapath is reached here.

    use super::*;
    use crate::model::EgressStatus;

    use crate::provider::stand_in::{stand_in, stand_in_seen_as};

    fn scenario(body: ScenarioBody) -> Scenario {
        Scenario { name: "s", sentence: "s", requires: &[], disruptive: false, body }
    }

    #[test]
    fn a_scenario_needing_what_the_cni_lacks_is_ignored_with_the_reason() {
        let cni = CniProfile { features: vec![], ..crate::cni::reference() };
        let run = SuiteRun {
            cni,
            upgrade: None,
            features: vec![],
            provider: Ok(ProviderChoice::Lab(Default::default())),
            timeouts: Timeouts::default(),
            cluster: Mutex::new(None),
            events: EventStream::new(vec![]),
            trials: AtomicUsize::new(0),
            collection: Ok(Collection { root: std::env::temp_dir(), mode: crate::diagnostics::Collect::Never, profile_commands: vec![] }),
        };
        let needs_egress = Scenario { requires: &[Feature::EgressGateway], ..scenario(|_| unreachable!()) };
        let record = run.run_trial(&needs_egress);
        assert_eq!(record.outcome, TrialOutcome::Ignored("CNI reference has no egress gateway".into()));
        assert!(run.cluster.lock().unwrap().is_none(), "no cluster is built for an ignored scenario");
    }

    #[test]
    fn a_disruptive_scenario_runs_after_the_others_with_nothing_beside_it() {
        use std::sync::atomic::AtomicI32;
        static RUNNING: AtomicI32 = AtomicI32::new(0);
        static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());
        let trial = |name: &'static str| {
            Trial::test(name, move || {
                let beside = RUNNING.fetch_add(1, Ordering::SeqCst);
                LOG.lock().unwrap().push(format!("{name} start beside {beside}"));
                std::thread::sleep(Duration::from_millis(150));
                RUNNING.fetch_sub(1, Ordering::SeqCst);
                LOG.lock().unwrap().push(format!("{name} end"));
                Ok(())
            })
        };
        // Its own report goes to a file, so this test's output has no second "test result".
        let log = tempfile::NamedTempFile::new().unwrap();
        let args = Arguments { test_threads: Some(4), quiet: true, logfile: Some(log.path().display().to_string()), ..Arguments::default() };
        let conclusion = run_shared_then_alone(&args, vec![trial("a"), trial("b"), trial("c")], vec![trial("failover"), trial("failover2")]);
        assert_eq!((conclusion.num_passed, conclusion.num_failed), (5, 0));
        let log = LOG.lock().unwrap();
        let started = |name: &str| log.iter().position(|l| l.starts_with(&format!("{name} start"))).unwrap();
        let ended = |name: &str| log.iter().position(|l| l == &format!("{name} end")).unwrap();
        assert!(["a", "b", "c"].iter().all(|s| ended(s) < started("failover")), "{log:#?}");
        assert!(ended("failover") < started("failover2"), "{log:#?}");
        assert!(log.contains(&"failover start beside 0".to_owned()) && log.contains(&"failover2 start beside 0".to_owned()), "{log:#?}");
    }

    /// A run of Antrea on kind, with every tool required: nothing is built until a trial runs.
    fn antrea_on_kind() -> SuiteRun {
        let kind = crate::provider::kind::KindOptions { require_tools: true, ..crate::provider::kind::KindOptions::from_env() };
        SuiteRun {
            cni: crate::cni::antrea(),
            upgrade: None,
            features: vec![],
            provider: Ok(ProviderChoice::Kind(kind)),
            timeouts: Timeouts::default(),
            cluster: Mutex::new(None),
            events: EventStream::new(vec![]),
            trials: AtomicUsize::new(0),
            collection: Ok(Collection { root: std::env::temp_dir(), mode: crate::diagnostics::Collect::Never, profile_commands: vec![] }),
        }
    }

    #[test]
    fn the_mirror_scenario_is_ignored_where_the_gateway_implementation_cannot_mirror() {
        let run = antrea_on_kind();
        let mirror = crate::scenarios::canary::all().into_iter().find(|s| s.requires.contains(&Feature::RequestMirror)).unwrap();
        let TrialOutcome::Ignored(reason) = run.run_trial(&mirror).outcome else { panic!("not ignored") };
        assert!(reason.contains("nginx-gateway-fabric 1.6.2 does not support Gateway API request mirroring"), "{reason}");
        assert!(run.cluster.lock().unwrap().is_none(), "no cluster is built for it");
    }

    #[test]
    fn kind_hosts_every_performance_scenario_for_a_cni_with_an_agent_and_existing_clusters_none() {
        let kind = antrea_on_kind();
        let provider = kind.provider.as_ref().unwrap();
        for feature in [Feature::PerformanceTools, Feature::CniResourceUsage] {
            assert_eq!(provider.cannot_host(&kind.cni, feature), None, "kind hosts {}", feature.name());
        }
        let agentless = provider.cannot_host(&crate::cni::reference(), Feature::CniResourceUsage).expect("no agent to read");
        assert!(agentless.contains("names no agent DaemonSet"), "{agentless}");
        let existing = ProviderChoice::Existing(crate::provider::existing::ExistingOptions {
            kubeconfigs: vec![],
            context: None,
            external_echo: None,
            egress_ips: vec![],
            probe_image: "cni-probe:0.1.0".into(),
        });
        for feature in [Feature::PerformanceTools, Feature::CniResourceUsage] {
            let reason = existing.cannot_host(&crate::cni::antrea(), feature).expect("not hosted on existing clusters");
            assert!(reason.contains("runs nothing on nodes of a cluster it does not own"), "{reason}");
        }
    }

    /// Connections held for less than the upgrade took were not held through it: that is
    /// `Timeouts::upgrade_hold` run out (on kind, a rolling upgrade slower than the hold),
    /// not a connection verdict, and it says how long the upgrade ran.
    #[test]
    fn connections_closed_before_the_upgrade_ended_are_the_hold_budget_run_out() {
        let holder = |_: &Pod, args: &[String]| {
            let report = cni_probe::hold::HoldReport {
                to: args[1].parse().unwrap(),
                exchanges: 10,
                longest_gap_ms: 20,
                held_ms: 900,
                ended: cni_probe::hold::HoldEnd::Held,
            };
            crate::model::ExecOutput { stdout: serde_json::to_string(&report).unwrap(), stderr: String::new(), exit: "exit status 0".into() }
        };
        let cluster: Arc<dyn Cluster> = Arc::new(crate::provider::stand_in::stand_in_with(vec![], &[]).with_probe_runs(holder));
        let mut cx = ScenarioContext::new(cluster, "t1", Timeouts::default());
        let pod = Pod {
            name: "client".into(),
            namespace: "upgrade-t1".into(),
            labels: Default::default(),
            node: "w1".into(),
            address: "10.244.1.2".parse().unwrap(),
        };
        let holds = [("pod-to-pod", Some(&pod), "10.244.2.2:8090".parse().unwrap())];
        let (held, ()) = cx.hold_connections_while(&holds, Duration::from_millis(1500), |_| Ok(())).unwrap();
        assert_eq!(held[0].0, "pod-to-pod");
        let error = cx
            .hold_connections_while(&holds, Duration::from_millis(1500), |_| {
                std::thread::sleep(Duration::from_millis(700));
                Ok(())
            })
            .unwrap_err()
            .to_string();
        // It ended after the 0.5 s the holders are given to connect and its own 0.7 s (later
        // on a busy machine): past the 1 s it had before the connections' last 0.5 s.
        let ended: f64 = error.split("it ended after ").nth(1).and_then(|rest| rest.split('s').next()).and_then(|n| n.parse().ok()).unwrap_or(0.0);
        assert!(error.contains("Timeouts::upgrade_hold") && ended >= 1.2 && error.contains("timed out after 1.5s"), "{error}");
    }

    /// A trial's mending (here a failed node restored slowly; on kind a CNI rolled back)
    /// is over before the runner moves on, so the next trial finds the cluster whole; a
    /// mend longer than `Timeouts::mend` is not waited for beyond it.
    #[test]
    fn the_runner_waits_for_a_trial_to_mend_what_it_broke_within_the_mend_budget() {
        static RESTORED: AtomicUsize = AtomicUsize::new(0);
        let slow_restore = |_: &Node| {
            std::thread::sleep(Duration::from_millis(400));
            RESTORED.fetch_add(1, Ordering::SeqCst);
        };
        let worker = Node { name: "c-worker".into(), role: NodeRole::Worker, labels: Labels::new(), address: "192.0.2.21".parse().unwrap() };
        let cluster: Arc<dyn Cluster> = Arc::new(crate::provider::stand_in::stand_in_with(vec![worker], &[]).with_restore(slow_restore));
        let fails_a_node = scenario(|cx| {
            cx.fail_node("c-worker")?;
            Err(HarnessError::NotFound { what: "the rest of this scenario".into(), wanted: "none".into() })
        });
        let outcome = run_scenario(&cluster, &fails_a_node, &Timeouts::default(), "t1");
        assert!(matches!(&outcome, TrialOutcome::Error(m) if m.contains("the rest of this scenario")), "{outcome:?}");
        assert_eq!(RESTORED.load(Ordering::SeqCst), 1, "the node was restored before the runner returned");

        let short = Timeouts { mend: Duration::from_millis(50), ..Timeouts::default() };
        let started = Instant::now();
        run_scenario(&cluster, &fails_a_node, &short, "t2");
        assert!(started.elapsed() < Duration::from_millis(350), "waited {:?}, past the 50 ms mend budget", started.elapsed());
        assert_eq!(RESTORED.load(Ordering::SeqCst), 1, "the slow restore was not waited for");
    }

    #[test]
    fn a_panicking_scenario_is_an_error_with_its_message() {
        let outcome = run_scenario(&stand_in(), &scenario(|_| panic!("boom")), &Timeouts::default(), "t1");
        assert_eq!(outcome, TrialOutcome::Error("scenario panicked: boom".into()));
    }

    #[test]
    fn a_scenario_over_its_budget_times_out() {
        let timeouts = Timeouts { trial: Duration::from_millis(50), trial_grace: Duration::from_millis(50), ..Timeouts::default() };
        let outcome = run_scenario(
            &stand_in(),
            &scenario(|_| {
                std::thread::sleep(Duration::from_millis(300));
                unreachable!()
            }),
            &timeouts,
            "t1",
        );
        assert!(matches!(&outcome, TrialOutcome::Error(m) if m.contains("timed out") && m.contains("Timeouts::trial")), "{outcome:?}");
    }

    /// The runner's caller holds the trial lock until `run_scenario` returns: a timed-out
    /// trial returns only once its body has ended and mended what it broke (its node
    /// restored), so the next disruptive trial never meets a half-mended cluster; bounded by
    /// `Timeouts::mend`.
    #[test]
    fn a_timed_out_trial_returns_only_after_its_body_ended_and_mended() {
        static RESTORED: AtomicUsize = AtomicUsize::new(0);
        let worker = Node { name: "c-worker".into(), role: NodeRole::Worker, labels: Labels::new(), address: "192.0.2.21".parse().unwrap() };
        let cluster: Arc<dyn Cluster> = Arc::new(crate::provider::stand_in::stand_in_with(vec![worker], &[]).with_restore(|_: &Node| {
            RESTORED.fetch_add(1, Ordering::SeqCst);
        }));
        let slow = scenario(|cx| {
            cx.fail_node("c-worker")?;
            std::thread::sleep(Duration::from_millis(600));
            Err(HarnessError::NotFound { what: "time".into(), wanted: "none".into() })
        });
        let timeouts = Timeouts { trial: Duration::from_millis(100), trial_grace: Duration::from_millis(50), ..Timeouts::default() };
        let started = Instant::now();
        let outcome = run_scenario(&cluster, &slow, &timeouts, "t1");
        assert!(matches!(&outcome, TrialOutcome::Error(m) if m.contains("timed out after 0s (Timeouts::trial)")), "{outcome:?}");
        assert!(started.elapsed() >= Duration::from_millis(600), "returned after {:?}, before its body ended", started.elapsed());
        assert_eq!(RESTORED.load(Ordering::SeqCst), 1, "the node was restored before the runner returned");
    }

    /// A step with a planned budget of its own (a CNI replacement on kind) moves the trial's
    /// end: the runner waits for it, and a trial that overruns even that says how much of
    /// its budget the plan gave.
    #[test]
    fn a_planned_step_moves_the_trial_s_end_for_the_runner_too() {
        let timeouts = Timeouts { trial: Duration::from_millis(100), trial_grace: Duration::from_millis(50), ..Timeouts::default() };
        let planned = scenario(|_| {
            crate::deadline::extend(Duration::from_millis(800));
            std::thread::sleep(Duration::from_millis(400));
            Err(HarnessError::CannotObserve { reason: "the planned step ended".into() })
        });
        let outcome = run_scenario(&stand_in(), &planned, &timeouts, "t1");
        assert_eq!(outcome, TrialOutcome::Ignored("the planned step ended".into()), "ended, not timed out");
        let overrun = scenario(|_| {
            crate::deadline::extend(Duration::from_secs(1));
            std::thread::sleep(Duration::from_millis(1500));
            Err(HarnessError::CannotObserve { reason: "too late".into() })
        });
        let outcome = run_scenario(&stand_in(), &overrun, &timeouts, "t2");
        assert!(
            matches!(&outcome, TrialOutcome::Error(m) if m.contains("timed out after 1s (Timeouts::trial, 1s of it planned CNI replacements)")),
            "{outcome:?}"
        );
    }

    /// A trial that waits for a policy the stand-in never realizes.
    fn awaiting_a_policy_never_realized(timeouts: &Timeouts) -> TrialOutcome {
        let body: ScenarioBody = |cx| {
            let policy = cx.egress_policy("egress/prod-web.antrea.yaml", "prod-t1-0a1b2c")?;
            cx.realize_egress_policy(&policy)?;
            unreachable!()
        };
        run_scenario(&stand_in(), &scenario(body), timeouts, "t1")
    }

    #[test]
    fn a_policy_never_realized_times_out_naming_the_policy() {
        let outcome = awaiting_a_policy_never_realized(&Timeouts { egress_realized: Duration::from_millis(10), ..Timeouts::default() });
        assert!(
            matches!(&outcome, TrialOutcome::Error(m) if m.contains("egress policy egress-prod-web-t1-0a1b2c to be realized") && m.contains("egress_realized")),
            "{outcome:?}"
        );
    }

    #[test]
    fn a_wait_longer_than_the_trial_fails_naming_the_wait_not_the_trial() {
        // The policy wait's own budget (30 s) is longer than the whole trial.
        let timeouts = Timeouts { trial: Duration::from_millis(300), egress_realized: Duration::from_secs(30), ..Timeouts::default() };
        let started = Instant::now();
        let outcome = awaiting_a_policy_never_realized(&timeouts);
        assert!(started.elapsed() < Duration::from_secs(3), "the wait ended with the trial");
        assert!(
            matches!(&outcome, TrialOutcome::Error(m) if m.contains("egress policy egress-prod-web-t1-0a1b2c to be realized") && m.contains("Timeouts::egress_realized, cut to the") && m.contains("left of Timeouts::trial") && !m.contains("scenario timed out")),
            "{outcome:?}"
        );
    }

    fn a_selected_pod_seen_outside(sources: &[&str], egress_datapath: Duration) -> TrialOutcome {
        let worker = Node { name: "c-worker".into(), role: NodeRole::Worker, labels: Labels::new(), address: "192.0.2.21".parse().unwrap() };
        let timeouts = Timeouts { egress_datapath, ..Timeouts::default() };
        run_scenario(
            &stand_in_seen_as(vec![worker.clone()], sources),
            &scenario(|cx| {
                let worker = cx.a_worker()?;
                let web = cx.pod("prod-t1-0a1b2c", "web", crate::model::labels([("role", "web")]), &worker)?;
                let status = EgressStatus { egress_node: "c-worker2".into(), egress_ip: "192.0.2.200".parse().unwrap() };
                let mut policy = cx.egress_policy("egress/prod-web.antrea.yaml", "prod-t1-0a1b2c")?;
                policy.egress_ip = status.egress_ip;
                cx.book.egress_ips.push((status.egress_ip, format!("egress policy {}", policy.name)));
                cx.source_seen_outside_once_programmed(&web, &cx.the_egress_ip(&policy, &status))
            }),
            &timeouts,
            "t1",
        )
    }

    #[test]
    fn egress_traffic_is_awaited_while_the_datapath_is_still_being_programmed() {
        // Realized, but the source node is programmed two requests later (node IP first).
        let outcome = a_selected_pod_seen_outside(&["192.0.2.21", "192.0.2.21", "192.0.2.200"], Duration::from_secs(10));
        let TrialOutcome::Passed(verdict) = &outcome else { panic!("{outcome:?}") };
        assert!(verdict.observed.detail.contains("seen after 3 request(s)"), "{}", verdict.observed.detail);
    }

    #[test]
    fn a_steady_wrong_source_is_a_wrong_source_not_a_timeout() {
        let outcome = a_selected_pod_seen_outside(&["192.0.2.21"], Duration::from_millis(600));
        let TrialOutcome::Failed(verdict) = &outcome else { panic!("{outcome:?}") };
        assert_eq!((verdict.reason, verdict.observed.role.as_str()), (Some(crate::verdict::FailureReason::WrongSource), "own-node"), "{}", verdict.message());
        assert!(verdict.message().contains("still so after") && verdict.message().contains("Timeouts::egress_datapath"), "{}", verdict.message());
    }

    #[test]
    fn set_up_errors_are_errors_not_verdicts() {
        let outcome = run_scenario(
            &stand_in(),
            &scenario(|cx| {
                let node = Node { name: "n".into(), role: NodeRole::Worker, labels: Labels::new(), address: "192.0.2.3".parse().unwrap() };
                cx.pod("ns", "web", Labels::new(), &node)?;
                unreachable!()
            }),
            &Timeouts::default(),
            "t1",
        );
        assert!(matches!(&outcome, TrialOutcome::Error(m) if m.contains("pod web is not ready")), "{outcome:?}");
    }
}
