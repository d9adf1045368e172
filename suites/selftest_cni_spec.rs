//! Self-test of cni_spec: stand-in plugins (Debian's ptp behind a wrapper, each breaking
//! one rule of the specification) make exactly the checks that judge that rule fall short,
//! with a message naming the rule and the specification's section: a MUST as a violation
//! (failed), a SHOULD as a recommendation not met (deviates, not failed); the faithful
//! wrapper passes every check ptp passes. Every check that falls short keeps what its
//! bundle is made of: the stand-in's own calls and its node's state.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use harness::report::TrialOutcome;
use harness::spec::rules::Keyword;
use harness::spec::suite::run_check_keeping_evidence;
use harness::spec::{checks, Subject};
use harness::verdict::FailureReason;
use libtest_mimic::{Arguments, Failed, Trial};

/// A stand-in, the checks it must fall short of (those that judge the rule it breaks: each
/// a violation where the rule is a MUST, a deviation where it is a SHOULD), and the checks
/// that must reach no verdict at all, each ignored as `unjudged_as` ("not judged", "not
/// applicable") with a reason that says `because`.
struct StandIn {
    /// The plugin the stand-in wraps: `ptp` alone, from Debian's plugins; or `portmap`,
    /// chained after ptp, both Debian unstable's (1.9.1, whose portmap CHECK passes right
    /// after ADD; 1.1.1's does not, so no check of what CHECK sees could be judged).
    plugin: &'static str,
    fault: &'static str,
    falls_short: &'static [&'static str],
    unjudged: &'static [&'static str],
    unjudged_as: &'static str,
    because: &'static str,
}

const fn falls_short(fault: &'static str, falls_short: &'static [&'static str]) -> StandIn {
    StandIn { plugin: "ptp", fault, falls_short, unjudged: &[], unjudged_as: "", because: "" }
}

/// What Debian unstable's ptp + portmap chain (without masquerade) itself falls short of,
/// as the `cni_spec_unstable` portmap subject does (reviewed known failures there): portmap
/// leaves its node-wide chains after the last DEL; ptp 1.9.1's GC never reaches host-local
/// and so frees no stale reservation.
const PORTMAP_CHAIN_FALLS_SHORT: &[&str] =
    &["the_last_del_leaves_the_node_as_before_the_first_add", "gc_frees_stale_attachments_of_1_1_0", "gc_is_passed_to_delegated_plugins_of_1_1_0"];

/// Every check that follows an ADD: not judged when ADD fails.
const AFTER_ADD: &[&str] = &[
    "check_passes_after_add",
    "check_fails_when_the_container_changed",
    "del_removes_what_add_created",
    "the_last_del_leaves_the_node_as_before_the_first_add",
    "del_after_a_failed_add_succeeds_and_frees",
    "del_twice_succeeds",
    "del_after_the_netns_is_gone_succeeds_and_frees",
    "concurrent_adds_get_distinct_addresses",
];

/// Every check that judges the config at its own version.
const AT_THE_CONFIG_S_VERSION: &[&str] = &[
    "add_result_is_valid_for_its_version",
    "add_reports_what_is_really_there",
    "check_passes_after_add",
    "check_fails_when_the_container_changed",
    "del_removes_what_add_created",
    "the_last_del_leaves_the_node_as_before_the_first_add",
    "del_after_a_failed_add_succeeds_and_frees",
    "del_twice_succeeds",
    "del_without_add_succeeds",
    "del_after_the_netns_is_gone_succeeds_and_frees",
    "errors_exit_non_zero",
    "errors_are_the_specification_s_json",
    "concurrent_adds_get_distinct_addresses",
];

const STAND_INS: [StandIn; 17] = [
    falls_short("faithful", &[]),
    // Interfaces left by DEL: judged by DEL's own check and by the concurrent check's
    // "their DELs leave the node as it was" (the last DEL's check looks once the
    // container's namespace is gone, and with it the veth).
    falls_short("del-leaves-veth", &["del_removes_what_add_created", "concurrent_adds_get_distinct_addresses"]),
    // State made once per node is no attachment's: only the last DEL is to take it off.
    falls_short("node-wide-state-kept", &["the_last_del_leaves_the_node_as_before_the_first_add"]),
    // The same with a file outside the node's CNI directories (`/var/lib/stand-in-ptp`):
    // the node sees the host's `/var` through an overlay of its own, so the file is found
    // there, and never lands on the host.
    falls_short("state-outside-node-directories", &["the_last_del_leaves_the_node_as_before_the_first_add"]),
    falls_short("del-only-from-result", &["del_after_a_failed_add_succeeds_and_frees"]),
    falls_short("del-fails-twice", &["del_twice_succeeds"]),
    // Both rules ask for the JSON error structure: the error cases, and CHECK's error.
    falls_short("error-as-text", &["errors_are_the_specification_s_json", "check_fails_when_the_container_changed"]),
    // An error with exit status 0 is no error: the MUST of a non-zero exit, and CHECK that
    // "succeeds" on a changed container.
    falls_short("errors-exit-zero", &["errors_exit_non_zero", "check_fails_when_the_container_changed"]),
    // The same with code 999, which is no code of the specification's: the JSON check
    // judges the structure it printed, exit status 0 or not.
    falls_short("errors-exit-zero-code-999", &["errors_exit_non_zero", "errors_are_the_specification_s_json", "check_fails_when_the_container_changed"]),
    // Exit 0 and nothing printed: the JSON check has no error to judge, and never passes.
    StandIn {
        plugin: "ptp",
        fault: "errors-exit-zero-silent",
        falls_short: &["errors_exit_non_zero", "check_fails_when_the_container_changed"],
        unjudged: &["errors_are_the_specification_s_json"],
        unjudged_as: "not judged",
        because: "4 of 4 not judged: ptp-errors-exit-zero-silent given a malformed config: exited 0 printing no error",
    },
    // Result validity is judged at the config's version and at every claimed version.
    falls_short("interface-out-of-range", &["add_result_is_valid_for_its_version", "every_claimed_version_adds"]),
    falls_short("check-always-passes", &["check_fails_when_the_container_changed"]),
    // ADD never works: the ADD checks fail; what follows ADD was never asked, so is not judged.
    StandIn {
        plugin: "ptp",
        fault: "add-refused",
        falls_short: &["every_claimed_version_adds", "add_result_is_valid_for_its_version", "add_reports_what_is_really_there"],
        unjudged: AFTER_ADD,
        unjudged_as: "not judged",
        because: "ADD by ptp-add-refused failed",
    },
    // A config of a version the plugin does not claim is refused as the specification
    // asks: not applicable at that version, never a list of violations.
    StandIn {
        plugin: "ptp",
        fault: "claims-up-to-0-4-0",
        falls_short: &[],
        unjudged: AT_THE_CONFIG_S_VERSION,
        unjudged_as: "not applicable",
        because: "the plugins do not claim the config's cniVersion 1.0.0 (they claim 0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0)",
    },
    // A config at 0.1.0, answered with a 0.2.0 result (one format; libcni up to 0.8 did so).
    falls_short("answers-0-1-0-with-0-2-0", &[]),
    // The chain as it is: CHECK fails once portmap's own DNAT chain for the container is gone.
    StandIn { plugin: "portmap", fault: "faithful", falls_short: PORTMAP_CHAIN_FALLS_SHORT, unjudged: &[], unjudged_as: "", because: "" },
    // A chained plugin whose CHECK cannot see its own state: only the check that removes
    // that state finds it (the container's address is the first plugin's to check).
    StandIn {
        plugin: "portmap",
        fault: "check-always-passes",
        falls_short: &[
            "the_last_del_leaves_the_node_as_before_the_first_add",
            "gc_frees_stale_attachments_of_1_1_0",
            "gc_is_passed_to_delegated_plugins_of_1_1_0",
            "check_fails_when_a_chained_plugin_s_own_state_is_gone",
        ],
        unjudged: &[],
        unjudged_as: "",
        because: "",
    },
];

/// A plugin directory holding the stand-in under the name `<plugin>-<fault>`, and a
/// conflist using it, with the directories its plugins are looked up in: for ptp, alone,
/// with Debian's host-local; for portmap, chained after ptp, both Debian unstable's.
fn stand_in_plugin(stand_in: &StandIn) -> Result<(tempfile::TempDir, PathBuf, Vec<PathBuf>), Failed> {
    let (plugin, fault) = (stand_in.plugin, stand_in.fault);
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let script = harness::fixtures::fixture_path("cni-spec/stand-ins/stand-in-plugin.py");
    std::os::unix::fs::symlink(&script, dir.path().join(format!("{plugin}-{fault}"))).map_err(|e| e.to_string())?;
    // The stand-in's own bookkeeping, on the host where no check looks (see the script).
    std::fs::write(dir.path().join("records"), dir.path().join("state").display().to_string()).map_err(|e| e.to_string())?;
    let ipam = r#"{"type": "host-local", "ranges": [[{"subnet": "10.40.0.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}]}"#;
    let (plugins, plugin_dirs) = match plugin {
        "ptp" => (format!(r#"{{"type": "ptp-{fault}", "ipam": {ipam}}}"#), vec![dir.path().to_owned(), PathBuf::from("/usr/lib/cni")]),
        _ => {
            let unstable = harness::host::unstable_plugins().map_err(|why| format!("cannot run: {why}"))?.dir;
            std::fs::write(dir.path().join(format!("real-{plugin}")), unstable.join(plugin).display().to_string()).map_err(|e| e.to_string())?;
            let chained =
                format!(r#"{{"type": "ptp", "ipMasq": false, "ipam": {ipam}}}, {{"type": "{plugin}-{fault}", "capabilities": {{"portMappings": true}}}}"#);
            (chained, vec![dir.path().to_owned(), unstable])
        }
    };
    let conflist = dir.path().join(format!("{plugin}-{fault}.conflist"));
    std::fs::write(&conflist, format!(r#"{{"cniVersion": "1.0.0", "name": "stand-in", "plugins": [{plugins}]}}"#)).map_err(|e| e.to_string())?;
    Ok((dir, conflist, plugin_dirs))
}

fn check(stand_in: &StandIn) -> Result<(), Failed> {
    let (fault, expected) = (stand_in.fault, stand_in.falls_short);
    let (_dir, conflist, plugin_dirs) = stand_in_plugin(stand_in)?;
    let subject = Arc::new(Subject::load(&conflist, plugin_dirs).map_err(|e| e.to_string())?);
    let mut failed = BTreeSet::new();
    let mut messages = std::collections::BTreeMap::new();
    let mut wrong = Vec::new();
    for check in checks() {
        let (expected_reason, keyword) = match check.rule.keyword {
            Keyword::Must => (FailureReason::SpecViolation, "(MUST)"),
            Keyword::Should => (FailureReason::RecommendationNotMet, "(SHOULD)"),
        };
        let (outcome, evidence) = run_check_keeping_evidence(&subject, check, harness::diagnostics::Collect::Failures);
        match (&outcome, &evidence) {
            (TrialOutcome::Failed(_) | TrialOutcome::Deviated(_), Some(evidence)) => {
                let its_own = format!("{}-{fault}", stand_in.plugin);
                if !evidence.calls.iter().any(|call| call.plugin.ends_with(&its_own)) || evidence.node_state.is_err() {
                    wrong.push(format!(
                        "{}: its bundle's evidence lacks the calls of {its_own} or the node's state ({} calls; node state: {:?})",
                        check.rule.name,
                        evidence.calls.len(),
                        evidence.node_state.as_ref().err()
                    ));
                }
            }
            (TrialOutcome::Failed(_) | TrialOutcome::Deviated(_) | TrialOutcome::Error(_), None) => {
                wrong.push(format!("{}: fell short without evidence for its bundle", check.rule.name))
            }
            (TrialOutcome::Passed(_) | TrialOutcome::Ignored(_), Some(_)) => {
                wrong.push(format!("{}: passed or was ignored, yet kept evidence", check.rule.name))
            }
            _ => {}
        }
        match outcome {
            outcome @ (TrialOutcome::Failed(_) | TrialOutcome::Deviated(_)) => {
                let (TrialOutcome::Failed(verdict) | TrialOutcome::Deviated(verdict)) = &outcome else { unreachable!() };
                let message = verdict.message();
                if verdict.reason != Some(expected_reason)
                    || !message.contains(check.rule.section)
                    || !message.contains(check.rule.name)
                    || !message.contains(keyword)
                {
                    wrong.push(format!(
                        "{}: the message does not name the rule, its section and keyword {keyword}, or the reason is not {expected_reason:?}: {message}",
                        check.rule.name
                    ));
                }
                let as_keyword_says =
                    matches!((&outcome, check.rule.keyword), (TrialOutcome::Failed(_), Keyword::Must) | (TrialOutcome::Deviated(_), Keyword::Should));
                if !as_keyword_says {
                    wrong.push(format!(
                        "{}: a {keyword} not met must be {}, it was {}",
                        check.rule.name,
                        if check.rule.keyword == Keyword::Must { "failed" } else { "a deviation" },
                        outcome.label()
                    ));
                }
                failed.insert(check.rule.name);
                messages.insert(check.rule.name, message);
            }
            TrialOutcome::Error(error) => wrong.push(format!("{}: error instead of a verdict: {error}", check.rule.name)),
            TrialOutcome::Ignored(reason)
                if stand_in.unjudged.contains(&check.rule.name)
                    && !(reason.starts_with(&format!("{}: ", stand_in.unjudged_as)) && reason.contains(stand_in.because)) =>
            {
                wrong.push(format!("{}: ignored, but not as {:?} because {:?}: {reason}", check.rule.name, stand_in.unjudged_as, stand_in.because))
            }
            TrialOutcome::Passed(_) if stand_in.unjudged.contains(&check.rule.name) => {
                wrong.push(format!("{}: passed, but could not have judged anything ({})", check.rule.name, stand_in.because))
            }
            TrialOutcome::Passed(_) | TrialOutcome::Ignored(_) => {}
        }
    }
    let expected: BTreeSet<&str> = expected.iter().copied().collect();
    if failed != expected {
        // What the unexpected ones said, so a run that fell short for another reason shows it.
        let unexpected: Vec<String> =
            failed.difference(&expected).map(|name| format!("{name}: {}", messages.get(name).map(String::as_str).unwrap_or_default())).collect();
        wrong.push(format!("failed {failed:?}, expected exactly {expected:?}; the unexpected said: {}", unexpected.join(" | ")));
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(wrong.join("\n").into())
    }
}

/// The last DEL's check on ptp chained with the reference TSN proxy: `faults` for the
/// proxy's, its outcome and message.
fn last_del_with_the_proxy(faults: &[&str]) -> Result<(TrialOutcome, String), Failed> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let proxy = PathBuf::from(env!("CARGO_BIN_EXE_tsn-metadata-proxy"));
    let conflist = dir.path().join("tsn.conflist");
    let plugins = serde_json::json!([
        {"type": "ptp", "ipMasq": false, "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.40.0.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
        {"type": "tsn-metadata-proxy", "nic": "eth0", "faults": faults}
    ]);
    std::fs::write(&conflist, serde_json::json!({"cniVersion": "1.0.0", "name": "tsn", "plugins": plugins}).to_string()).map_err(|e| e.to_string())?;
    let subject = Arc::new(
        Subject::load(&conflist, vec![proxy.parent().ok_or("the proxy's directory")?.to_owned(), PathBuf::from("/usr/lib/cni")]).map_err(|e| e.to_string())?,
    );
    let check = checks().into_iter().find(|c| c.rule.name == "the_last_del_leaves_the_node_as_before_the_first_add").ok_or("the last DEL's check")?;
    let (outcome, _) = run_check_keeping_evidence(&subject, check, harness::diagnostics::Collect::Never);
    let message = match &outcome {
        TrialOutcome::Failed(verdict) | TrialOutcome::Deviated(verdict) => verdict.message(),
        other => other.label().to_owned(),
    };
    Ok((outcome, message))
}

/// A BPF program attached with tcx (here without a link, so removing pins leaves it) is in
/// neither `tc qdisc` nor `tc filter`: the node snapshot reads tcx from the kernel, so the
/// last DEL's check finds the proxy's restorer left on the NIC, a deviation (the rule is a
/// SHOULD). The faithful proxy passes the same check: the fault is the attachment.
fn a_tcx_program_left_attached_is_found_by_the_last_del_check() -> Result<(), Failed> {
    let (faithful, message) = last_del_with_the_proxy(&[])?;
    if !matches!(faithful, TrialOutcome::Passed(_)) {
        return Err(format!("the faithful proxy should pass the last DEL's check: {message}").into());
    }
    let (left, message) = last_del_with_the_proxy(&["attach-without-links"])?;
    match (&left, message.contains("tcx egress on eth0: restore_prio")) {
        (TrialOutcome::Deviated(_), true) => Ok(()),
        _ => Err(format!("a restorer left attached with tcx should deviate from the last DEL's check, naming it: {} {message}", left.label()).into()),
    }
}

fn main() -> std::process::ExitCode {
    let args = Arguments::from_args();
    let mut trials: Vec<Trial> = STAND_INS
        .iter()
        .map(|stand_in| Trial::test(format!("stand_in_{}_{}", stand_in.plugin, stand_in.fault.replace('-', "_")), move || check(stand_in)))
        .collect();
    trials.push(Trial::test("a_tcx_program_left_attached_is_found_by_the_last_del_check", a_tcx_program_left_attached_is_found_by_the_last_del_check));
    libtest_mimic::run(&args, trials).exit_code()
}
