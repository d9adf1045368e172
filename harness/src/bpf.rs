//! The project's BPF programs (`bpf/*.c`), compiled with Debian's clang on first use into
//! `target/bpf/` and recompiled when their source is newer. `cargo xtask deps` installs
//! clang, llvm and libbpf-dev; without clang the error names it and how to get it.

use std::path::PathBuf;
use std::process::Command;

use crate::error::{HarnessError, Result};

/// The compiled object of `bpf/<name>.c`.
pub fn object(name: &str) -> Result<PathBuf> {
    let source = crate::workspace_root().join("bpf").join(format!("{name}.c"));
    let out_dir = crate::workspace_root().join("target/bpf");
    let object = out_dir.join(format!("{name}.o"));
    let modified = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if modified(&object).is_some_and(|built| modified(&source).is_some_and(|src| built >= src)) {
        return Ok(object);
    }
    if !crate::provider::host::on_path("clang") {
        return Err(HarnessError::MissingTool { tool: "clang".into(), purpose: format!("compiling the BPF program {}", source.display()), install: "install Debian's clang, llvm and libbpf-dev with `cargo xtask deps`".into() });
    }
    std::fs::create_dir_all(&out_dir).map_err(|e| HarnessError::Command { command: format!("create {}", out_dir.display()), detail: e.to_string() })?;
    // Several processes may compile at once: each writes its own file, then renames it.
    let partial = out_dir.join(format!("{name}.{}.o", std::process::id()));
    let multiarch = format!("/usr/include/{}-linux-gnu", std::env::consts::ARCH);
    let output = Command::new("clang")
        .args(["-O2", "-g", "-target", "bpf", "-I", &multiarch, "-c"])
        .arg(&source)
        .arg("-o")
        .arg(&partial)
        .output()
        .map_err(|e| HarnessError::Command { command: format!("clang {}", source.display()), detail: e.to_string() })?;
    if !output.status.success() {
        return Err(HarnessError::Command { command: format!("clang -target bpf {}", source.display()), detail: String::from_utf8_lossy(&output.stderr).trim().to_owned() });
    }
    std::fs::rename(&partial, &object).map_err(|e| HarnessError::Command { command: format!("rename {}", partial.display()), detail: e.to_string() })?;
    Ok(object)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_classifier_compiles_into_a_bpf_object() {
        let object = super::object("tsn_classify").expect("clang compiles bpf/tsn_classify.c (cargo xtask deps installs it)");
        let bytes = std::fs::read(&object).unwrap();
        // An ELF object for the BPF machine (EM_BPF = 247).
        assert!(bytes.starts_with(b"\x7fELF") && u16::from_le_bytes([bytes[18], bytes[19]]) == 247, "{}", object.display());
    }
}
