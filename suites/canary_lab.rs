//! Canary weights and mirroring on the lab: the reference plugins and the lab's nginx Gateway.

use harness::{scenarios, Suite};

fn main() -> std::process::ExitCode {
    Suite::new("canary_lab", "reference").scenarios(scenarios::canary::all()).run()
}
