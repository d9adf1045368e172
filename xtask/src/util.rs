//! Running cargo and other commands with their output streamed to the user.

use std::path::PathBuf;
use std::process::Command;

pub fn workspace_root() -> PathBuf {
    harness::workspace_root().to_owned()
}

/// A `cargo` command in the workspace root, in the environment a user's own `cargo` has.
/// `cargo xtask` is `cargo run`, which gives this process the variables of the package it
/// runs (`CARGO_PKG_NAME=xtask`, `CARGO_MANIFEST_DIR`, ...). Build scripts (ring's, cc's)
/// declare those as inputs, so a cargo started with them rebuilt ring, rustls and kube
/// after every plain `cargo test`, and again after. They are left out.
pub fn cargo_command() -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.current_dir(workspace_root());
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_MANIFEST_")
            || matches!(key, "CARGO_CRATE_NAME" | "CARGO_BIN_NAME" | "CARGO_PRIMARY_PACKAGE" | "OUT_DIR")
        {
            command.env_remove(key);
        }
    }
    command
}

/// Runs `cargo args` in the workspace root, streaming its output.
pub fn cargo(args: &[&str]) -> Result<(), String> {
    let status = cargo_command().args(args).status().map_err(|e| format!("failed to run `cargo {}`: {e}", args.join(" ")))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`cargo {}` failed ({status})", args.join(" ")))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    /// Each package `cargo tree <args>` resolves (name and version), with its features.
    fn resolved(args: &[&str]) -> BTreeMap<String, String> {
        let output = super::cargo_command().args(["tree", "--prefix", "none", "--format", "{p}|{f}"]).args(args).output().unwrap();
        assert!(output.status.success(), "cargo tree {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| {
                let (package, features) = line.split_once('|')?;
                // A crate printed before is marked ` (*)` after its features.
                let features = features.trim_end_matches(" (*)");
                let mut words = package.split_whitespace();
                let mut features: Vec<&str> = features.split(',').filter(|f| !f.is_empty()).collect();
                features.sort();
                Some((format!("{} {}", words.next()?, words.next()?), features.join(",")))
            })
            .collect()
    }

    /// The xtask binary's build (`cargo xtask`), a certification's (`cargo build --bins
    /// --test <family>` of the suites package) and the test build (`--workspace`, with
    /// every dev-dependency) give every crate they share the same features, so they share
    /// its compiled artifact: before the unification in `harness/Cargo.toml`, tokio,
    /// serde_json and everything above them were compiled again for each (a fresh clone's
    /// CI built the library four times, the GitHub Action's test waited on two of them).
    #[test]
    fn the_xtask_binary_certify_and_the_tests_resolve_the_same_features() {
        // The target's crates: build scripts and proc-macros are the host's, resolved apart.
        let tests = resolved(&["--workspace", "--edges", "normal,dev,no-proc-macro"]);
        for (build, args) in [
            ("the xtask binary", ["--package", "xtask", "--edges", "normal,no-proc-macro"]),
            ("a certification", ["--package", "cni-conformance", "--edges", "normal,dev,no-proc-macro"]),
        ] {
            let differ: Vec<String> = resolved(&args)
                .into_iter()
                .filter_map(|(package, features)| {
                    let theirs = tests.get(&package)?;
                    (theirs != &features).then(|| format!("{package}: [{features}] for {build}, [{theirs}] for the tests"))
                })
                .collect();
            assert!(differ.is_empty(), "add the tests' features to harness/Cargo.toml's unification:\n{}", differ.join("\n"));
        }
    }

    /// Under `cargo test`, as under `cargo run`, this process has its package's variables;
    /// the cargo it starts must not (they are inputs of ring's and cc's build scripts).
    #[test]
    fn a_child_cargo_gets_none_of_this_package_s_variables() {
        assert!(std::env::var_os("CARGO_PKG_NAME").is_some(), "cargo sets it for this test process");
        let command = super::cargo_command();
        let removed: Vec<String> = command.get_envs().filter(|(_, v)| v.is_none()).map(|(k, _)| k.to_string_lossy().into_owned()).collect();
        for key in ["CARGO_PKG_NAME", "CARGO_PKG_VERSION", "CARGO_MANIFEST_DIR"] {
            assert!(removed.iter().any(|r| r == key), "{key} is passed on: removed only {removed:?}");
        }
        assert!(!removed.iter().any(|r| r == "CARGO"), "the cargo to run stays known");
    }
}
