//! The TSN priority-preservation family, every scenario of it, against the profile
//! `CNICONF_CNI` names (default: the reference plugins chained with the reference metadata
//! proxy on the lab). `cargo xtask certify` runs it for profiles claiming `tsn-priority-map`.

use harness::{scenarios::tsn, Suite};

fn main() -> std::process::ExitCode {
    Suite::new("tsn", "reference-tsn-proxy").scenarios(tsn::all()).run()
}
