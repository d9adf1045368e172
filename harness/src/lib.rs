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
pub mod error;
pub mod fixtures;
pub mod gateway;
pub mod kube_access;
pub mod logging;
pub mod model;
pub mod provider;
pub mod report;
pub mod scenario;
pub mod scenarios;
pub mod spec;
pub mod verdict;

pub use error::{HarnessError, Result};
pub use scenario::{Scenario, ScenarioContext, Suite, Timeouts};

/// The repository root (where `fixtures/`, `golden/` and `target/` live).
pub fn workspace_root() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the harness crate sits in the workspace")
}
