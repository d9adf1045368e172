//! Logs: progress and diagnostics go through `tracing`, to stderr, with a span per suite,
//! trial and provider step; `RUST_LOG` filters them (default `info`). The terminal summary
//! at the end of a run is not a log: it is printed as it always was.

/// Installs the stderr subscriber once per process; later calls (and tests that installed
/// their own) leave it alone.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only for a person at a terminal (and never with NO_COLOR): CI logs stay plain.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).with_ansi(ansi).try_init();
}
