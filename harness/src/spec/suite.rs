//! The `cni_spec` suite as a test binary: one trial per subject and check, each on a node
//! of its own, reported through the same event stream as every suite.
//!
//! Subjects: `CNICONF_SPEC_SUBJECT` (a conflist or `.conf`) with its plugins in
//! `CNICONF_SPEC_PLUGIN_DIR` (colon-separated; default Debian's `/usr/lib/cni`), and the
//! profile it comes from in `CNICONF_SPEC_PROFILE` (its node files and logs), or else
//! every conflist under `fixtures/cni-spec/`. Known failures: `CNICONF_SPEC_KNOWN_FAILURES`,
//! or `fixtures/cni-spec/known-failures.yaml`. A recommendation (SHOULD) not met is shown
//! apart and keeps the run green; `CNICONF_SPEC_STRICT=1` makes it a failure.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Completion, Failed, Trial};

use super::known::{self, KnownFailure};
use super::sandbox::Sandbox;
use super::{checks, Check, Judgement, SpecContext, Subject};
use crate::cni::runtime::DEBIAN_PLUGIN_DIR;
use crate::error::HarnessError;
use crate::report::{Destinations, EventStream, RunEvent, TrialOutcome, TrialRecord};

/// How long one check may take before it is reported as hung (a plugin that never exits).
const CHECK_BUDGET: Duration = Duration::from_secs(60);

/// The subjects of one suite run: which conflists, against which plugin binaries, at which
/// version of the specification, and what the reports call them.
pub struct SubjectSet {
    /// The suite's name: its output directory and golden records.
    pub suite: &'static str,
    pub label: String,
    pub paths: Vec<PathBuf>,
    pub plugin_dirs: Vec<PathBuf>,
    /// Every subject's conflist at this `cniVersion` instead of its own.
    pub at_version: Option<String>,
    /// Golden records are kept for the repository's own subjects only.
    pub golden: bool,
    /// Why no subject can be loaded at all (every trial is ignored with it).
    pub unavailable: Option<String>,
    /// The profile file the subjects come from (`CNICONF_SPEC_PROFILE`), if any.
    pub profile: Option<PathBuf>,
}

/// Every conflist under `fixtures/cni-spec/`.
fn fixture_subjects() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(crate::fixtures::fixture_path("cni-spec"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("conflist" | "conf")))
        .collect();
    paths.sort();
    paths
}

impl SubjectSet {
    /// `CNICONF_SPEC_SUBJECT` with `CNICONF_SPEC_PLUGIN_DIR`, or Debian's plugins under every
    /// fixture conflist.
    pub fn from_env() -> Self {
        let plugin_dirs: Vec<PathBuf> = match std::env::var_os("CNICONF_SPEC_PLUGIN_DIR") {
            Some(dirs) => std::env::split_paths(&dirs).collect(),
            None => vec![PathBuf::from(DEBIAN_PLUGIN_DIR)],
        };
        match std::env::var_os("CNICONF_SPEC_SUBJECT") {
            Some(path) => {
                let path = PathBuf::from(path);
                let label = path.file_stem().and_then(|s| s.to_str()).unwrap_or("subject").to_owned();
                // A certification's profile: its node files and logs on each check's node.
                let profile = std::env::var_os("CNICONF_SPEC_PROFILE").map(PathBuf::from);
                Self { suite: "cni_spec", label, paths: vec![path], plugin_dirs, at_version: None, golden: false, unavailable: None, profile }
            }
            None => Self {
                suite: "cni_spec",
                label: "debian-plugins".into(),
                paths: fixture_subjects(),
                plugin_dirs,
                at_version: None,
                golden: true,
                unavailable: None,
                profile: None,
            },
        }
    }

    /// Debian unstable's plugins (1.9.1 as of writing, which claim 1.1.0: STATUS and GC)
    /// under every fixture conflist at `cniVersion` 1.1.0.
    pub fn debian_unstable() -> Self {
        let (plugin_dirs, unavailable) = match crate::provider::host::unstable_plugins() {
            Ok(plugins) => (vec![plugins.dir], None),
            Err(why) => (vec![], Some(why)),
        };
        Self {
            suite: "cni_spec_unstable",
            label: "debian-unstable-plugins".into(),
            paths: fixture_subjects(),
            plugin_dirs,
            at_version: Some("1.1.0".into()),
            golden: true,
            unavailable,
            profile: None,
        }
    }

    /// Each subject, loaded or with the error that names why not; those `wanted` rejects
    /// (none of their checks runs in this process) are not loaded: loading asks every
    /// plugin for its versions, which a process of nextest's, running one check, need not
    /// pay for eleven subjects.
    fn load(&self, wanted: impl Fn(&str) -> bool) -> Vec<(String, std::result::Result<Arc<Subject>, String>)> {
        self.paths
            .iter()
            .map(|path| {
                let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("subject").to_owned();
                if !wanted(&name) {
                    return (name, Err(NOT_LOADED.to_owned()));
                }
                let loaded = match &self.unavailable {
                    Some(why) => Err(why.clone()),
                    None => Subject::load(path, self.plugin_dirs.clone())
                        .and_then(|mut subject| {
                            if let Some(version) = &self.at_version {
                                subject.list.cni_version = version.clone();
                            }
                            if let Some(profile) = &self.profile {
                                subject.profile = Some(crate::cni::load_profile(&profile.display().to_string())?);
                            }
                            Ok(Arc::new(subject))
                        })
                        .map_err(|e| e.to_string()),
                };
                (name, loaded)
            })
            .collect()
    }
}

/// Why a subject has no loaded value: no check of it runs in this process.
const NOT_LOADED: &str = "not loaded: no check of this subject runs in this process";

/// Whether any check of subject `name` runs under libtest's `args` (its filter, `--exact`
/// and `--skip`, as libtest-mimic applies them to `<subject>::<check>`).
fn runs_any_check_of(args: &Arguments, name: &str) -> bool {
    checks().iter().map(|check| format!("{name}::{}", check.rule.name)).any(|trial| {
        let matches = |pattern: &str| if args.exact { trial == pattern } else { trial.contains(pattern) };
        args.filter.as_deref().is_none_or(matches) && !args.skip.iter().any(|skipped| matches(skipped))
    })
}

/// Runs one check on a fresh node, within [`CHECK_BUDGET`].
pub fn run_check(subject: &Arc<Subject>, check: Check) -> TrialOutcome {
    run_check_keeping_evidence(subject, check, crate::diagnostics::Collect::Never).0
}

/// What a check that did not pass leaves for its bundle: every plugin call it made, and
/// its node's state when it ended (`Err`: why it could not be read).
pub struct CheckEvidence {
    pub calls: Vec<crate::cni::runtime::Invocation>,
    pub node_state: std::result::Result<Vec<String>, String>,
}

/// [`run_check`], keeping the evidence of a check that ran where `collect` wants a bundle
/// of it (a hung check's calls so far, its node's state not read: a plugin may still hold it).
pub fn run_check_keeping_evidence(subject: &Arc<Subject>, check: Check, collect: crate::diagnostics::Collect) -> (TrialOutcome, Option<CheckEvidence>) {
    if let Some(reason) = &subject.cannot_run {
        return (TrialOutcome::Ignored(format!("cannot run here: {reason}")), None);
    }
    let (done, wait) = std::sync::mpsc::channel();
    let (records_tx, records) = std::sync::mpsc::channel();
    let subject = Arc::clone(subject);
    std::thread::spawn(move || {
        let sandbox = match Sandbox::new(&subject.plugin_dirs, subject.profile.as_ref()) {
            Ok(sandbox) => sandbox,
            Err(e) => return drop(done.send((TrialOutcome::Error(e.to_string()), None))),
        };
        let _ = records_tx.send(Arc::clone(&sandbox.runtime.records));
        let mut cx = SpecContext { subject: &subject, rule: check.rule, sandbox };
        let unclaimed = subject.config_version_unclaimed().filter(|_| !super::JUDGED_AT_ANY_CONFIG_VERSION.contains(&check.rule.name));
        let judged = match unclaimed {
            Some(why) => Ok(Ok(Judgement::NotApplicable(why))),
            None => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (check.body)(&mut cx))),
        };
        let outcome = match judged {
            Ok(Ok(Judgement::Verdict(v))) if v.passed => TrialOutcome::Passed(v),
            Ok(Ok(Judgement::Verdict(v))) if v.reason == Some(crate::verdict::FailureReason::RecommendationNotMet) && !strict() => TrialOutcome::Deviated(v),
            Ok(Ok(Judgement::Verdict(v))) => TrialOutcome::Failed(v),
            Ok(Ok(Judgement::NotApplicable(reason))) => TrialOutcome::Ignored(format!("not applicable: {reason}")),
            Ok(Ok(Judgement::NotJudged(reason))) => TrialOutcome::Ignored(format!("not judged: {reason}")),
            Ok(Err(e)) => TrialOutcome::Error(e.to_string()),
            Err(panic) => TrialOutcome::Error(format!(
                "panicked: {}",
                panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()
            )),
        };
        // Read before the sandbox (and the node with it) is removed.
        let wanted = !matches!(outcome, TrialOutcome::Ignored(_)) && collect.wants(!matches!(outcome, TrialOutcome::Passed(_)));
        let evidence = wanted.then(|| CheckEvidence {
            calls: cx.sandbox.runtime.records.journal(),
            node_state: cx.sandbox.node_state().map(|lines| lines.into_iter().collect()).map_err(|e| e.to_string()),
        });
        let _ = done.send((outcome, evidence));
    });
    wait.recv_timeout(CHECK_BUDGET).unwrap_or_else(|_| {
        let evidence = collect.wants(true).then(|| CheckEvidence {
            calls: records.try_recv().map(|records| records.journal()).unwrap_or_default(),
            node_state: Err("not read: the check was still running (a plugin had not exited)".into()),
        });
        (TrialOutcome::Error(format!("the check did not finish within {}s: a plugin did not exit", CHECK_BUDGET.as_secs())), evidence)
    })
}

/// Strict mode (`CNICONF_SPEC_STRICT=1`): a recommendation not met fails like a violation.
pub fn strict() -> bool {
    std::env::var("CNICONF_SPEC_STRICT").is_ok_and(|v| v == "1" || v == "true")
}

/// Runs the suite of the subjects the environment names (see [`SubjectSet::from_env`]).
pub fn run() -> ExitCode {
    run_set(SubjectSet::from_env())
}

/// Runs the suite: parses libtest arguments, runs every subject's checks, reports.
pub fn run_set(set: SubjectSet) -> ExitCode {
    let args = Arguments::from_args();
    crate::logging::init();
    let started = Instant::now();
    let names: Vec<&str> = checks().iter().map(|c| c.rule.name).collect();
    let known_path =
        std::env::var_os("CNICONF_SPEC_KNOWN_FAILURES").map(PathBuf::from).unwrap_or_else(|| crate::fixtures::fixture_path("cni-spec/known-failures.yaml"));
    let known: std::result::Result<Arc<Vec<KnownFailure>>, String> = known::load(&known_path, &names).map(Arc::new).map_err(|e| e.to_string());
    let root = match crate::provider::host::effective_uid() {
        0 => Ok(()),
        uid => Err(HarnessError::NotRoot { uid }.to_string()),
    };
    let subjects = set.load(|name| !args.list && runs_any_check_of(&args, name));
    let label = set.label.clone();
    // The repository holds golden records of its own subjects only.
    let destinations = Destinations::for_suite(set.suite);
    let reporters = if set.golden { destinations.reporters() } else { destinations.reporters_without_golden() };
    let events = Arc::new(EventStream::new(reporters));
    let unavailable = set.unavailable.is_some();
    let collect = crate::diagnostics::Collect::from_env().map_err(|e| e.to_string());
    let bundles = Arc::new(destinations.bundles.clone());
    let mut trials = Vec::new();
    for (name, subject) in &subjects {
        for check in checks() {
            let (subject, known, root, events, name, collect, bundles) =
                (subject.clone(), known.clone(), root.clone(), Arc::clone(&events), name.clone(), collect.clone(), Arc::clone(&bundles));
            trials.push(Trial::ignorable_test(format!("{name}::{}", check.rule.name), move || {
                let trial_started = Instant::now();
                let scenario = format!("{name}::{}", check.rule.name);
                let (outcome, listed, evidence) = match (&root, &known, &subject, &collect) {
                    (Err(e), _, _, _) | (_, Err(e), _, _) | (_, _, _, Err(e)) => (TrialOutcome::Error(e.clone()), None, None),
                    (_, _, Err(e), _) if unavailable => (TrialOutcome::Ignored(e.clone()), None, None),
                    (_, _, Err(e), _) => (TrialOutcome::Error(format!("subject {name}: {e}")), None, None),
                    (Ok(()), Ok(known), Ok(subject), Ok(collect)) => {
                        let (outcome, evidence) = run_check_keeping_evidence(subject, check, *collect);
                        (outcome, known::find(known, &name, &subject.version, check.rule.name).cloned(), evidence)
                    }
                };
                let outcome = match (outcome, &listed) {
                    (TrialOutcome::Passed(_), Some(entry)) => {
                        TrialOutcome::Error(format!("listed as a known failure ({}) but passed: remove the entry from {}", entry.why, known_path_label()))
                    }
                    (outcome, _) => outcome,
                };
                let bundle = evidence.map(|evidence| {
                    let dir = bundles.join(format!("{name}__{}", check.rule.name));
                    crate::diagnostics::collect_plugin_check(&dir, &scenario, &outcome.message(), &evidence.calls, evidence.node_state)
                });
                let record = TrialRecord {
                    scenario,
                    sentence: check.rule.sentence.to_owned(),
                    outcome,
                    duration: trial_started.elapsed(),
                    provided_by_harness: vec![],
                    bundle,
                };
                events.emit(RunEvent::TrialFinished(&record));
                match (&record.outcome, listed) {
                    (TrialOutcome::Passed(_), _) => Ok(Completion::Completed),
                    (TrialOutcome::Deviated(verdict), _) => {
                        eprintln!(
                            "{}: deviates from a recommendation (SHOULD; not a failure, CNICONF_SPEC_STRICT=1 makes it one): {}",
                            record.scenario,
                            verdict.message()
                        );
                        Ok(Completion::Completed)
                    }
                    (TrialOutcome::Ignored(reason), _) => Ok(Completion::ignored_with(reason.clone())),
                    (TrialOutcome::Failed(_), Some(entry)) => Ok(Completion::ignored_with(format!("known failure (reported as failed): {}", entry.why))),
                    (failed, _) => Err(Failed::from(failed.message())),
                }
            }));
        }
    }
    if args.list {
        return libtest_mimic::run(&args, trials).exit_code();
    }
    destinations.clear_earlier_bundles();
    events.emit(RunEvent::Started { suite: set.suite, provider: "lab", cni: &label });
    events.emit(RunEvent::ClusterReady(&run_info(&label, &subjects)));
    let conclusion = libtest_mimic::run(&args, trials);
    // A check that hung still holds its node: remove every node this run made.
    crate::cleanup::run_all();
    events.emit(RunEvent::Finished { elapsed: started.elapsed() });
    let reports = events.finish();
    for problem in &reports.problems {
        tracing::error!("{problem}");
    }
    crate::cleanup::wait_if_interrupted();
    if conclusion.has_failed() || !reports.problems.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// What the run is made of, for the reports: every subject's plugins under test, with
/// their version, the spec versions they claim and their binaries; each check's node is
/// built by the harness.
fn run_info(label: &str, subjects: &[(String, std::result::Result<Arc<Subject>, String>)]) -> crate::provider::ClusterInfo {
    use crate::provider::components::{Component, Purpose, Role};
    let loaded: Vec<&Subject> = subjects.iter().filter_map(|(_, s)| s.as_deref().ok()).collect();
    let mut versions: Vec<&str> = loaded.iter().map(|s| s.version.as_str()).collect();
    versions.dedup();
    let components = loaded
        .iter()
        .map(|s| Component {
            role: Role::UnderTest,
            name: format!("{} ({})", s.name, s.list.plugin_types().collect::<Vec<_>>().join(" + ")),
            version: format!("{}; claims {}", s.version, s.claimed.join(", ")),
            origin: s.plugin_dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(":"),
            provides: vec![],
        })
        .chain([Component {
            role: Role::HarnessReference,
            name: "cni_spec node (a network namespace per check, its uplink, /var/lib/cni and bpffs)".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            origin: "harness/src/spec/sandbox.rs".into(),
            provides: vec![],
        }])
        .collect();
    crate::provider::ClusterInfo {
        provider: "lab".into(),
        cluster: "cni_spec".into(),
        run_id: crate::provider::runs::new_run_id(),
        cni: label.to_owned(),
        cni_version: versions.join(", "),
        cni_version_source: "the plugins' Debian package, or a digest of unpackaged binaries".into(),
        kernel: crate::provider::lab::shell::run("uname", &["-r"], None).map(|k| k.trim().to_owned()).unwrap_or_default(),
        ready_in: Duration::ZERO,
        purpose: Purpose::Certification,
        components,
    }
}

fn known_path_label() -> String {
    std::env::var("CNICONF_SPEC_KNOWN_FAILURES").unwrap_or_else(|_| "fixtures/cni-spec/known-failures.yaml".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_running_one_check_loads_only_its_subject() {
        let args = |words: &[&str]| Arguments::from_iter(std::iter::once("cni_spec").chain(words.iter().copied()));
        let one = args(&["--exact", "portmap::check_passes_after_add"]);
        assert!(runs_any_check_of(&one, "portmap") && !runs_any_check_of(&one, "ptp"));
        let all = args(&[]);
        assert!(runs_any_check_of(&all, "portmap") && runs_any_check_of(&all, "ptp"));
        let some = args(&["del_twice"]);
        assert!(runs_any_check_of(&some, "sbr"), "a filter on the check runs it for every subject");
        let skipped = args(&["--skip", "portmap::"]);
        assert!(!runs_any_check_of(&skipped, "portmap") && runs_any_check_of(&skipped, "ptp"));
    }
}
