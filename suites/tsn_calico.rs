//! TSN priority preservation with Calico on kind, as the metadata-proxy paper ran it: the
//! reference TSN metadata proxy (`cargo xtask image`) chained after Calico on every node
//! by a DaemonSet. `CNICONF_TSN_PROXY_IMAGE` and `CNICONF_TSN_PROXY_ENTRY` deploy your own.

use harness::{scenarios, Suite};

fn main() -> std::process::ExitCode {
    Suite::new("tsn_calico", "calico").scenarios(scenarios::tsn::all()).run()
}
