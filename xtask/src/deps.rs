//! `cargo xtask deps`: the Debian packages the lab needs, installed when root.

use std::process::Command;

/// (package, a file it installs that the lab uses)
const PACKAGES: [(&str, &str); 15] = [
    ("containernetworking-plugins", "/usr/lib/cni/bridge"),
    ("iproute2", "/usr/sbin/ip"),
    ("iptables", "/usr/sbin/iptables-restore"),
    ("procps", "/usr/bin/kill"),
    ("util-linux", "/usr/bin/setpriv"),
    // cni_spec reads a node's nftables rules, for plugins that write them directly.
    ("nftables", "/usr/sbin/nft"),
    // The lab's Gateway for the canary suites.
    ("nginx-light", "/usr/sbin/nginx"),
    // The workflow lint: actionlint checks `run:` scripts with shellcheck, in a venv.
    ("shellcheck", "/usr/bin/shellcheck"),
    ("python3-venv", "/usr/share/doc/python3-venv"),
    // The HTML report is checked in a real headless browser, rendered to a PNG.
    ("chromium", "/usr/bin/chromium"),
    // The TSN family's BPF programs (bpf/*.c), compiled on first use.
    ("clang", "/usr/bin/clang"),
    ("llvm", "/usr/bin/llc"),
    ("libbpf-dev", "/usr/include/bpf/bpf_helpers.h"),
    // What a vendor's metadata proxy may call from its ADD, as the paper's plugin does.
    ("bpftool", "/usr/sbin/bpftool"),
    // The performance family's throughput tool, as the seeds used it.
    ("iperf3", "/usr/bin/iperf3"),
];

fn missing() -> Vec<&'static str> {
    PACKAGES.iter().filter(|(_, file)| !std::path::Path::new(file).exists()).map(|(p, _)| *p).collect()
}

pub fn run(check_only: bool) -> Result<(), String> {
    let missing = missing();
    if missing.is_empty() {
        eprintln!("xtask deps: all lab packages present ({})", PACKAGES.map(|(p, _)| p).join(", "));
        return Ok(());
    }
    let command = format!("apt-get update && apt-get install -y --no-install-recommends {}", missing.join(" "));
    if check_only {
        return Err(format!("missing Debian packages: {}; install them with `{command}`", missing.join(", ")));
    }
    if harness::provider::host::effective_uid() != 0 {
        return Err(format!("missing Debian packages: {}; as root, run:\n  {command}", missing.join(", ")));
    }
    eprintln!("xtask deps: installing {}", missing.join(", "));
    let status = Command::new("sh")
        .args(["-c", &command])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .map_err(|e| format!("failed to run `{command}`: {e}"))?;
    if !status.success() {
        return Err(format!("`{command}` failed ({status})"));
    }
    match self::missing().as_slice() {
        [] => Ok(()),
        still => Err(format!("still missing after install: {}", still.join(", "))),
    }
}
