//! Canary weights and mirroring on the lab: the reference plugins and the lab's nginx Gateway.

use harness::{cni, scenarios, Suite};

fn main() -> std::process::ExitCode {
    Suite::new("canary_lab", cni::reference()).scenarios(scenarios::canary::all()).run()
}
