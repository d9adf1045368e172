//! Running the lab's tools (`ip`, `iptables-restore`, `sysctl`) with errors that carry stderr.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::error::{HarnessError, Result};

/// Runs `program args`, feeding `stdin` if given; returns stdout, or an error with the
/// command line and its stderr.
pub fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String> {
    let command_line = || format!("{program} {}", args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| HarnessError::Command { command: command_line(), detail: e.to_string() })?;
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(input.as_bytes())
            .map_err(|e| HarnessError::Command { command: command_line(), detail: format!("writing stdin: {e}") })?;
    }
    let output = child.wait_with_output().map_err(|e| HarnessError::Command { command: command_line(), detail: e.to_string() })?;
    if !output.status.success() {
        let mut detail = format!("{}: {}", output.status, String::from_utf8_lossy(&output.stderr).trim());
        if let Some(input) = stdin {
            detail.push_str(&format!("\ninput was:\n{input}"));
        }
        return Err(HarnessError::Command { command: command_line(), detail });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs `ip -batch -` with one command a line, inside `netns` if given.
pub fn ip_batch(netns: Option<&str>, lines: &[String]) -> Result<()> {
    let mut args = Vec::new();
    if let Some(netns) = netns {
        args.extend(["-n", netns]);
    }
    args.extend(["-batch", "-"]);
    run("ip", &args, Some(&(lines.join("\n") + "\n"))).map(drop)
}

/// Runs `program args` inside a named network namespace.
pub fn in_netns(netns: &str, program: &str, args: &[&str], stdin: Option<&str>) -> Result<String> {
    let mut full = vec!["netns", "exec", netns, program];
    full.extend_from_slice(args);
    run("ip", &full, stdin)
}

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
    fn a_failing_command_reports_its_stderr() {
        let error = run("sh", &["-c", "echo broken >&2; exit 3"], None).unwrap_err().to_string();
        assert!(error.contains("sh -c") && error.contains("broken"), "{error}");
    }

    #[test]
    fn stdin_is_fed() {
        assert_eq!(run("cat", &[], Some("hello")).unwrap(), "hello");
    }

    #[test]
    fn tools_are_found_on_path() {
        assert!(on_path("sh"));
        assert!(!on_path("surely-not-a-tool-anywhere"));
    }
}
