//! CNI specification conformance of plugin binaries: Debian's reference plugins by default,
//! or the plugin named by `CNICONF_SPEC_SUBJECT` and `CNICONF_SPEC_PLUGIN_DIR`.

fn main() -> std::process::ExitCode {
    harness::spec::suite::run()
}
