//! Logs: progress and diagnostics go through `tracing`, to stderr, with a span per suite,
//! trial and provider step; `RUST_LOG` filters them (default `info`). The terminal summary
//! at the end of a run is not a log: it is printed as it always was.

/// Installs the stderr subscriber once per process; later calls (and tests that installed
/// their own) leave it alone.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).try_init();
}
