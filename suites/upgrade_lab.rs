//! Upgrade gating on the lab: Debian's reference plugins (bookworm's 1.1.1, the
//! `reference` profile) upgraded in place to Debian unstable's (`reference-1.9.1`) under
//! running pods, and rolled back. `CNICONF_CNI` and `CNICONF_UPGRADE_TO` name another pair.

use harness::{scenarios, Suite};

fn main() -> std::process::ExitCode {
    Suite::new("upgrade_lab", "reference").upgrading_to("reference-1.9.1").scenarios(scenarios::upgrade::all()).run()
}
