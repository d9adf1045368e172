//! Upgrade gating on the lab: Debian's reference plugins in a node's usual chain (bridge +
//! host-local, portmap, firewall, tuning), bookworm's 1.1.1 (`reference-portmap-firewall`)
//! upgraded in place to Debian unstable's (`reference-portmap-firewall-1.9.1`) under
//! running pods, and rolled back. `CNICONF_CNI` and `CNICONF_UPGRADE_TO` name another pair.

use harness::{scenarios, Suite};

fn main() -> std::process::ExitCode {
    Suite::new("upgrade_lab", "reference-portmap-firewall").upgrading_to("reference-portmap-firewall-1.9.1").scenarios(scenarios::upgrade::all()).run()
}
