//! `cargo xtask gc`: removes lab clusters that killed runs left behind.

use harness::provider::lab::gc::{self, Collected};

pub fn run(force: bool) -> Result<(), String> {
    let collected = gc::collect(force);
    if collected.is_empty() {
        eprintln!("xtask gc: nothing to remove");
    }
    let mut failures = Vec::new();
    for (leftover, outcome) in collected {
        match outcome {
            Collected::Removed { namespaces } => eprintln!("xtask gc: removed {} ({namespaces} namespaces)", leftover.cluster),
            Collected::KeptAlive => eprintln!(
                "xtask gc: kept {} ({} namespaces): its run is still going (--force removes it anyway)",
                leftover.cluster, leftover.namespaces
            ),
            Collected::Failed(e) => failures.push(format!("{}: {e}", leftover.cluster)),
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("could not remove: {}", failures.join("; ")))
    }
}
