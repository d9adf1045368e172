//! Facts about this machine that providers check before they start: who we are, which tools exist.

/// Whether `tool` is an executable on PATH (or an absolute path to one).
pub fn on_path(tool: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &std::path::Path| p.metadata().map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false);
    if tool.contains('/') {
        return executable(std::path::Path::new(tool));
    }
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| executable(&dir.join(tool))))
        .unwrap_or(false)
}

/// The effective user id of this process, from /proc (no libc needed).
pub fn effective_uid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?;
            line.split_whitespace().nth(2)?.parse().ok()
        })
        .unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_are_found_on_path() {
        assert!(on_path("sh"));
        assert!(!on_path("surely-not-a-tool-anywhere"));
    }
}
