//! `cargo xtask` as a user runs it: help, and the errors a mistyped command or argument
//! gets. Nothing here builds or runs a suite (that would be cargo inside cargo).

use assert_cmd::Command;
use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;

fn xtask() -> Command {
    Command::cargo_bin("xtask").expect("cargo builds the xtask binary for its tests")
}

#[test]
fn help_lists_certify_with_its_profile_and_provider() {
    xtask().arg("--help").assert().success().stdout(contains("certify [--cni <name|path>] [--provider lab|kind|existing]")).stdout(contains("gc [--force]"));
}

#[test]
fn an_unknown_command_fails_with_the_usage() {
    xtask().arg("certfy").assert().failure().stderr(contains("unknown command \"certfy\"")).stderr(contains("usage: cargo xtask <command>"));
}

#[test]
fn certify_names_a_mistyped_argument() {
    xtask()
        .args(["certify", "--flavour", "x"])
        .assert()
        .failure()
        .stderr(contains("unknown certify argument `--flavour`"))
        .stderr(contains("usage: cargo xtask certify [--cni <name|path>]"));
}

#[test]
fn certify_help_is_its_usage_and_does_nothing_else() {
    xtask()
        .args(["certify", "--help"])
        .assert()
        .success()
        .stdout(contains("usage: cargo xtask certify"))
        .stdout(contains("Families: cni_spec"))
        .stdout(contains("Ctrl-C"));
}

/// A malformed conflist is refused once, naming the file and what was expected, before
/// anything is built or any lab exists.
#[test]
fn certify_refuses_a_malformed_conflist_before_building() {
    let vendor = tempfile::tempdir().unwrap();
    std::fs::write(vendor.path().join("net.conflist"), r#"{"cniVersion": "1.0.0", "name": "n", "plugins": [{"bridge": "b"}]}"#).unwrap();
    let profile = vendor.path().join("profile.yaml");
    std::fs::write(&profile, "name: broken\nversion: 1\ninstall:\n  lab:\n    conflist: net.conflist\n    pluginDir: /usr/lib/cni\n").unwrap();
    let conflist = vendor.path().join("net.conflist").display().to_string();
    xtask()
        .args(["certify", "--cni", &profile.display().to_string()])
        .assert()
        .failure()
        .stderr(contains(conflist.as_str()))
        .stderr(contains("plugins[0].type: expected the plugin's binary name"))
        .stderr(contains("running the").not());
}

#[test]
fn certify_of_an_unknown_profile_lists_the_known_ones() {
    xtask()
        .args(["certify", "--cni", "calico-typo"])
        .assert()
        .failure()
        .stderr(contains("unknown CNI profile `calico-typo`"))
        .stderr(contains("antrea, antrea-2.1, calico, cilium, cilium-1.15, flannel, reference"));
}
