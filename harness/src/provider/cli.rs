//! External command-line tools (kind, kubectl, helm, docker) run through duct: each
//! invocation is a [`CliStep`] with a purpose and a timeout, long ones report progress
//! with elapsed time, and a failure carries the tool's stderr.

use std::fmt;
use std::time::{Duration, Instant};

use crate::error::{HarnessError, Result};

/// One invocation of an external tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliStep {
    /// What it is for, as progress and errors say it: "creating kind cluster cniconf-1a2b3c".
    pub purpose: String,
    pub program: String,
    pub args: Vec<String>,
    pub timeout: Duration,
    /// Failures that mean "not yet" rather than "no", retried within a named budget.
    pub retry: Option<Retry>,
    /// A file the tool reads on its stdin (none: stdin is empty).
    pub stdin: Option<std::path::PathBuf>,
    /// Variables set for the tool beside the harness's own environment.
    pub env: Vec<(String, String)>,
}

/// When a failed step is tried again: its stderr names a transient cause, and the budget
/// (counted from the first try) is not spent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    pub transient: &'static [&'static str],
    pub budget: Duration,
    pub budget_name: &'static str,
}

impl CliStep {
    pub fn new(purpose: impl Into<String>, program: &str, args: impl IntoIterator<Item = impl Into<String>>, timeout: Duration) -> Self {
        Self {
            purpose: purpose.into(),
            program: program.to_owned(),
            args: args.into_iter().map(Into::into).collect(),
            timeout,
            retry: None,
            stdin: None,
            env: Vec::new(),
        }
    }

    /// The same step, reading `path` on its stdin.
    pub fn with_stdin_from(self, path: &std::path::Path) -> Self {
        Self { stdin: Some(path.to_owned()), ..self }
    }

    /// The same step, with `variable` set to `value` in its environment.
    pub fn with_env(mut self, variable: &str, value: impl Into<String>) -> Self {
        self.env.push((variable.to_owned(), value.into()));
        self
    }

    /// The same step, tried again while it fails with stderr containing one of `transient`.
    pub fn retried_on(self, transient: &'static [&'static str], budget: Duration, budget_name: &'static str) -> Self {
        Self { retry: Some(Retry { transient, budget, budget_name }), ..self }
    }
}

impl fmt::Display for CliStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.program, self.args.join(" "))
    }
}

/// How often a running step says it is still running.
const PROGRESS_EVERY: Duration = Duration::from_secs(15);

/// How long a retried step waits between tries.
const RETRY_EVERY: Duration = Duration::from_secs(2);

/// Runs `step`, printing progress to stderr; returns its stdout. A non-zero exit becomes an
/// error with the command and its stderr; a step over its timeout is killed. A step with a
/// [`Retry`] is tried again on a transient failure until its budget is spent; the error then
/// names the budget and the last failure.
pub fn run(step: &CliStep) -> Result<String> {
    let Some(retry) = &step.retry else { return run_once(step) };
    let started = Instant::now();
    let mut tries = 0;
    loop {
        tries += 1;
        match run_once(step) {
            Err(HarnessError::Command { command, detail }) if retry.transient.iter().any(|t| detail.contains(t)) => {
                if started.elapsed() + RETRY_EVERY > retry.budget {
                    return Err(HarnessError::Timeout {
                        what: format!("{} to stop failing transiently ({}; {tries} tries; last: `{command}`: {detail})", step.purpose, retry.budget_name),
                        seconds: retry.budget.as_secs_f64(),
                    });
                }
                tracing::warn!("{} failed transiently (try {tries}), trying again", step.purpose);
                std::thread::sleep(RETRY_EVERY.min(retry.budget));
            }
            done => return done,
        }
    }
}

fn run_once(step: &CliStep) -> Result<String> {
    let _step = tracing::info_span!("step", tool = %step.program).entered();
    let started = Instant::now();
    tracing::info!("{} ...", step.purpose);
    let failed = |detail: String| HarnessError::Command { command: step.to_string(), detail: format!("{} ({detail})", step.purpose) };
    let command =
        step.env.iter().fold(duct::cmd(&step.program, &step.args).stdout_capture().stderr_capture(), |command, (variable, value)| command.env(variable, value));
    let command = match &step.stdin {
        Some(path) => command.stdin_path(path),
        None => command.stdin_null(),
    };
    let handle = command
        .unchecked()
        // Its own process group, so a timeout can stop what the tool started too (kind
        // runs docker); duct's kill reaches only the direct child.
        .before_spawn(|command| {
            std::os::unix::process::CommandExt::process_group(command, 0);
            Ok(())
        })
        .start()
        .map_err(|e| failed(format!("could not start {}: {e}", step.program)))?;
    let deadline = started + step.timeout;
    let output = loop {
        let next = (Instant::now() + PROGRESS_EVERY).min(deadline);
        match handle.wait_deadline(next).map_err(|e| failed(e.to_string()))? {
            Some(output) => break output,
            None if Instant::now() >= deadline => {
                for pid in handle.pids() {
                    let _ = std::process::Command::new("kill").args(["-KILL", "--", &format!("-{pid}")]).status();
                }
                let _ = handle.kill();
                return Err(HarnessError::Timeout { what: format!("`{step}` ({})", step.purpose), seconds: step.timeout.as_secs_f64() });
            }
            None => tracing::info!("{} still running ({}s)", step.purpose, started.elapsed().as_secs()),
        }
    };
    if !output.status.success() {
        return Err(failed(format!("{}: {}", output.status, String::from_utf8_lossy(&output.stderr).trim())));
    }
    tracing::info!("{} done in {:.1}s", step.purpose, started.elapsed().as_secs_f64());
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[tracing_test::traced_test]
    fn progress_is_logged_in_a_span_of_the_step() {
        let step = CliStep::new("saying hello to the log", "sh", ["-c", "echo hello"], Duration::from_secs(5));
        run(&step).unwrap();
        assert!(logs_contain("step{tool=sh}") && logs_contain("saying hello to the log ...") && logs_contain("saying hello to the log done in"));
    }

    #[test]
    fn stdout_comes_back() {
        let step = CliStep::new("saying hello", "sh", ["-c", "echo hello"], Duration::from_secs(5));
        assert_eq!(run(&step).unwrap(), "hello\n");
    }

    #[test]
    fn a_failure_carries_the_command_purpose_and_stderr() {
        let step = CliStep::new("creating kind cluster x", "sh", ["-c", "echo 'node image not found' >&2; exit 1"], Duration::from_secs(5));
        let error = run(&step).unwrap_err().to_string();
        assert!(error.contains("sh -c") && error.contains("creating kind cluster x") && error.contains("node image not found"), "{error}");
    }

    #[test]
    fn a_step_over_its_timeout_is_killed_and_named() {
        let step = CliStep::new("waiting forever", "sleep", ["30"], Duration::from_millis(200));
        let started = Instant::now();
        let error = run(&step).unwrap_err().to_string();
        assert!(started.elapsed() < Duration::from_secs(5), "killed, not waited for");
        assert!(error.contains("timed out after 0.2s") && error.contains("waiting forever"), "{error}");
    }

    #[test]
    fn a_timeout_stops_what_the_tool_started_too() {
        let step = CliStep::new("starting a grandchild", "sh", ["-c", "sleep 30; echo late"], Duration::from_millis(200));
        let started = Instant::now();
        assert!(run(&step).is_err());
        assert!(started.elapsed() < Duration::from_secs(5), "the grandchild holding the output pipe was stopped too");
    }

    #[test]
    fn a_transient_failure_is_retried_until_it_passes() {
        let dir = tempfile::tempdir().unwrap();
        let counter = dir.path().join("tries");
        // Fails twice like a webhook that is not serving yet, then succeeds.
        let script = format!("n=$(cat {0} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {0}; if [ $n -lt 3 ]; then echo 'Internal error occurred: failed calling webhook \"ipaddresspoolvalidationwebhook.metallb.io\"' >&2; exit 1; fi; echo applied", counter.display());
        let step = CliStep::new("giving MetalLB addresses", "sh", ["-c", &script], Duration::from_secs(5)).retried_on(
            &["failed calling webhook"],
            Duration::from_secs(30),
            "KindTimeouts::webhook_ready",
        );
        assert_eq!(run(&step).unwrap(), "applied\n");
        assert_eq!(std::fs::read_to_string(&counter).unwrap().trim(), "3");
    }

    #[test]
    fn a_transient_failure_past_its_budget_names_the_budget_and_the_last_error() {
        let step = CliStep::new(
            "giving MetalLB addresses",
            "sh",
            ["-c", "echo 'dial tcp 10.96.0.5:443: connect: connection refused' >&2; exit 1"],
            Duration::from_secs(5),
        )
        .retried_on(&["connection refused"], Duration::from_millis(100), "KindTimeouts::webhook_ready");
        let error = run(&step).unwrap_err().to_string();
        assert!(error.contains("KindTimeouts::webhook_ready") && error.contains("connection refused") && error.contains("giving MetalLB addresses"), "{error}");
    }

    #[test]
    fn a_lasting_failure_is_not_retried() {
        let step = CliStep::new("applying", "sh", ["-c", "echo 'admission webhook denied the request: invalid range' >&2; exit 1"], Duration::from_secs(5))
            .retried_on(&["failed calling webhook"], Duration::from_secs(30), "KindTimeouts::webhook_ready");
        let started = Instant::now();
        let error = run(&step).unwrap_err().to_string();
        assert!(started.elapsed() < Duration::from_secs(2) && error.contains("denied the request"), "{error}");
    }

    #[test]
    fn a_missing_program_is_named() {
        let step = CliStep::new("creating a cluster", "no-such-kind-binary", ["create"], Duration::from_secs(5));
        let error = run(&step).unwrap_err().to_string();
        assert!(error.contains("could not start no-such-kind-binary"), "{error}");
    }
}
