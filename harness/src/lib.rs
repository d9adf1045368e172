//! A conformance harness for Kubernetes network plugins (CNI).
//!
//! Scenarios ([`scenarios`]) build pods and policies on a cluster from a provider
//! ([`provider`]), drive real traffic with the probe, and judge it with pure verdict
//! functions ([`verdict`]). A [`Suite`] names a CNI profile ([`cni`]) and its scenarios and
//! runs as a libtest-mimic test binary; every run emits JUnit and golden reports ([`report`]).

pub mod bpf;
pub mod cleanup;
pub mod cni;
pub mod deadline;
pub mod diagnostics;
pub mod environment;
pub mod error;
pub mod files;
pub mod fixtures;
pub mod gateway;
pub mod host;
pub mod install;
pub mod kube_access;
pub mod logging;
pub mod model;
pub mod provider;
pub mod report;
pub mod scenario;
pub mod scenarios;
pub mod spec;
pub mod tools;
pub mod verdict;

pub use error::{HarnessError, Result};
pub use scenario::{Scenario, ScenarioContext, Suite, Timeouts};

/// This repository's root, where the harness's own source tree is: its shipped
/// `fixtures/` (what a project of its own does not override), `bpf/` sources, `golden/`
/// records of the shipped profiles. Nothing is written here but by this repository's own
/// suites, whose project it is ([`project_root`]).
pub fn workspace_root() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the harness crate sits in the workspace")
}

/// Names the project the suites run for, when it is not the crate cargo runs them from.
pub const PROJECT_DIR_VARIABLE: &str = "CNICONF_PROJECT_DIR";

/// The project the suites run for, decided by the caller, never by where the harness's
/// source is: `CNICONF_PROJECT_DIR`, else the package whose test cargo runs
/// (`CARGO_MANIFEST_DIR`, which cargo and nextest give the test process), else this
/// repository. A vendor's crate that depends on the harness is its own project: its
/// `fixtures/` come before the shipped ones ([`fixtures::fixture_path`]), and its reports,
/// golden records and builds go under it (`target/cni-conformance`, `golden/`,
/// `target/cni-harness`). The harness's own unit tests run from its crate directory,
/// whose project is this repository.
pub fn project_root() -> std::path::PathBuf {
    let own_crate = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    [PROJECT_DIR_VARIABLE, "CARGO_MANIFEST_DIR"]
        .into_iter()
        .filter_map(|name| std::env::var_os(name).filter(|v| !v.is_empty()).map(std::path::PathBuf::from))
        .find(|dir| dir.as_path() != own_crate)
        .unwrap_or_else(|| workspace_root().to_owned())
}

/// The layers of this crate, lowest first: a module may import from its own layer (without
/// a circle) and from the layers below, never from one above. Providers and scenarios share
/// names through `tools`, `install` and `verdict`, below both.
pub const LAYERS: &[&[&str]] = &[
    // Foundations: errors, the environment variables a run reads, budgets of waits, logging,
    // the neutral model, this machine, files,
    // the harness's own programs, cleanup on interrupt.
    &["error", "environment", "deadline", "logging", "model", "host", "files", "tools", "cleanup"],
    // What is installed and offered; pure verdicts.
    &["install", "verdict"],
    // Input files read into the model.
    &["fixtures"],
    // Gateway implementations, the Kubernetes API, BPF objects.
    &["gateway", "kube_access", "bpf"],
    // CNI profiles and the CNI runtime.
    &["cni"],
    // Clusters: lab, kind, existing.
    &["provider"],
    // Reports of runs; what a failed trial leaves behind.
    &["report", "diagnostics"],
    // The scenario runner and the CNI-spec checks.
    &["scenario", "spec"],
    // The scenarios themselves.
    &["scenarios"],
];

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    /// What each module's own code (its tests left out) imports from the crate's other
    /// top-level modules.
    fn imports() -> BTreeMap<String, BTreeSet<String>> {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let modules: BTreeSet<String> = super::LAYERS.iter().flat_map(|layer| layer.iter().map(|m| (*m).to_owned())).collect();
        let mut imports = BTreeMap::new();
        for module in &modules {
            let mut files = vec![];
            let (file, dir) = (src.join(format!("{module}.rs")), src.join(module));
            if file.is_file() {
                files.push(file);
            }
            let mut dirs = vec![dir];
            while let Some(dir) = dirs.pop() {
                for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                    match entry.path() {
                        path if path.is_dir() => dirs.push(path),
                        path if path.extension().is_some_and(|e| e == "rs") => files.push(path),
                        _ => {}
                    }
                }
            }
            let used: &mut BTreeSet<String> = imports.entry(module.clone()).or_default();
            for file in files {
                let text = std::fs::read_to_string(&file).unwrap();
                let own = text.split("#[cfg(test)]").next().unwrap_or_default();
                for line in own.lines().filter(|l| !l.trim_start().starts_with("//")) {
                    for (i, _) in line.match_indices("crate::") {
                        let rest = &line[i + "crate::".len()..];
                        let names: Vec<&str> = match rest.strip_prefix('{') {
                            Some(group) => {
                                group.split('}').next().unwrap_or_default().split(',').map(|n| n.trim().split("::").next().unwrap_or_default()).collect()
                            }
                            None => vec![rest.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).next().unwrap_or_default()],
                        };
                        used.extend(names.into_iter().filter(|n| modules.contains(*n) && *n != module).map(str::to_owned));
                    }
                }
            }
        }
        imports
    }

    #[test]
    fn every_module_is_in_a_layer() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let listed: BTreeSet<&str> = super::LAYERS.iter().flat_map(|l| l.iter().copied()).collect();
        let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
        let declared: BTreeSet<&str> = lib.lines().filter_map(|l| l.strip_prefix("pub mod ")?.strip_suffix(';')).collect();
        assert_eq!(declared, listed, "lib.rs's modules and LAYERS");
    }

    #[test]
    fn no_module_imports_from_a_higher_layer_or_in_a_circle() {
        let layer_of = |module: &str| super::LAYERS.iter().position(|l| l.contains(&module)).unwrap();
        let imports = imports();
        let mut upward = vec![];
        for (module, used) in &imports {
            upward.extend(
                used.iter()
                    .filter(|u| layer_of(u) > layer_of(module))
                    .map(|u| format!("{module} (layer {}) imports {u} (layer {})", layer_of(module), layer_of(u))),
            );
        }
        assert!(upward.is_empty(), "{upward:#?}");
        // Within a layer: no circle.
        for start in imports.keys() {
            let mut seen = BTreeSet::new();
            let mut stack: Vec<&String> = imports[start].iter().filter(|u| layer_of(u) == layer_of(start)).collect();
            while let Some(next) = stack.pop() {
                assert_ne!(next, start, "{start} imports itself through its own layer: {imports:#?}");
                if seen.insert(next) {
                    stack.extend(imports[next].iter().filter(|u| layer_of(u) == layer_of(start)));
                }
            }
        }
    }

    #[test]
    fn the_check_sees_an_upward_import() {
        let imports = imports();
        assert!(imports["provider"].contains("cni") && imports["scenarios"].contains("scenario"), "it reads imports at all: {imports:#?}");
        assert!(!imports["provider"].contains("scenarios"), "providers take names from tools, not from scenarios");
    }
}
