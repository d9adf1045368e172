//! Self-test of upgrade_lab by fault injection: stand-in "new versions" (Debian unstable's
//! plugins behind a wrapper that breaks one thing, written as a vendor writes a profile:
//! a directory with `profile.yaml`, a conflist and binaries) must make exactly the upgrade
//! scenarios that judge that thing fail, for the stated reason and naming the version that
//! did it; the faithful new version passes them all.

use std::path::Path;
use std::sync::Arc;

use harness::cni::{self, CniProfile};
use harness::diagnostics::Collect;
use harness::provider::lab::{Lab, LabOptions};
use harness::provider::Cluster;
use harness::report::TrialOutcome;
use harness::scenario::{run_scenario_collecting, Collection, Scenario, UpgradePair};
use harness::scenarios::upgrade;
use harness::verdict::FailureReason::{self, AddressReused, CheckFailed, ConnectionReset, LeftBehind, Regressed, VersionsOwnFault, WrongSource};
use libtest_mimic::{Arguments, Failed, Trial};

/// The pair whose new version the stand-ins break: `upgrade_lab`'s default.
const OLD: &str = "reference-portmap-firewall";
const NEW: &str = "reference-portmap-firewall-1.9.1";

const LONG_LIVED: &str = "long_lived_connections_stay_open_through_the_upgrade";
const HOST_PORT_HELD: &str = "a_connection_through_a_host_port_stays_open_through_the_upgrade";
const HOST_PORT_CHECK: &str = "check_by_the_new_version_passes_on_every_pod_with_a_host_port_the_old_version_made";
const HOST_PORT_DEL: &str = "del_by_the_new_version_removes_the_host_port_of_a_pod_the_old_version_made";
const EGRESS: &str = "egress_sources_hold_through_the_upgrade";
const PERF: &str = "pod_start_up_and_latency_do_not_regress_in_the_upgrade";
const CHECK: &str = "check_by_the_new_version_passes_on_every_pod_the_old_version_made";
const DEL: &str = "del_by_the_new_version_leaves_nothing_of_a_pod_the_old_version_made";
const REACH: &str = "old_and_new_pods_reach_each_other_with_addresses_of_their_own";
const ROLLBACK: &str = "after_a_rollback_the_old_version_checks_deletes_and_reaches_the_new_version_s_pods";

/// A new version: the plugin the wrapper stands in for, the wrapper and its fault (none:
/// Debian unstable's plugins as they are), and the scenarios it must fail with their reasons.
struct NewVersion {
    name: &'static str,
    wrapped: Option<(&'static str, Wrapper, &'static str)>,
    /// Its install step on each node (a stand-in under `fixtures/upgrade/stand-ins/`).
    on_install: Option<&'static str>,
    fails: &'static [(&'static str, FailureReason)],
    /// Scenarios not judged for this version, each with why.
    not_judged: &'static [(&'static str, &'static str)],
}

/// The stand-in a wrapped plugin runs as: `new-version.sh` (its fault in a file beside it)
/// or `slow-add.sh`.
#[derive(Clone, Copy)]
enum Wrapper {
    Faulty,
    SlowAdd,
}

/// The faulty wrapper runs `jq` on the calls it changes (ten to twenty milliseconds, half a
/// pod's start-up on the lab): the regression scenario would judge the wrapper, not the
/// fault. The slow-add wrapper is judged on it: its fault is the regression.
const WRAPPER_IS_SLOW: &[(&str, &str)] = &[(PERF, "the wrapper itself (jq on the calls it changes) slows plugin calls")];

const NEW_VERSIONS: [NewVersion; 9] = [
    NewVersion { name: "the_faithful_new_version_passes_every_upgrade_scenario", wrapped: None, on_install: None, fails: &[], not_judged: &[] },
    NewVersion {
        name: "a_new_version_whose_del_cannot_read_the_old_state_leaves_it_behind",
        wrapped: Some(("host-local", Wrapper::Faulty, "del-loses-old-state")),
        on_install: None,
        fails: &[(DEL, LeftBehind), (HOST_PORT_DEL, LeftBehind)],
        not_judged: WRAPPER_IS_SLOW,
    },
    // Its IPAM knows nothing of the old version's: CHECK does not find the old pods'
    // addresses, DEL does not free them, and new pods are handed them again.
    NewVersion {
        name: "a_new_version_that_renumbers_ipam_hands_out_old_pods_addresses",
        wrapped: Some(("host-local", Wrapper::Faulty, "renumbers-ipam")),
        on_install: None,
        fails: &[
            (CHECK, CheckFailed),
            (HOST_PORT_CHECK, CheckFailed),
            (DEL, LeftBehind),
            (HOST_PORT_DEL, LeftBehind),
            (REACH, AddressReused),
            (ROLLBACK, CheckFailed),
        ],
        not_judged: WRAPPER_IS_SLOW,
    },
    // Pod to pod is neither translated nor tracked on its way: only the connection to the
    // external host, masqueraded, loses its translation and is reset, and so does the one
    // through the hostPort (its DNAT gone, the node answers the port itself). Egress
    // traffic sampled through the switch leaves untranslated, with the pod's own address.
    NewVersion {
        name: "a_new_version_that_flushes_nat_on_install_resets_translated_connections_and_breaks_egress",
        wrapped: None,
        on_install: Some("flush-nat-on-install"),
        fails: &[(LONG_LIVED, ConnectionReset), (HOST_PORT_HELD, ConnectionReset), (HOST_PORT_CHECK, CheckFailed), (EGRESS, WrongSource)],
        not_judged: &[],
    },
    NewVersion {
        name: "a_new_version_whose_check_rejects_old_pods_fails_only_the_check",
        wrapped: Some(("bridge", Wrapper::Faulty, "check-rejects-old-pods")),
        on_install: None,
        fails: &[(CHECK, CheckFailed), (HOST_PORT_CHECK, CheckFailed)],
        not_judged: WRAPPER_IS_SLOW,
    },
    // A version's own faults, which its own pods show too (the scenarios' controls): the
    // outcome blames the version, never the crossing of versions.
    NewVersion {
        name: "a_new_version_whose_check_fails_on_its_own_pods_too_is_blamed_for_its_own_fault",
        wrapped: Some(("bridge", Wrapper::Faulty, "check-fails-on-every-pod")),
        on_install: None,
        fails: &[(CHECK, VersionsOwnFault), (HOST_PORT_CHECK, VersionsOwnFault)],
        not_judged: WRAPPER_IS_SLOW,
    },
    NewVersion {
        name: "a_new_version_whose_del_frees_nothing_of_its_own_pods_either_is_blamed_for_its_own_fault",
        wrapped: Some(("host-local", Wrapper::Faulty, "del-loses-every-reservation")),
        on_install: None,
        fails: &[(DEL, VersionsOwnFault), (HOST_PORT_DEL, VersionsOwnFault)],
        not_judged: WRAPPER_IS_SLOW,
    },
    // Only a pod with a hostPort has port mappings for DEL to remove.
    NewVersion {
        name: "a_new_version_whose_del_forgets_old_port_mappings_leaves_them_behind",
        wrapped: Some(("portmap", Wrapper::Faulty, "del-forgets-old-port-mappings")),
        on_install: None,
        fails: &[(HOST_PORT_DEL, LeftBehind)],
        not_judged: WRAPPER_IS_SLOW,
    },
    // 100 ms more per ADD: pod start-up regresses, nothing else changes.
    NewVersion {
        name: "a_new_version_slower_to_add_regresses_pod_start_up",
        wrapped: Some(("bridge", Wrapper::SlowAdd, "slow-add")),
        on_install: None,
        fails: &[(PERF, Regressed)],
        not_judged: &[],
    },
];

/// The new version as a profile directory: [`NEW`]'s, with the wrapper (if any) first on
/// its plugin path.
fn new_version(version: &NewVersion, dir: &Path) -> Result<CniProfile, Failed> {
    let shipped = cni::profile::profiles_dir().join(NEW);
    let bin = dir.join("bin");
    std::fs::create_dir(&bin).map_err(|e| e.to_string())?;
    let name = match version.wrapped {
        Some((plugin, wrapper, fault)) => {
            let stand_in = match wrapper {
                Wrapper::Faulty => "upgrade/stand-ins/new-version.sh",
                Wrapper::SlowAdd => "upgrade/stand-ins/slow-add.sh",
            };
            // Under the plugin's name, as a vendor installs a new binary in the node's one
            // plugin directory; it runs the real one (Debian unstable's) it is given.
            let real = harness::host::unstable_plugins()?.dir.join(plugin);
            let script = format!("#!/bin/sh\nexec '{}' '{}' '{}'\n", harness::fixtures::fixture_path(stand_in).display(), real.display(), bin.display());
            std::fs::write(bin.join(plugin), script)
                .and_then(|()| std::fs::set_permissions(bin.join(plugin), std::os::unix::fs::PermissionsExt::from_mode(0o755)))
                .map_err(|e| e.to_string())?;
            std::fs::write(bin.join("fault"), fault).map_err(|e| e.to_string())?;
            format!("{NEW}-{fault}")
        }
        None => NEW.to_owned(),
    };
    let name = match version.on_install {
        Some(stand_in) => format!("{name}-{stand_in}"),
        None => name,
    };
    let on_install = version
        .on_install
        .map(|stand_in| format!("\n    onInstall: {}", harness::fixtures::fixture_path(&format!("upgrade/stand-ins/{stand_in}")).display()))
        .unwrap_or_default();
    let profile = std::fs::read_to_string(shipped.join("profile.yaml")).map_err(|e| e.to_string())?;
    let profile = profile
        .replace(&format!("name: {NEW}"), &format!("name: {name}"))
        .replace("conflist: 10-lab.conflist", &format!("conflist: {}", shipped.join("10-lab.conflist").display()))
        .replace(r#"pluginDirs: ["{debian-unstable-plugins}"]"#, &format!(r#"pluginDirs: ["{}", "{{debian-unstable-plugins}}"]{on_install}"#, bin.display()));
    std::fs::write(dir.join("profile.yaml"), profile).map_err(|e| e.to_string())?;
    cni::load_profile(&dir.join("profile.yaml").display().to_string()).map_err(|e| e.to_string().into())
}

/// One scenario of the upgrade to `version`, on a lab of its own (one starts in under a
/// second): what a broken version did in one scenario (its install flushed the nodes' NAT)
/// must not be what fails the next. It must fail for the reason `version` says, naming the
/// version, or pass; a failure's bundle must hold what shows why.
fn check(version: &NewVersion, scenario: &Scenario) -> Result<(), Failed> {
    if let Err(reason) = harness::host::unstable_plugins() {
        return Err(format!("cannot run: {reason}").into());
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let to = new_version(version, dir.path())?;
    let from = cni::load_profile(OLD).map_err(|e| e.to_string())?;
    let pair = Arc::new(UpgradePair { from: from.clone(), to: to.clone() });
    let timeouts = harness::provider::lab::timeouts();
    let bundles = tempfile::tempdir().map_err(|e| e.to_string())?;
    let collection = Collection { root: bundles.path().to_owned(), mode: Collect::Failures, profile_commands: vec![] };
    let lab: Arc<dyn Cluster> = Arc::new(Lab::provision(&from, &LabOptions::from_env()?)?);
    let (outcome, bundle) = run_scenario_collecting(&lab, scenario, &timeouts, "t1", Some(Ok(Arc::clone(&pair))), Some(&collection));
    lab.teardown()?;
    // A failure's bundle holds the CNI calls of both versions: the one that did it is there.
    let mut wrong = harness::diagnostics::bundle_problems(scenario.name, outcome.is_failure(), bundle.as_deref());
    match (version.fails.iter().find(|(name, _)| *name == scenario.name), &outcome) {
        (None, TrialOutcome::Passed(_)) => {}
        (Some((_, reason)), TrialOutcome::Failed(verdict)) if verdict.reason == Some(*reason) => {
            if !verdict.message().contains(&to.name) {
                wrong.push(format!("{}: the failure should name the version that did it ({}): {}", scenario.name, to.name, verdict.message()));
            }
        }
        (expected, other) => wrong.push(format!(
            "{}: expected {}, got {}: {}",
            scenario.name,
            expected.map_or("a pass".to_owned(), |(_, r)| format!("a failure for {r:?}")),
            other.label(),
            other.message()
        )),
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(wrong.join("\n").into())
    }
}

/// The issue's false block, on real plugins: the rollback pair (Debian unstable's 1.9.1 back
/// to bookworm's 1.1.1), whose "new" version has portmap 1.1.1's CHECK fault on IPv4-only
/// attachments with mappings (fixed upstream in 1.3.0). Its CHECK of the 1.9.1 pods' host
/// ports fails, and so does its CHECK of the pods it made itself: the outcome is that
/// version's own fault, with both results, never an upgrade regression.
fn portmap_1_1_1_s_own_check_fault_is_not_blamed_on_the_upgrade() -> Result<(), Failed> {
    if let Err(reason) = harness::host::unstable_plugins() {
        return Err(format!("cannot run: {reason}").into());
    }
    let (from, to) = (cni::load_profile(NEW).map_err(|e| e.to_string())?, cni::load_profile(OLD).map_err(|e| e.to_string())?);
    let pair = Arc::new(UpgradePair { from: from.clone(), to });
    let scenario = upgrade::all().into_iter().find(|s| s.name == HOST_PORT_CHECK).expect("the hostPort CHECK scenario");
    let lab: Arc<dyn Cluster> = Arc::new(Lab::provision(&from, &LabOptions::from_env()?)?);
    let (outcome, _) = run_scenario_collecting(&lab, &scenario, &harness::provider::lab::timeouts(), "t1", Some(Ok(pair)), None);
    lab.teardown()?;
    match &outcome {
        TrialOutcome::Failed(verdict)
            if verdict.reason == Some(VersionsOwnFault)
                && verdict.observed.detail.contains("control, reference-portmap-firewall on pods it made itself")
                && verdict.observed.detail.contains("could not check ipv6 dnat") =>
        {
            Ok(())
        }
        other => {
            Err(format!("expected the version's own fault (portmap 1.1.1's CHECK on its own pods too), got {}: {}", other.label(), other.message()).into())
        }
    }
}

/// An old version whose datapath resets held connections on its own (its install step,
/// `fixtures/upgrade/stand-ins/reset-held-connections`): the connections break under it
/// with nothing upgraded as they do through the upgrade, so every scenario that holds
/// connections blames that version (the control), never the upgrade to the faithful one.
fn an_old_version_that_resets_connections_on_its_own_is_blamed_not_the_upgrade() -> Result<(), Failed> {
    if let Err(reason) = harness::host::unstable_plugins() {
        return Err(format!("cannot run: {reason}").into());
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let shipped = cni::profile::profiles_dir().join(OLD);
    let name = format!("{OLD}-reset-held-connections");
    let profile = std::fs::read_to_string(shipped.join("profile.yaml")).map_err(|e| e.to_string())?;
    let profile = profile
        .replace(&format!("name: {OLD}"), &format!("name: {name}"))
        .replace("conflist: 10-lab.conflist", &format!("conflist: {}", shipped.join("10-lab.conflist").display()))
        .replace(
            "pluginDir: /usr/lib/cni",
            &format!("pluginDir: /usr/lib/cni\n    onInstall: {}", harness::fixtures::fixture_path("upgrade/stand-ins/reset-held-connections").display()),
        );
    std::fs::write(dir.path().join("profile.yaml"), profile).map_err(|e| e.to_string())?;
    let from = cni::load_profile(&dir.path().join("profile.yaml").display().to_string()).map_err(|e| e.to_string())?;
    let to = cni::load_profile(NEW).map_err(|e| e.to_string())?;
    let pair = Arc::new(UpgradePair { from: from.clone(), to });
    let mut wrong = Vec::new();
    for scenario in upgrade::all().into_iter().filter(|s| [LONG_LIVED, HOST_PORT_HELD, EGRESS].contains(&s.name)) {
        let lab: Arc<dyn Cluster> = Arc::new(Lab::provision(&from, &LabOptions::from_env()?)?);
        let (outcome, _) = run_scenario_collecting(&lab, &scenario, &harness::provider::lab::timeouts(), "t1", Some(Ok(Arc::clone(&pair))), None);
        lab.teardown()?;
        match &outcome {
            TrialOutcome::Failed(verdict)
                if verdict.reason == Some(VersionsOwnFault)
                    && verdict.observed.role == "fails-with-nothing-upgraded-too"
                    && verdict.look_at.starts_with(&format!("{name} itself, not the upgrade")) => {}
            other => wrong.push(format!(
                "{}: expected the old version's own fault (its connections reset with nothing upgraded too), got {}: {}",
                scenario.name,
                other.label(),
                other.message()
            )),
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(wrong.join("\n").into())
    }
}

/// A version's expected failures are judged only as scenarios of its own: one naming a
/// scenario that does not exist, or one it is not judged on, would never be checked.
fn every_failure_a_version_expects_is_of_a_scenario_it_runs() -> Result<(), Failed> {
    let scenarios: Vec<&str> = upgrade::all().iter().map(|s| s.name).collect();
    let unjudged: Vec<String> = NEW_VERSIONS
        .iter()
        .flat_map(|v| v.fails.iter().map(move |(name, _)| (v, *name)))
        .filter(|(v, name)| !scenarios.contains(name) || v.not_judged.iter().any(|(n, _)| n == name))
        .map(|(v, name)| format!("{}: {name}", v.name))
        .collect();
    if unjudged.is_empty() {
        Ok(())
    } else {
        Err(format!("expected failures of scenarios no trial runs: {}", unjudged.join(", ")).into())
    }
}

/// Every version's scenarios, each a test of its own (`<version>::<scenario>`), so a
/// runner spreads them over its slots and a figure a busy machine moves (the start-up
/// regression) can take the machine alone (`.config/nextest.toml`). A version fails only
/// its own scenarios; it passes every other one, each judged here.
fn main() -> std::process::ExitCode {
    let args = Arguments::from_args();
    let trials = NEW_VERSIONS
        .iter()
        .flat_map(|version| {
            upgrade::all()
                .into_iter()
                .filter(|s| !version.not_judged.iter().any(|(name, _)| *name == s.name))
                .map(move |scenario| Trial::test(format!("{}::{}", version.name, scenario.name), move || check(version, &scenario)))
        })
        .chain([Trial::test("every_failure_a_version_expects_is_of_a_scenario_it_runs", every_failure_a_version_expects_is_of_a_scenario_it_runs)])
        .chain([Trial::test("portmap_1_1_1_s_own_check_fault_is_not_blamed_on_the_upgrade", portmap_1_1_1_s_own_check_fault_is_not_blamed_on_the_upgrade)])
        .chain([Trial::test(
            "an_old_version_that_resets_connections_on_its_own_is_blamed_not_the_upgrade",
            an_old_version_that_resets_connections_on_its_own_is_blamed_not_the_upgrade,
        )])
        .collect();
    libtest_mimic::run(&args, trials).exit_code()
}
