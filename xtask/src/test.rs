//! `cargo xtask test`: the whole test suite, closed by one plain total line, since cargo's
//! own last lines are the doc-test runs, which have no tests.

use std::io::{BufRead, BufReader};
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
}

pub fn run() -> Result<(), String> {
    crate::lint::run()?;
    // The image tests need the probe image; without Docker they are ignored with the reason.
    if harness::provider::host::on_path("docker") {
        crate::image::run()?;
    } else {
        eprintln!("xtask test: no docker on PATH; the probe image tests will be ignored");
    }
    let mut child = crate::util::cargo_command()
        .args(["test", "--workspace"])
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
}
