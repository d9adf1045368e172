//! Running cargo and other commands with their output streamed to the user.

use std::path::PathBuf;
use std::process::Command;

pub fn workspace_root() -> PathBuf {
    harness::workspace_root().to_owned()
}

/// Runs `cargo args` in the workspace root, streaming its output.
pub fn cargo(args: &[&str]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .args(args)
        .current_dir(workspace_root())
        .status()
        .map_err(|e| format!("failed to run `cargo {}`: {e}", args.join(" ")))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`cargo {}` failed ({status})", args.join(" ")))
    }
}
