//! `cargo xtask image`: the probe and the reference TSN metadata proxy as `FROM scratch`
//! container images — a static build of each binary, the Dockerfile beside it, `docker build`.

use std::process::Command;

use harness::provider::kind::{PROBE_IMAGE, STATIC_PROBE, TSN_PROXY_IMAGE};

use crate::util::workspace_root;

/// The host's target triple, from rustc.
fn host_triple() -> Result<String, String> {
    let output = Command::new("rustc").arg("-vV").output().map_err(|e| format!("failed to run `rustc -vV`: {e}"))?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .ok_or_else(|| "`rustc -vV` named no host triple".into())
}

pub fn run() -> Result<(), String> {
    let root = workspace_root();
    let triple = host_triple()?;
    let target_dir = root.join("target/probe-image");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // With an explicit --target, RUSTFLAGS reach only the probe, not build scripts.
    let status = Command::new(cargo)
        .args(["build", "--release", "--bin", "cni-probe", "--bin", "tsn-metadata-proxy", "--target", &triple, "--target-dir"])
        .arg(&target_dir)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .current_dir(&root)
        .status()
        .map_err(|e| format!("failed to build the static probe: {e}"))?;
    if !status.success() {
        return Err(format!("building the static probe and proxy failed ({status})"));
    }
    for (binary, dockerfile, tag) in [("cni-probe", "probe/Dockerfile", PROBE_IMAGE), ("tsn-metadata-proxy", "tsn-proxy/Dockerfile", TSN_PROXY_IMAGE)] {
        let context = target_dir.join("context").join(binary);
        std::fs::create_dir_all(&context).map_err(|e| format!("creating {}: {e}", context.display()))?;
        let copy = |from: std::path::PathBuf, name: &str| std::fs::copy(&from, context.join(name)).map_err(|e| format!("copying {}: {e}", from.display()));
        copy(target_dir.join(&triple).join("release").join(binary), binary)?;
        copy(root.join(dockerfile), "Dockerfile")?;
        let output = Command::new("docker")
            .args(["build", "--quiet", "--tag", tag])
            .arg(&context)
            .output()
            .map_err(|e| format!("failed to run `docker build` (is Docker installed?): {e}"))?;
        if !output.status.success() {
            return Err(format!("`docker build --tag {tag}` failed: {}", String::from_utf8_lossy(&output.stderr).trim()));
        }
        eprintln!("xtask image: built {tag} ({})", String::from_utf8_lossy(&output.stdout).trim());
    }
    // Node talkers on kind run this very binary, copied onto the nodes.
    if !root.join(STATIC_PROBE).is_file() {
        return Err(format!("the static probe is not at {STATIC_PROBE}, where the kind provider looks for it"));
    }
    Ok(())
}
