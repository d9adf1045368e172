//! Performance budgets on the lab: the reference plugins, each figure measured until its
//! interval is clear of its budget (`fixtures/budgets/performance.yaml`).

use harness::{scenarios, Suite};

fn main() -> std::process::ExitCode {
    Suite::new("perf_lab", "reference").scenarios(scenarios::performance::all()).run()
}
