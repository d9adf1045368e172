//! Egress SNAT on the lab: the reference CNI plugins and the lab's reference egress gateway.

use harness::{scenarios, Suite};

fn main() -> std::process::ExitCode {
    use scenarios::egress;
    Suite::new("egress_lab", "reference").scenarios(egress::all()).scenarios(egress::excluded_destinations()).scenarios(egress::failover()).run()
}
