//! `cargo xtask gc`: removes what killed runs left behind: lab namespaces, kind clusters,
//! probe containers. Runs still alive keep theirs unless `--force`.

use harness::provider::host::on_path;
use harness::provider::kind::{self, KindCollected, KindTimeouts};
use harness::provider::lab::gc::{self, Collected};

pub fn run(force: bool) -> Result<(), String> {
    let mut failures = Vec::new();
    for (leftover, outcome) in gc::collect(force) {
        match outcome {
            Collected::Removed { namespaces } => eprintln!("xtask gc: removed lab cluster {} ({namespaces} namespaces)", leftover.cluster),
            Collected::KeptAlive => eprintln!("xtask gc: kept lab cluster {}: its run is still going (--force removes it anyway)", leftover.cluster),
            Collected::Failed(e) => failures.push(format!("{}: {e}", leftover.cluster)),
        }
    }
    if on_path("kind") {
        match kind::collect(force, &KindTimeouts::default()) {
            Ok(collected) => collected.into_iter().for_each(|c| match c {
                KindCollected::Deleted(name) => eprintln!("xtask gc: deleted kind cluster {name}"),
                KindCollected::KeptAlive(name) => eprintln!("xtask gc: kept kind cluster {name}: its run is still going (--force deletes it anyway)"),
                KindCollected::KeptForReuse(name) => eprintln!("xtask gc: kept kind cluster {name} for reuse (--force deletes it)"),
                KindCollected::Failed(name, e) => failures.push(format!("{name}: {e}")),
            }),
            Err(e) => failures.push(e.to_string()),
        }
    }
    if on_path("docker") {
        match harness::provider::external::collect(force) {
            Ok(removed) => removed.iter().for_each(|c| eprintln!("xtask gc: removed container {c}")),
            Err(e) => failures.push(e.to_string()),
        }
    }
    if failures.is_empty() {
        eprintln!("xtask gc: done");
        Ok(())
    } else {
        Err(format!("could not remove: {}", failures.join("; ")))
    }
}
