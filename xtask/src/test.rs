//! `cargo xtask test`: the whole test suite, closed by one plain total line. With
//! cargo-nextest (on every machine of this project's kind) the test binaries run side by
//! side, as `.config/nextest.toml`'s `ci` profile says; without it, `cargo test`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;

#[derive(Debug, Default, PartialEq, Eq)]
struct Totals {
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl Totals {
    /// Adds a libtest closing line: `test result: ok. 4 passed; 0 failed; 1 ignored; ...`.
    fn add(&mut self, line: &str) {
        let Some(rest) = line.strip_prefix("test result: ") else { return };
        for part in rest.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(kind), Some(count)) = (words.next(), words.next()) else { continue };
            let Ok(count) = count.parse::<u64>() else { continue };
            match kind {
                "passed" => self.passed += count,
                "failed" => self.failed += count,
                "ignored" => self.ignored += count,
                _ => {}
            }
        }
    }

    /// The totals of a nextest run: its JUnit file's cases (a passing case whose output
    /// says libtest-mimic ignored it at run time counts as skipped, with its reason), and
    /// the tests nextest skipped itself (`#[ignore]`), from its summary line.
    fn of_nextest(junit: &str, summary: &str) -> Result<Self, String> {
        let document = roxmltree::Document::parse(junit).map_err(|e| format!("nextest's JUnit file does not parse: {e}"))?;
        let mut totals = Totals::default();
        for case in document.descendants().filter(|n| n.has_tag_name("testcase")) {
            let failed = case.children().any(|c| c.has_tag_name("failure") || c.has_tag_name("error"));
            let output: String = case.children().filter(|c| c.has_tag_name("system-out")).filter_map(|c| c.text()).collect();
            let ignored_at_run_time = output.lines().any(|l| l.starts_with("test ") && l.contains(" ... ignored"));
            match (failed, ignored_at_run_time) {
                (true, _) => totals.failed += 1,
                (false, true) => totals.ignored += 1,
                (false, false) => totals.passed += 1,
            }
        }
        // `Summary [ 612.3s] 1013 tests run: 1010 passed, 3 failed, 52 skipped`
        let skipped = summary.split(',').map(str::trim).find_map(|part| part.strip_suffix(" skipped")).and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
        totals.ignored += skipped;
        Ok(totals)
    }
}

pub fn run() -> Result<(), String> {
    // The workflow lint (mostly a virtualenv's set-up, waiting on pip) beside the rest.
    let workflows = std::thread::spawn(crate::lint::run);
    crate::lint::formatted()?;
    // The image tests need the probe image; without Docker they are ignored with the reason.
    // Its release build (a target directory of its own; none when the images were built
    // from these sources before) runs beside the tests' build too.
    let images = match harness::provider::host::on_path("docker") {
        true => Some(std::thread::spawn(crate::image::run)),
        false => {
            eprintln!("xtask test: no docker on PATH; the probe image tests will be ignored");
            None
        }
    };
    // The tests' build is clippy's pass too: the workspace's crates compiled by
    // clippy-driver (as `cargo clippy` runs it), every warning an error; the dependencies,
    // compiled once, serve both (a `cargo clippy` of its own checks all of them again).
    let linted = crate::lint::clippy_in_the_build()?;
    let built = crate::util::cargo_command()
        .args(["test", "--workspace", "--no-run"])
        .envs(linted.iter().cloned())
        .status()
        .map_err(|e| format!("failed to run `cargo test --workspace --no-run`: {e}"))
        .and_then(|status| match status.success() {
            true => Ok(()),
            false => Err(format!(
                "`cargo test --workspace --no-run` failed ({status}): a compile error, or a clippy warning (above; fix it, or allow it where it is wrong, saying why)"
            )),
        });
    if let Some(images) = images {
        images.join().map_err(|_| "building the images panicked".to_owned())??;
    }
    built?;
    eprintln!("xtask test: the build passes clippy");
    workflows.join().map_err(|_| "the workflow lint panicked".to_owned())??;
    match harness::provider::host::on_path("cargo-nextest") {
        true => run_nextest(&linted),
        false => {
            eprintln!("xtask test: no cargo-nextest on PATH; running the test binaries one after another with `cargo test`");
            run_cargo_test(&linted)
        }
    }
}

/// `cargo nextest run --workspace --profile ci`: independent test binaries and scenarios
/// side by side, what a busy machine would move alone (`.config/nextest.toml`).
/// `linted`: the build's clippy variables, kept for every cargo of the run (nextest's own
/// build, the tests' cargo), so none compiles the workspace again without them.
fn run_nextest(linted: &[(String, String)]) -> Result<(), String> {
    let mut child = crate::util::cargo_command()
        .args(["nextest", "run", "--workspace", "--profile", "ci", "--no-fail-fast"])
        .envs(linted.iter().cloned())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("failed to run `cargo nextest run --workspace --profile ci`: {e}"))?;
    let mut summary = String::new();
    for line in BufReader::new(child.stderr.take().expect("stderr is piped")).lines() {
        let line = line.map_err(|e| e.to_string())?;
        eprintln!("{line}");
        if line.trim_start().starts_with("Summary [") {
            summary = line;
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    let junit_path = crate::util::workspace_root().join("target/nextest/ci/junit.xml");
    let totals = read(&junit_path).and_then(|junit| Totals::of_nextest(&junit, &summary))?;
    println!("\ntests: {} passed, {} failed, {} skipped", totals.passed, totals.failed, totals.ignored);
    match status.success() {
        true => Ok(()),
        false => Err(format!("`cargo nextest run --workspace --profile ci` failed ({status})")),
    }
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("failed to read {}: {e}", path.display()))
}

fn run_cargo_test(linted: &[(String, String)]) -> Result<(), String> {
    let mut child = crate::util::cargo_command()
        .args(["test", "--workspace"])
        .envs(linted.iter().cloned())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("failed to run `cargo test --workspace`: {e}"))?;
    let mut totals = Totals::default();
    for line in BufReader::new(child.stdout.take().expect("stdout is piped")).lines() {
        let line = line.map_err(|e| e.to_string())?;
        println!("{line}");
        totals.add(&line);
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    println!("\ntests: {} passed, {} failed, {} skipped", totals.passed, totals.failed, totals.ignored);
    if status.success() {
        Ok(())
    } else {
        Err(format!("`cargo test --workspace` failed ({status})"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closing_lines_add_up() {
        let mut totals = Totals::default();
        totals.add("test result: ok. 4 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.44s");
        totals.add("test result: FAILED. 6 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 3.86s");
        totals.add("running 3 tests");
        assert_eq!(totals, Totals { passed: 10, failed: 2, ignored: 1 });
    }

    #[test]
    fn a_nextest_run_counts_what_a_suite_ignored_at_run_time_as_skipped() {
        // As nextest 0.9 writes it, with store-success-output.
        let junit = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="nextest-run" tests="4" failures="1" errors="0">
  <testsuite name="cni-conformance::egress_lab" tests="2" disabled="0" errors="0" failures="0">
    <testcase name="selected_pod_leaves_with_the_egress_ip" classname="cni-conformance::egress_lab" time="0.4">
      <system-out>running 1 test
test selected_pod_leaves_with_the_egress_ip ... ok
</system-out>
    </testcase>
    <testcase name="egress_ip_moves_to_another_node_when_its_node_fails" classname="cni-conformance::egress_antrea" time="0.1">
      <system-out>running 1 test
test egress_ip_moves_to_another_node_when_its_node_fails ... ignored, kind is not installed
</system-out>
    </testcase>
  </testsuite>
  <testsuite name="cni-harness" tests="2" disabled="0" errors="0" failures="1">
    <testcase name="verdict::tests::a" classname="cni-harness" time="0.0"/>
    <testcase name="verdict::tests::b" classname="cni-harness" time="0.0"><failure type="test failure">boom</failure></testcase>
  </testsuite>
</testsuites>"#;
        let summary = "     Summary [  12.345s] 4 tests run: 3 passed, 1 failed, 7 skipped";
        assert_eq!(Totals::of_nextest(junit, summary).unwrap(), Totals { passed: 2, failed: 1, ignored: 8 });
        assert!(Totals::of_nextest("<not xml", summary).unwrap_err().contains("does not parse"));
    }
}
