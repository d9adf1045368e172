//! Facts about this machine that providers check before they start: who we are, which tools
//! exist, which Debian packages installed them.

/// Whether `tool` is an executable on PATH (or an absolute path to one).
pub fn on_path(tool: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &std::path::Path| p.metadata().map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false);
    if tool.contains('/') {
        return executable(std::path::Path::new(tool));
    }
    std::env::var_os("PATH").map(|paths| std::env::split_paths(&paths).any(|dir| executable(&dir.join(tool)))).unwrap_or(false)
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

/// The installed version of Debian package `package` (dpkg's database), if it is installed.
pub fn debian_package_version(package: &str) -> Option<String> {
    let output = std::process::Command::new("dpkg-query").args(["-W", "-f=${Version}", package]).output().ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned()).filter(|v| !v.is_empty())
}

/// The Debian package that installed `path`, if one did.
pub fn debian_package_of(path: &std::path::Path) -> Option<String> {
    let output = std::process::Command::new("dpkg-query").arg("-S").arg(path).output().ok()?;
    let owner = String::from_utf8_lossy(&output.stdout);
    output.status.success().then(|| owner.split(':').next().map(|p| p.trim().to_owned())).flatten().filter(|p| !p.is_empty())
}

/// The Debian package of the reference plugins.
pub const REFERENCE_PLUGINS_PACKAGE: &str = "containernetworking-plugins";

/// Where `cargo xtask deps` unpacks Debian unstable's reference plugins (the upgrade's "to"
/// version; 1.9.1 as of writing), beside the machine's own 1.1.1: `target/debian-unstable`.
pub fn unstable_plugins_root() -> std::path::PathBuf {
    crate::workspace_root().join("target").join("debian-unstable").join(REFERENCE_PLUGINS_PACKAGE)
}

/// Debian unstable's reference plugins as `cargo xtask deps` left them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnstablePlugins {
    /// The plugin directory (`.../usr/lib/cni`).
    pub dir: std::path::PathBuf,
    /// The package's version, e.g. `1.9.1+ds1-1`.
    pub version: String,
}

/// The unpacked plugins and their version, or why they are not there.
pub fn unstable_plugins() -> Result<UnstablePlugins, String> {
    let root = unstable_plugins_root();
    let dir = root.join("usr/lib/cni");
    let version = std::fs::read_to_string(root.join("VERSION")).map(|v| v.trim().to_owned()).unwrap_or_default();
    if version.is_empty() || !dir.join("bridge").is_file() {
        return Err(format!(
            "Debian unstable's {REFERENCE_PLUGINS_PACKAGE} is not unpacked in {}: `cargo xtask deps` fetches it (and says why when it cannot)",
            root.display()
        ));
    }
    Ok(UnstablePlugins { dir, version })
}

/// The named network namespace (a name under `/run/netns`), opened to be joined with
/// `setns` (a plugin's view, a node's tools, a node's BPF query); the error names its path.
pub fn open_netns(netns: &str) -> crate::Result<std::fs::File> {
    let path = std::path::Path::new("/run/netns").join(netns);
    std::fs::File::open(&path)
        .map_err(|e| crate::HarnessError::Command { command: format!("open network namespace {}", path.display()), detail: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_are_found_on_path() {
        assert!(on_path("sh"));
        assert!(!on_path("surely-not-a-tool-anywhere"));
    }

    #[test]
    fn the_reference_plugins_come_from_their_debian_package() {
        assert_eq!(
            debian_package_of(std::path::Path::new("/usr/lib/cni/bridge")).as_deref(),
            Some(REFERENCE_PLUGINS_PACKAGE),
            "installed by `cargo xtask deps`"
        );
        assert!(debian_package_version(REFERENCE_PLUGINS_PACKAGE).is_some_and(|v| v.chars().next().is_some_and(|c| c.is_ascii_digit())));
        assert_eq!(debian_package_of(std::path::Path::new("/nonexistent/plugin")), None);
        assert_eq!(debian_package_version("no-such-package-here"), None);
    }
}
