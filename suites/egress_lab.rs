//! Egress SNAT on the lab: the reference CNI plugins and the lab's reference egress gateway.

use harness::{scenarios, Suite};

fn main() -> std::process::ExitCode {
    Suite::new("egress_lab", "reference").scenarios(scenarios::egress::all()).run()
}
