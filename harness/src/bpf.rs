//! The project's BPF programs (`bpf/*.c`), compiled with Debian's clang on first use into
//! `target/bpf/` and recompiled when their source is newer. `cargo xtask deps` installs
//! clang, llvm and libbpf-dev; without clang the error names it and how to get it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::error::{HarnessError, Result};

/// One compilation at a time in a process (trials run side by side).
static COMPILING: Mutex<()> = Mutex::new(());

/// The `tc` arguments that give `dev` the priority map's classes (HTB root `1:`, classes
/// 1:1 to 1:4 of `verdict::priority`, unknown traffic to 1:3): the root first, then each
/// class. Replacing the root starts its counters at zero.
pub fn priority_classes(dev: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let words = |s: &[&str]| s.iter().map(|w| (*w).to_owned()).collect::<Vec<_>>();
    let root = words(&["qdisc", "replace", "dev", dev, "root", "handle", "1:", "htb", "default", "3"]);
    let classes = (1..=4)
        .map(|minor| words(&["class", "replace", "dev", dev, "parent", "1:", "classid", &format!("1:{minor}"), "htb", "rate", "10gbit", "quantum", "60000"]))
        .collect();
    (root, classes)
}

/// The `tc` arguments that sort `dev`'s priority classes with the classifier in `object`
/// (its path where `tc` runs), in place of the one there.
pub fn classifier_filter(dev: &str, object: &str) -> Vec<String> {
    ["filter", "replace", "dev", dev, "parent", "1:", "prio", "1", "handle", "1", "bpf", "obj", object, "sec", "classifier"].map(str::to_owned).into()
}

/// The compiled object of `bpf/<name>.c`.
pub fn object(name: &str) -> Result<PathBuf> {
    variant(name, name, &[])
}

/// `bpf/<source>.c` compiled with `-D<define>` for each of `defines`, as `<name>.o`.
pub fn variant(source: &str, name: &str, defines: &[&str]) -> Result<PathBuf> {
    let source = crate::workspace_root().join("bpf").join(format!("{source}.c"));
    compile_as(&source, name, defines, &crate::project_root().join("target/bpf"))
}

/// Compiles `source` with `defines` into `out_dir` as `<stem>.o`, unless an object newer
/// than the source is there.
fn compile_as(source: &Path, stem: &str, defines: &[&str], out_dir: &Path) -> Result<PathBuf> {
    let _one_at_a_time = COMPILING.lock().unwrap_or_else(|e| e.into_inner());
    let object = out_dir.join(format!("{stem}.o"));
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if modified(&object).is_some_and(|built| modified(source).is_some_and(|src| built >= src)) {
        return Ok(object);
    }
    if !crate::host::on_path("clang") {
        return Err(HarnessError::MissingTool {
            tool: "clang".into(),
            purpose: format!("compiling the BPF program {}", source.display()),
            install: "install Debian's clang, llvm and libbpf-dev with `cargo xtask deps`".into(),
        });
    }
    let failed = |what: String| move |e: std::io::Error| HarnessError::Command { command: what, detail: e.to_string() };
    std::fs::create_dir_all(out_dir).map_err(failed(format!("create {}", out_dir.display())))?;
    // Other processes may compile at once: each writes a file of its own, then renames it.
    let partial =
        tempfile::Builder::new().prefix(&stem).suffix(".o.partial").tempfile_in(out_dir).map_err(failed(format!("create a file in {}", out_dir.display())))?;
    let multiarch = format!("/usr/include/{}-linux-gnu", std::env::consts::ARCH);
    let output = Command::new("clang")
        .args(["-O2", "-g", "-target", "bpf", "-I", &multiarch])
        .args(defines.iter().map(|d| format!("-D{d}")))
        .arg("-c")
        .arg(source)
        .arg("-o")
        .arg(partial.path())
        .output()
        .map_err(failed(format!("clang {}", source.display())))?;
    if !output.status.success() {
        return Err(HarnessError::Command {
            command: format!("clang -target bpf {}", source.display()),
            detail: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    partial.persist(&object).map_err(|e| HarnessError::Command { command: format!("write {}", object.display()), detail: e.to_string() })?;
    Ok(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ELF object for the BPF machine (EM_BPF = 247).
    fn is_bpf_object(path: &Path) -> bool {
        let bytes = std::fs::read(path).unwrap();
        bytes.starts_with(b"\x7fELF") && u16::from_le_bytes([bytes[18], bytes[19]]) == 247
    }

    #[test]
    fn the_classifier_compiles_into_a_bpf_object() {
        let object = object("tsn_classify").expect("clang compiles bpf/tsn_classify.c (cargo xtask deps installs it)");
        assert!(is_bpf_object(&object), "{}", object.display());
    }

    #[test]
    fn trials_side_by_side_compile_it_once_without_tripping_over_each_other() {
        let out = tempfile::tempdir().unwrap();
        let source = crate::workspace_root().join("bpf/tsn_classify.c");
        let built: Vec<Result<PathBuf>> = std::thread::scope(|s| {
            (0..4)
                .map(|_| s.spawn(|| compile_as(&source, "tsn_classify", &[], out.path())))
                .collect::<Vec<_>>()
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect()
        });
        assert!(built.iter().all(|b| b.as_ref().is_ok_and(|p| is_bpf_object(p))), "{built:?}");
        let left: Vec<_> = std::fs::read_dir(out.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left.len(), 1, "one object, no partial files: {left:?}");
    }
}
