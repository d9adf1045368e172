//! The egress SNAT family, every scenario of it, against the profile `CNICONF_CNI` names
//! (default: the reference plugins on the lab). Scenarios the profile or provider cannot
//! host are ignored with the reason. `cargo xtask certify` runs it for a certification.

use harness::{scenarios::egress, Suite};

fn main() -> std::process::ExitCode {
    Suite::new("egress", "reference").scenarios(egress::all()).scenarios(egress::failover()).scenarios(egress::excluded_destinations()).run()
}
