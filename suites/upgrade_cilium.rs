//! Upgrade gating with Cilium on kind: a cluster made with the previous minor
//! (`cilium-1.15`, its last patch) upgraded in place to the pinned one (`cilium`) as
//! Cilium's upgrade guide says (the pre-flight check, then `helm upgrade` with
//! `upgradeCompatibility`, agents rolled one node at a time) under held connections, and
//! rolled back. CHECK and DEL across versions are judged on the lab; the canary scenario
//! needs a Gateway the 1.15 profile does not install.

use harness::{scenarios, Suite};

fn main() -> std::process::ExitCode {
    Suite::new("upgrade_cilium", "cilium-1.15").upgrading_to("cilium").scenarios(scenarios::upgrade::all()).run()
}
