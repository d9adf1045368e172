//! The BPF programs attached with tcx to each link of the network namespace this thread is
//! in, read from the kernel (BPF_PROG_QUERY): what neither `tc filter` nor Debian's bpftool
//! 7.1 lists. The lab reads its nodes with it; on kind the bundle runs it as `cni-probe
//! bpf-attachments` in a helper container sharing a node's network.

use aya::programs::{SchedClassifier, TcAttachType};

/// One line per program, by name (ids change with every load): `tcx egress on eth0:
/// restore_prio`. A kernel without tcx lists none.
pub fn tcx_attachments() -> Result<Vec<String>, String> {
    let links = nix::net::if_::if_nameindex().map_err(|e| format!("listing the links: {e}"))?;
    let mut lines = Vec::new();
    for link in links.iter() {
        let name = link.name().to_string_lossy();
        for (direction, attach) in [("ingress", TcAttachType::Ingress), ("egress", TcAttachType::Egress)] {
            for program in SchedClassifier::query_tcx(&name, attach).map(|(_, programs)| programs).unwrap_or_default() {
                lines.push(format!("tcx {direction} on {name}: {}", program.name_as_str().unwrap_or("(unnamed)")));
            }
        }
    }
    Ok(lines)
}
