//! `cargo xtask` as a user runs it: help, and the errors a mistyped command or argument
//! gets. Nothing here builds or runs a suite (that would be cargo inside cargo).

use assert_cmd::Command;
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
    xtask().args(["certify", "--flavour", "x"]).assert().failure().stderr(contains("unknown certify argument `--flavour`; expected --cni <name|path>"));
}

#[test]
fn certify_of_an_unknown_profile_lists_the_known_ones() {
    xtask().args(["certify", "--cni", "calico-typo"]).assert().failure().stderr(contains("unknown CNI profile `calico-typo`")).stderr(contains("antrea, calico, cilium, flannel, reference"));
}
