//! TSN priority preservation on the lab: the reference plugins chained with the reference
//! TSN metadata proxy. `CNICONF_CNI=<profile dir>` runs a vendor's own proxy instead.

use harness::{scenarios, Suite};

fn main() -> std::process::ExitCode {
    Suite::new("tsn_lab", "reference-tsn-proxy").scenarios(scenarios::tsn::all()).run()
}
