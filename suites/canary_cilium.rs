//! Canary weights and mirroring with Cilium's Gateway API on kind (thesis ch. 3.2).

use harness::{scenarios, Suite};

fn main() -> std::process::ExitCode {
    Suite::new("canary_cilium", "cilium").scenarios(scenarios::canary::all()).run()
}
