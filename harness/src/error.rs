//! Errors of the harness: each names the file, object, tool or field involved and how to fix it.

use std::path::PathBuf;

/// Everything that can go wrong outside a verdict: set-up, tools, fixtures, the datapath.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error(
        "the lab provider needs root (CAP_NET_ADMIN) to create network namespaces; running as uid {uid}. Run as root, e.g. `sudo -E cargo test --test <suite>`"
    )]
    NotRoot { uid: u32 },

    #[error("required tool `{tool}` was not found on PATH ({purpose}); {install}")]
    MissingTool { tool: String, purpose: String, install: String },

    #[error("`{tool}` {found} is too old, {needed} or later is needed: {purpose}; {install}")]
    ToolTooOld { tool: String, found: String, needed: String, purpose: String, install: String },

    #[error("CNI plugin `{plugin}` was not found in CNI_PATH {searched}; install Debian's containernetworking-plugins with `cargo xtask deps`")]
    MissingPlugin { plugin: String, searched: String },

    #[error("the probe binary was not found (looked in {searched}); build it with `cargo build --bin cni-probe` or set CNI_PROBE to its path")]
    MissingProbe { searched: String },

    #[error("failed to read fixture {path}: {source}")]
    FixtureUnreadable { path: PathBuf, source: std::io::Error },

    #[error("malformed fixture {path}: {detail}")]
    FixtureMalformed { path: PathBuf, detail: String },

    /// What a scenario checks cannot be observed on this cluster (its kernel lacks the
    /// qdisc that would show it): the trial is ignored with the reason, never passed.
    #[error("{reason}")]
    CannotObserve { reason: String },

    #[error("unknown provider `{name}` in {variable}; expected one of: {expected}")]
    UnknownProvider { name: String, variable: String, expected: String },

    #[error("unknown {what} `{name}` in {variable}; expected one of: {expected}")]
    UnknownName { what: String, name: String, variable: String, expected: String },

    #[error("unknown lab fault `{name}` in {variable}; expected one of: {expected}")]
    UnknownFault { name: String, variable: String, expected: String },

    #[error("failed to run `{command}`: {detail}")]
    Command { command: String, detail: String },

    #[error("cannot upgrade {from} in place to {to}: {why}")]
    UpgradeRefused { from: String, to: String, why: String },

    #[error("CNI {command} of plugin `{plugin}` for {container} failed: {message}")]
    CniPlugin { command: String, plugin: String, container: String, message: String },

    #[error("malformed CNI result from plugin `{plugin}`: {detail}")]
    CniResult { plugin: String, detail: String },

    #[error("timed out after {seconds:.1}s waiting for {what}")]
    Timeout { what: String, seconds: f64 },

    #[error("{what} is not ready: {detail}")]
    NotReady { what: String, detail: String },

    #[error("no {what} matches {wanted}")]
    NotFound { what: String, wanted: String },

    #[error("{object} already exists; the harness creates only objects whose names are unique to its run and never adopts one it did not create (delete it if it is a leftover of a killed run, e.g. with `cargo xtask gc`)")]
    AlreadyExists { object: String },

    #[error("the run was interrupted; nothing more is created")]
    Interrupted,

    #[error("failed to write report {path}: {detail}")]
    Report { path: PathBuf, detail: String },
}

/// The harness's result type.
pub type Result<T, E = HarnessError> = std::result::Result<T, E>;
