//! The performance family for any profile (`CNICONF_CNI`, default the reference plugins on
//! the lab): what `cargo xtask certify` runs for every CNI.

use harness::{scenarios, Suite};

fn main() -> std::process::ExitCode {
    Suite::new("perf", "reference").scenarios(scenarios::performance::all()).run()
}
