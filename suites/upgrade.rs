//! The upgrade family, every scenario of it: the cluster made with the profile
//! `CNICONF_CNI` names, upgraded in place to the one `CNICONF_UPGRADE_TO` names (default:
//! Debian's reference plugins 1.1.1 to unstable's, on the lab). `cargo xtask certify
//! --upgrade-from <p> --to <q>` runs it for a certification of the pair.

use harness::{scenarios, Suite};

fn main() -> std::process::ExitCode {
    Suite::new("upgrade", "reference").upgrading_to("reference-1.9.1").scenarios(scenarios::upgrade::all()).run()
}
