//! The user guide's reference pages: generated from the code by the docs test
//! (`suites/docs.rs`), which compares them, or with `CNICONF_UPDATE_DOCS=1` writes them.

use crate::util::cargo_command;

/// The test that compares (or writes) the reference pages.
const GENERATOR: &str = "the_reference_pages_are_what_the_code_says";

/// Rewrites the reference pages under `docs/src/reference/` from the code, then runs the
/// guide's other checks on the result; with `check`, only compares (as `cargo xtask test`
/// does, which runs the same tests).
pub fn run(check: bool) -> Result<(), String> {
    if !check {
        let status = cargo_command()
            .args(["test", "--test", "docs", "--", "--exact", GENERATOR])
            .env("CNICONF_UPDATE_DOCS", "1")
            .status()
            .map_err(|e| format!("failed to run `cargo test --test docs`: {e}"))?;
        if !status.success() {
            return Err(format!("writing the reference pages failed ({status})"));
        }
    }
    let status = cargo_command().args(["test", "--test", "docs"]).status().map_err(|e| format!("failed to run `cargo test --test docs`: {e}"))?;
    match (status.success(), check) {
        (true, _) => Ok(()),
        (false, true) => Err("the guide differs from the code (`cargo xtask docs` rewrites its reference pages) or fails its checks".into()),
        (false, false) => Err(format!("the guide fails its checks ({status})")),
    }
}
