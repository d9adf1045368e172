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
        // A tool that exits early closes its stdin; its exit status and stderr say why.
        match child.stdin.take().expect("stdin is piped").write_all(input.as_bytes()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                return Err(HarnessError::Command { command: command_line(), detail: format!("writing stdin: {e}") })
            }
            _ => {}
        }
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

/// Runs `program args`, which reads only netlink and the netfilter tables (`iptables-save`,
/// `nft`, `tc`), in the named network namespace: the forked child joins it before exec, one
/// process where `ip netns exec` is two (and a mount namespace with `/sys` remounted, which
/// these tools never read). A node snapshot runs four of them, many times per check.
pub fn netlink_tool_in_netns(netns: &str, program: &str, args: &[&str]) -> Result<String> {
    let command_line = || format!("{program} {} in {netns}", args.join(" "));
    let namespace = crate::host::open_netns(netns)?;
    let mut command = Command::new(program);
    command.args(args).stdin(Stdio::null());
    // SAFETY: between fork and exec the child only calls setns on a descriptor opened before.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, move || {
            match libc::setns(std::os::fd::AsRawFd::as_raw_fd(&namespace), libc::CLONE_NEWNET) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            }
        });
    }
    let output = command.output().map_err(|e| HarnessError::Command { command: command_line(), detail: e.to_string() })?;
    match output.status.success() {
        true => Ok(String::from_utf8_lossy(&output.stdout).into_owned()),
        false => {
            Err(HarnessError::Command { command: command_line(), detail: format!("{}: {}", output.status, String::from_utf8_lossy(&output.stderr).trim()) })
        }
    }
}

/// Runs `program args` inside a named network namespace.
pub fn in_netns(netns: &str, program: &str, args: &[&str], stdin: Option<&str>) -> Result<String> {
    let mut full = vec!["netns", "exec", netns, program];
    full.extend_from_slice(args);
    run("ip", &full, stdin)
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
}
