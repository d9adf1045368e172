//! The canary-weights family, every scenario of it, against the profile `CNICONF_CNI`
//! names (default: the reference plugins on the lab). `cargo xtask certify` runs it.

use harness::{scenarios::canary, Suite};

fn main() -> std::process::ExitCode {
    Suite::new("canary", "reference").scenarios(canary::all()).run()
}
