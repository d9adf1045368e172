//! `cargo xtask certify`: runs every lab suite and prints each scenario's verdict and
//! evidence, and where the reports are.

use std::process::Command;

use harness::report::summary::SuiteSummary;
use harness::report::Destinations;

use crate::util::{cargo, workspace_root};

/// The lab suites: the root package's test targets named `*_lab`.
fn lab_suites() -> Result<Vec<String>, String> {
    let cargo_bin = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo_bin)
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .current_dir(workspace_root())
        .output()
        .map_err(|e| format!("failed to run `cargo metadata`: {e}"))?;
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).map_err(|e| format!("unreadable `cargo metadata` output: {e}"))?;
    let suites = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["name"] == "cni-conformance")
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter(|t| t["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "test")))
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .filter(|name| name.ends_with("_lab") && !name.starts_with("selftest_"))
        .collect();
    Ok(suites)
}

pub fn run() -> Result<(), String> {
    let suites = lab_suites()?;
    cargo(&["build", "--tests", "--bins"])?;
    let mut failed = Vec::new();
    for suite in &suites {
        eprintln!("\nxtask certify: running {suite}");
        if cargo(&["test", "--test", suite]).is_err() {
            failed.push(suite.clone());
        }
    }
    println!("\ncertification on the lab");
    for suite in &suites {
        let path = Destinations::for_suite(suite).summary;
        match std::fs::read(&path).map_err(|e| e.to_string()).and_then(|b| serde_json::from_slice::<SuiteSummary>(&b).map_err(|e| e.to_string())) {
            Ok(summary) => println!("{}", summary.render()),
            Err(e) => println!("\n{suite}: no summary at {} ({e})", path.display()),
        }
    }
    if failed.is_empty() {
        println!("every lab suite passed: {}", suites.join(", "));
        Ok(())
    } else {
        Err(format!("failed suites: {}", failed.join(", ")))
    }
}
