//! Canary weights and mirroring with Antrea and NGINX Gateway Fabric on kind (thesis ch. 3.2).

use harness::{scenarios, Suite};

fn main() -> std::process::ExitCode {
    Suite::new("canary_antrea", "antrea").scenarios(scenarios::canary::all()).run()
}
