//! Egress SNAT with Antrea on kind: the lab's scenarios, plus failover of the egress IP.

use harness::{scenarios::egress, Suite};

fn main() -> std::process::ExitCode {
    Suite::new("egress_antrea", "antrea").scenarios(egress::all()).scenarios(egress::failover()).run()
}
