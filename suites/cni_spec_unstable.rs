//! CNI specification conformance of Debian unstable's reference plugins (1.9.1 as of
//! writing, unpacked by `cargo xtask deps`): every fixture conflist at `cniVersion` 1.1.0,
//! so that STATUS and GC are exercised on real plugins.

fn main() -> std::process::ExitCode {
    harness::spec::suite::run_set(harness::spec::suite::SubjectSet::debian_unstable())
}
