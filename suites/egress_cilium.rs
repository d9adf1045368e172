//! Egress SNAT with Cilium on kind: the lab's scenarios, plus destinations excluded from the policy.

use harness::{scenarios::egress, Suite};

fn main() -> std::process::ExitCode {
    Suite::new("egress_cilium", "cilium").scenarios(egress::all()).scenarios(egress::excluded_destinations()).run()
}
