//! Egress SNAT on the lab: the reference CNI plugins and the lab's reference egress gateway.

use harness::{cni, scenarios, Suite};

fn main() -> std::process::ExitCode {
    Suite::new("egress_lab", cni::reference()).scenarios(scenarios::egress::all()).run()
}
