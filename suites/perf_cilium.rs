//! Performance budgets with Cilium on kind: iperf3 from the project's image beside every pod,
//! on nodes' and the external host's networks; the relative budgets (the absolute ones
//! name the lab), and the agent pods' CPU and memory.

use harness::{scenarios, Suite};

fn main() -> std::process::ExitCode {
    Suite::new("perf_cilium", "cilium").scenarios(scenarios::performance::all()).run()
}
