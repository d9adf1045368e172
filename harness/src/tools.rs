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
