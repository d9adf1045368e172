//! The harness's own programs as clusters see them: the probe and its image, iperf3 with its
//! port and image, the reference TSN proxy's image, and the node NIC they talk through.
//! Providers run them and scenarios name them, so they live below both.

/// The node's NIC, as the lab's and kind's nodes name it.
pub const NODE_NIC: &str = "eth0";

/// The probe's name as a node command (the lab has it on every node; kind nodes get the
/// static build copied onto them).
pub const PROBE: &str = "cni-probe";

/// The probe image the harness builds (`cargo xtask image`) and loads into kind nodes.
pub const PROBE_IMAGE: &str = concat!("cni-probe:", env!("CARGO_PKG_VERSION"));

/// The port every iperf3 server of a run listens on.
pub const IPERF3_PORT: u16 = 5201;

/// The iperf3 image the harness builds (`cargo xtask image`: Debian's iperf3 and the
/// libraries it links, FROM scratch) for throughput on kind.
pub const IPERF3_IMAGE: &str = concat!("cni-iperf3:", env!("CARGO_PKG_VERSION"));

/// The image of the tools the harness runs beside a node, in a helper container sharing its
/// network (`docker run --network container:<node>`): tcpdump, sh, timeout and base64 (a
/// failure's path trace), ip and conntrack (a bundle's look outside), and the static probe (`cni-probe bpf-attachments`). Built by
/// `cargo xtask image` from this machine's Debian binaries and the libraries they link,
/// FROM scratch. A helper container needs no root on the machine running the suites and
/// works with a remote Docker host, where `nsenter` into a node's PID needs both.
pub const NETTOOLS_IMAGE: &str = concat!("cni-nettools:", env!("CARGO_PKG_VERSION"));

/// The reference TSN metadata proxy's image, built by `cargo xtask image`.
pub const TSN_PROXY_IMAGE: &str = concat!("tsn-metadata-proxy:", env!("CARGO_PKG_VERSION"));

/// Set once a suite binary has said it doubles as the probe ([`run_as_probe_when_called_so`]).
static SUITE_IS_PROBE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// In a suite binary, first thing: when it was started under the name `cni-probe` (the
/// link [`probe_of_this_suite`] makes), it is the probe: runs it and returns how it ended.
/// Otherwise notes that this binary can be the probe and returns `None`. A crate that
/// depends on the harness builds no probe of its own (cargo builds no binary of a
/// dependency), so its suites carry it.
pub fn run_as_probe_when_called_so() -> Option<std::process::ExitCode> {
    let called = std::env::args_os().next().map(std::path::PathBuf::from);
    if called.as_deref().and_then(std::path::Path::file_name).is_some_and(|name| name == PROBE) {
        return Some(cni_probe::main());
    }
    SUITE_IS_PROBE.store(true, std::sync::atomic::Ordering::SeqCst);
    None
}

/// The running suite binary as the probe: a link named `cni-probe` to it, in the project's
/// `target/cni-harness/probe-of-<binary>/` (one per binary, made atomically: suites run at
/// once); `None` when this binary is no suite ([`run_as_probe_when_called_so`] never ran).
pub fn probe_of_this_suite() -> Option<crate::Result<std::path::PathBuf>> {
    if !SUITE_IS_PROBE.load(std::sync::atomic::Ordering::SeqCst) {
        return None;
    }
    let failed = |what: String, e: std::io::Error| crate::HarnessError::Command { command: what, detail: e.to_string() };
    let made = (|| {
        let exe = std::env::current_exe().map_err(|e| failed("find the running suite binary".into(), e))?;
        let name = exe.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let dir = crate::project_root().join("target/cni-harness").join(format!("probe-of-{name}"));
        std::fs::create_dir_all(&dir).map_err(|e| failed(format!("mkdir {}", dir.display()), e))?;
        let (link, temporary) = (dir.join(PROBE), dir.join(format!(".{PROBE}-{}", std::process::id())));
        let _ = std::fs::remove_file(&temporary);
        std::os::unix::fs::symlink(&exe, &temporary).map_err(|e| failed(format!("link {}", temporary.display()), e))?;
        std::fs::rename(&temporary, &link).map_err(|e| failed(format!("rename to {}", link.display()), e))?;
        Ok(link)
    })();
    Some(made)
}
