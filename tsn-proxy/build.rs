//! Compiles the proxy's BPF programs (`bpf/tsn_metadata_proxy.c`) with clang into
//! OUT_DIR, once as the proxy and once per self-test proxy with state of its own (one that
//! keeps per-packet state, one that keys saved priorities by packet address); the binary
//! embeds them all.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let source = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("../bpf/tsn_metadata_proxy.c");
    println!("cargo:rerun-if-changed={}", source.display());
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let multiarch = format!("/usr/include/{}-linux-gnu", std::env::var("CARGO_CFG_TARGET_ARCH").unwrap());
    for (object, defines) in [
        ("tsn_metadata_proxy.o", &[][..]),
        ("tsn_metadata_proxy_keeping_state.o", &["-DKEEP_PER_PACKET_STATE"][..]),
        ("tsn_metadata_proxy_keyed_by_address.o", &["-DKEY_BY_PACKET_ADDRESS"][..]),
    ] {
        let output = Command::new("clang")
            .args(["-O2", "-g", "-target", "bpf", "-I", &multiarch])
            .args(defines)
            .arg("-c")
            .arg(&source)
            .arg("-o")
            .arg(out.join(object))
            .output()
            .unwrap_or_else(|e| panic!("clang could not be run ({e}): the TSN metadata proxy's BPF programs need Debian's clang, llvm and libbpf-dev; install them with `cargo xtask deps`"));
        if !output.status.success() {
            panic!("clang -target bpf {} failed:\n{}", source.display(), String::from_utf8_lossy(&output.stderr));
        }
    }
}
