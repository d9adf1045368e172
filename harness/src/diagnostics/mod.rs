//! What a failed trial leaves behind: a bundle of its cluster's state (every node's links,
//! addresses, routes, rules, firewall, qdiscs, connection tracking), the provider's own
//! records of the trial (its CNI calls, the reference components' logs and state) and a
//! path trace of the flow it judged last, written before the trial's cluster changes
//! again, within [`LIMITS`]. Collection never changes a verdict: a step that fails is
//! written into the bundle, never raised.

pub mod priority_trace;
pub mod trace;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{HarnessError, Result};
use crate::model::{DiagnosticCommand, Pod};
use crate::provider::Cluster;
use crate::verdict::snat::AddressBook;

/// How big and how long a bundle may get.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes written per bundle: a file past them is cut, later ones are listed as skipped.
    pub max_bytes: usize,
    /// Bytes per file: one node's ten thousand rules never crowd out the rest.
    pub max_file_bytes: usize,
    /// Time per bundle: steps that would start after it are listed as skipped.
    pub time: Duration,
    /// Time per command on a node (`timeout` ends it).
    pub per_command: Duration,
}

/// A bundle's bounds, in one place.
pub const LIMITS: Limits = Limits { max_bytes: 4 << 20, max_file_bytes: 512 << 10, time: Duration::from_secs(30), per_command: Duration::from_secs(5) };

/// `failures` (the default): a bundle for each failed or errored trial; `always`: for every
/// trial that ran; `never`.
pub const COLLECT_VARIABLE: &str = "CNICONF_COLLECT";

/// Which trials get a bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collect {
    Failures,
    Always,
    Never,
}

impl Collect {
    pub fn from_env() -> Result<Self> {
        match std::env::var(COLLECT_VARIABLE).unwrap_or_default().as_str() {
            "" | "failures" => Ok(Collect::Failures),
            "always" => Ok(Collect::Always),
            "never" => Ok(Collect::Never),
            other => Err(HarnessError::UnknownName {
                what: "collection mode".into(),
                name: other.into(),
                variable: COLLECT_VARIABLE.into(),
                expected: "failures (the default), always, never".into(),
            }),
        }
    }

    /// Whether a trial that `failed` (or not) gets a bundle.
    pub fn wants(self, failed: bool) -> bool {
        match self {
            Collect::Failures => failed,
            Collect::Always => true,
            Collect::Never => false,
        }
    }
}

/// The harness's own commands on every node: what a CNI makes and what a packet meets.
pub fn node_commands() -> Vec<DiagnosticCommand> {
    [
        ("links", &["ip", "-d", "-s", "link", "show"][..]),
        ("addresses", &["ip", "addr", "show"]),
        ("routes", &["ip", "route", "show", "table", "all"]),
        ("rules", &["ip", "rule", "show"]),
        ("neighbours", &["ip", "neigh", "show"]),
        ("iptables", &["iptables-save", "-c"]),
        ("nftables", &["nft", "list", "ruleset"]),
        ("qdiscs", &["tc", "-s", "qdisc", "show"]),
        ("classes-eth0", &["tc", "-s", "class", "show", "dev", "eth0"]),
        ("filters-eth0", &["tc", "-s", "filter", "show", "dev", "eth0"]),
        ("conntrack", &["conntrack", "-L"]),
        ("bpf-net", &["bpftool", "net", "show"]),
        // Programs and maps are the kernel's, not the namespace's: on the lab every node
        // shows the same (every run's), on kind each node its own machine's.
        ("bpf-progs", &["bpftool", "prog", "show"]),
        ("bpf-maps", &["bpftool", "map", "show"]),
    ]
    .into_iter()
    .map(|(name, run)| DiagnosticCommand::new(name, run))
    .collect()
}

/// What the external host shows of the flows that reach it.
fn outside_commands() -> Vec<DiagnosticCommand> {
    [("addresses", &["ip", "addr", "show"][..]), ("routes", &["ip", "route", "show", "table", "all"]), ("conntrack", &["conntrack", "-L"])]
        .into_iter()
        .map(|(name, run)| DiagnosticCommand::new(name, run))
        .collect()
}

/// One request a trial made: from a pod to a URL.
#[derive(Debug, Clone)]
pub struct Flow {
    pub client: Pod,
    pub url: String,
}

/// The talkers of a trial a bundle traces at most (the paper's three priorities, and one
/// more place).
const MAX_TRACED_TALKERS: usize = 4;

/// One talker a trial ran (TSN): in a pod, or on its node itself, with what it sent.
#[derive(Debug, Clone)]
pub struct Talk {
    pub pod: Option<Pod>,
    pub node: crate::model::Node,
    pub options: cni_probe::talk::TalkOptions,
}

/// What a bundle holds about one trial.
pub struct TrialEvidence<'a> {
    pub scenario: &'a str,
    /// The trial's name (`t3-<run id>`): its objects carry it.
    pub trial: &'a str,
    /// How it ended, as the reports say it.
    pub outcome: &'a str,
    /// The requests it made, in order: the last is traced.
    pub flows: &'a [Flow],
    /// The talkers it ran, in order: the last is traced hop by hop by its priority.
    pub talks: &'a [Talk],
    pub book: &'a AddressBook,
    /// The profile's own commands, run beside [`node_commands`].
    pub profile_commands: &'a [DiagnosticCommand],
    /// Every node's iptables rule counters when the trial started, where they were read.
    pub rules_at_start: Option<&'a RuleCounters>,
}

/// Per node ("node <name>"), every iptables rule with its packet counter, or why they
/// could not be read.
pub type RuleCounters = Vec<(String, std::result::Result<std::collections::BTreeMap<String, u64>, String>)>;

/// Every node's iptables rule counters now (`iptables-save -c`).
pub fn rule_counters(cluster: &dyn Cluster) -> RuleCounters {
    cluster.nodes().iter().map(|node| (format!("node {}", node.name), crate::provider::rule_counters_on(cluster, node).map_err(|e| e.to_string()))).collect()
}

/// Per node, the rules whose packet counters moved from `start` to `now`, as a file.
fn rules_moved(start: &RuleCounters, now: &RuleCounters) -> String {
    let mut out = "iptables rules whose packet counters moved during the trial, from its start to this bundle, per node\n(trials running beside it move some too; the path trace's replay comes after and is not counted here):\n".to_owned();
    for ((place, before), (_, after)) in start.iter().zip(now) {
        match (before, after) {
            (Ok(before), Ok(after)) => {
                let moved = crate::verdict::iptables::moved_rules(before, after, 1);
                out.push_str(&format!("--- {place}{}\n", if moved.is_empty() { ": none" } else { "" }));
                out.extend(moved.iter().map(|rule| format!("  {rule}\n")));
            }
            (Err(e), _) | (_, Err(e)) => out.push_str(&format!("--- {place}: not read: {e}\n")),
        }
    }
    out
}

/// A bundle being written: every file counted against [`LIMITS`].
struct Bundle {
    dir: PathBuf,
    started: Instant,
    bytes: usize,
    files: Vec<String>,
    problems: Vec<String>,
    skipped: Vec<String>,
}

impl Bundle {
    /// A bundle being written into `dir`, made here; `Err(dir)` when it cannot be.
    fn start(dir: &Path) -> std::result::Result<Self, PathBuf> {
        if let Err(e) = std::fs::create_dir_all(dir) {
            tracing::warn!("no diagnostics bundle: could not create {}: {e}", dir.display());
            return Err(dir.to_owned());
        }
        Ok(Bundle { dir: dir.to_owned(), started: Instant::now(), bytes: 0, files: Vec::new(), problems: Vec::new(), skipped: Vec::new() })
    }

    fn file(&mut self, name: &str, contents: &str) {
        let room = LIMITS.max_bytes.saturating_sub(self.bytes);
        if room == 0 {
            self.skipped.push(format!("{name}: the bundle reached {} bytes (LIMITS.max_bytes)", LIMITS.max_bytes));
            return;
        }
        let mut cut = contents.len().min(room).min(LIMITS.max_file_bytes);
        while !contents.is_char_boundary(cut) {
            cut -= 1;
        }
        let mut text = contents[..cut].to_owned();
        if cut < contents.len() {
            text.push_str(&format!(
                "\n[cut at {cut} of {} bytes: a file may hold {} bytes (LIMITS.max_file_bytes), the bundle {} (LIMITS.max_bytes)]\n",
                contents.len(),
                LIMITS.max_file_bytes,
                LIMITS.max_bytes
            ));
        }
        let path = self.dir.join(name);
        let written = path.parent().map_or(Ok(()), std::fs::create_dir_all).and_then(|()| std::fs::write(&path, &text));
        match written {
            Ok(()) => {
                self.bytes += text.len();
                self.files.push(format!("{name} ({} bytes{})", text.len(), if cut < contents.len() { ", cut" } else { "" }));
            }
            Err(e) => self.problems.push(format!("{name}: could not be written: {e}")),
        }
    }

    /// A binary file (a pcap), whole or not at all: a cut one would not open.
    fn binary(&mut self, name: &str, contents: &[u8]) {
        let room = LIMITS.max_bytes.saturating_sub(self.bytes).min(LIMITS.max_file_bytes);
        if contents.len() > room {
            self.skipped.push(format!("{name}: {} bytes, more than the {room} left for one file (LIMITS.max_file_bytes, LIMITS.max_bytes)", contents.len()));
            return;
        }
        let path = self.dir.join(name);
        match path.parent().map_or(Ok(()), std::fs::create_dir_all).and_then(|()| std::fs::write(&path, contents)) {
            Ok(()) => {
                self.bytes += contents.len();
                self.files.push(format!("{name} ({} bytes)", contents.len()));
            }
            Err(e) => self.problems.push(format!("{name}: could not be written: {e}")),
        }
    }

    /// False (and `what` listed as skipped) once the bundle's time is spent.
    fn in_time(&mut self, what: &str) -> bool {
        let in_time = self.started.elapsed() < LIMITS.time;
        if !in_time {
            self.skipped.push(format!("{what}: the bundle's {} s (LIMITS.time) were spent", LIMITS.time.as_secs()));
        }
        in_time
    }

    /// The command's output as a file, or why there is none (also listed as a problem).
    fn command(&mut self, name: &str, place: &str, command: &DiagnosticCommand, run: impl FnOnce(&str, &[&str]) -> Result<crate::model::ExecOutput>) {
        if !self.in_time(name) {
            return;
        }
        let seconds = LIMITS.per_command.as_secs().to_string();
        let mut args: Vec<&str> = vec![&seconds];
        args.extend(command.run.iter().map(String::as_str));
        let line = command.run.join(" ");
        let text = match run("timeout", &args) {
            Ok(output) => {
                if output.exit != "exit status 0" {
                    self.problems.push(format!("{name}: `{line}` on {place}: {}; {}", output.exit, output.stderr.trim()));
                }
                format!(
                    "$ {line}\n# on {place}: {}\n{}{}",
                    output.exit,
                    output.stdout,
                    if output.stderr.trim().is_empty() { String::new() } else { format!("# stderr:\n{}", output.stderr) }
                )
            }
            Err(e) => {
                self.problems.push(format!("{name}: `{line}` on {place}: {e}"));
                format!("$ {line}\n# on {place}: could not be run: {e}\n")
            }
        };
        self.file(name, &text);
    }

    /// Writes the bundle's index (`bundle.txt`): the trial, what is here, what failed,
    /// what was skipped.
    fn finish(self, evidence: &TrialEvidence) -> PathBuf {
        self.finish_as(evidence.scenario, evidence.trial, evidence.outcome)
    }

    fn finish_as(self, scenario: &str, trial: &str, outcome: &str) -> PathBuf {
        let list = |items: &[String]| if items.is_empty() { "  none\n".to_owned() } else { items.iter().map(|i| format!("  {i}\n")).collect() };
        let index = format!(
            "scenario: {}\ntrial: {}\noutcome: {}\ncollected in {:.1} s, {} bytes (limits: {} bytes, {} s, {} s per command)\n\nfiles:\n{}\ncollection steps that failed (recorded, not raised):\n{}\nskipped:\n{}",
            scenario,
            trial,
            outcome,
            self.started.elapsed().as_secs_f64(),
            self.bytes,
            LIMITS.max_bytes,
            LIMITS.time.as_secs(),
            LIMITS.per_command.as_secs(),
            list(&self.files),
            list(&self.problems),
            list(&self.skipped)
        );
        let path = self.dir.join("bundle.txt");
        if let Err(e) = crate::files::write_atomically(&path, index.as_bytes()) {
            tracing::warn!("could not write {}: {e}", path.display());
        }
        self.dir
    }
}

/// Collects a bundle of `evidence`'s trial on `cluster` into `dir`; returns `dir`.
pub fn collect(cluster: &Arc<dyn Cluster>, evidence: &TrialEvidence, dir: &Path) -> PathBuf {
    let mut bundle = match Bundle::start(dir) {
        Ok(bundle) => bundle,
        Err(dir) => return dir,
    };
    // Every wait of the collection (an agent command, Antrea's Traceflow) ends with the
    // bundle's time at the latest.
    let _bundle_time = crate::deadline::enter(crate::deadline::TrialClock::starting_now(LIMITS.time), "LIMITS.time");
    // The counters first: the trace's replay moves them too.
    if let Some(start) = evidence.rules_at_start {
        let now = rule_counters(cluster.as_ref());
        bundle.file("rule-counters.txt", &rules_moved(start, &now));
    }
    // The flow next: a trace replays it on the cluster as the trial left it.
    if let Some(flow) = evidence.flows.last() {
        if bundle.in_time("path-trace.txt") {
            match trace::trace(cluster, flow, evidence.book) {
                Ok(trace) => {
                    bundle.file("path-trace.txt", &trace.render());
                    for (place, pcap) in &trace.pcaps {
                        bundle.binary(&format!("captures/{}.pcap", place.replace(' ', "-")), pcap);
                    }
                }
                Err(e) => {
                    bundle.problems.push(format!("path-trace.txt: {e}"));
                    bundle.file("path-trace.txt", &format!("no path trace of {} -> {}: {e}\n", pod_name(&flow.client), flow.url));
                }
            }
        }
        // What the CNI's own tracer (Antrea's Traceflow) says of the same flow.
        if let Some(to) = trace::destination(&flow.url) {
            if bundle.in_time("the CNI's flow trace") {
                for (name, contents) in cluster.flow_records(evidence.trial, &flow.client, to) {
                    bundle.file(&name, &contents);
                }
            }
        }
    }
    // Each talker of the trial (the last run of each priority from each place), so the
    // priority that failed is among them whichever it was.
    let mut talkers: Vec<&Talk> = Vec::new();
    for talk in evidence.talks.iter().rev() {
        let same = |t: &&Talk| t.pod == talk.pod && t.node.name == talk.node.name && t.options.priority == talk.options.priority;
        if !talkers.iter().any(same) && talkers.len() < MAX_TRACED_TALKERS {
            talkers.push(talk);
        }
    }
    if !talkers.is_empty() && bundle.in_time("priority-trace.txt") {
        let traces: Vec<String> = talkers
            .iter()
            .rev()
            .map(|talk| match priority_trace::trace(cluster, talk) {
                Ok(trace) => trace.render(),
                Err(e) => {
                    bundle.problems.push(format!("priority-trace.txt: {e}"));
                    format!(
                        "no priority trace of the talker in {} -> {}: {e}\n",
                        talk.pod.as_ref().map_or_else(|| format!("node {}", talk.node.name), pod_name),
                        talk.options.to
                    )
                }
            })
            .collect();
        bundle.file("priority-trace.txt", &traces.join("\n"));
    }
    // The trial's own records next: small, and the first a reader wants.
    for (name, contents) in cluster.own_records(evidence.trial) {
        bundle.file(&name, &contents);
    }
    let commands: Vec<DiagnosticCommand> = node_commands().into_iter().chain(evidence.profile_commands.iter().cloned()).collect();
    for node in cluster.nodes() {
        for command in &commands {
            bundle.command(&format!("nodes/{}/{}.txt", node.name, command.name), &format!("node {}", node.name), command, |program, args| {
                cluster.run_on_node(node, program, args)
            });
        }
    }
    for command in outside_commands() {
        bundle.command(&format!("outside/{}.txt", command.name), "the external host", &command, |program, args| cluster.run_outside(program, args));
    }
    bundle.finish(evidence)
}

/// What a failed `cni_spec` check leaves in `dir`: every plugin call it made, in order
/// (`cni-calls/calls.txt`, as the lab's bundles write them), and its node's state as the
/// check left it (`node-state.txt`: the snapshot the DEL checks compare); returns `dir`.
pub fn collect_plugin_check(
    dir: &Path,
    check: &str,
    outcome: &str,
    calls: &[crate::cni::runtime::Invocation],
    node_state: std::result::Result<Vec<String>, String>,
) -> PathBuf {
    let mut bundle = match Bundle::start(dir) {
        Ok(bundle) => bundle,
        Err(dir) => return dir,
    };
    let described: String = calls.iter().map(|call| call.describe()).collect();
    bundle.file("cni-calls/calls.txt", if described.is_empty() { "the check made no plugin call\n" } else { &described });
    match node_state {
        Ok(lines) => bundle.file("node-state.txt", &lines.iter().map(|l| format!("{l}\n")).collect::<String>()),
        Err(e) => {
            bundle.problems.push(format!("node-state.txt: {e}"));
            bundle.file("node-state.txt", &format!("the node's state could not be read: {e}\n"));
        }
    }
    bundle.finish_as(check, "the check's own node", outcome)
}

fn pod_name(pod: &Pod) -> String {
    format!("pod {}/{}", pod.namespace, pod.name)
}

/// What is wrong with a trial's bundle, for the self-tests: a failed or errored trial must
/// carry one with its index, every node's state and the CNI calls; a passed one none.
pub fn bundle_problems(scenario: &str, failed: bool, bundle: Option<&Path>) -> Vec<String> {
    match (failed, bundle) {
        (false, None) => vec![],
        (false, Some(b)) => vec![format!("{scenario} passed but left a bundle {}", b.display())],
        (true, None) => vec![format!("{scenario} failed without a diagnostics bundle")],
        (true, Some(bundle)) => {
            let index = std::fs::read_to_string(bundle.join("bundle.txt")).unwrap_or_default();
            match index.contains(&format!("scenario: {scenario}")) && bundle.join("nodes").is_dir() && bundle.join("cni-calls").is_dir() {
                true => vec![],
                false => vec![format!("{scenario}: bundle {} lacks its index, the nodes' state or the CNI calls", bundle.display())],
            }
        }
    }
}

/// Where a trial's bundle goes under `root`: its scenario and trial, as a directory name.
pub fn bundle_dir(root: &Path, scenario: &str, trial: &str) -> PathBuf {
    root.join(format!("{scenario}-{trial}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agent_command_gets_what_a_node_command_gets() {
        assert_eq!(crate::kube_access::AGENT_COMMAND_BUDGET, LIMITS.per_command);
    }

    fn bundle(dir: &Path) -> Bundle {
        Bundle::start(dir).expect("a bundle directory")
    }

    /// A `cni_spec` check's bundle: its plugin calls with what went in and came out, its
    /// node's state, and an index naming the check; a state that could not be read says why.
    #[test]
    fn a_plugin_check_s_bundle_holds_its_calls_and_its_node_s_state() {
        let dir = tempfile::tempdir().unwrap();
        let call = crate::cni::runtime::Invocation {
            at: std::time::SystemTime::UNIX_EPOCH,
            took: Duration::from_millis(12),
            plugin: "/usr/lib/cni/ptp".into(),
            environment: vec![("CNI_COMMAND".into(), "DEL".into()), ("CNI_CONTAINERID".into(), "spec-1".into())],
            stdin: r#"{"cniVersion":"1.0.0","name":"n","type":"ptp"}"#.into(),
            output: crate::cni::runtime::PluginOutput {
                success: false,
                status: "exit status: 1".into(),
                stdout: r#"{"code":11,"msg":"gone"}"#.into(),
                stderr: String::new(),
                hung_after: None,
            },
        };
        let check = "ptp::del_twice_succeeds";
        let bundle = collect_plugin_check(&dir.path().join("b"), check, "failed: DEL twice", std::slice::from_ref(&call), Ok(vec!["link veth1 up".into()]));
        let calls = std::fs::read_to_string(bundle.join("cni-calls/calls.txt")).unwrap();
        assert!(
            calls.contains("DEL /usr/lib/cni/ptp")
                && calls.contains("CNI_CONTAINERID=spec-1")
                && calls.contains(r#""code":11"#)
                && calls.contains("exit status: 1"),
            "{calls}"
        );
        assert_eq!(std::fs::read_to_string(bundle.join("node-state.txt")).unwrap(), "link veth1 up\n");
        let index = std::fs::read_to_string(bundle.join("bundle.txt")).unwrap();
        assert!(index.contains(&format!("scenario: {check}")) && index.contains("outcome: failed: DEL twice"), "{index}");
        let unread = collect_plugin_check(&dir.path().join("c"), check, "error", &[], Err("a plugin still held it".into()));
        assert!(std::fs::read_to_string(unread.join("node-state.txt")).unwrap().contains("could not be read: a plugin still held it"));
        assert!(std::fs::read_to_string(unread.join("cni-calls/calls.txt")).unwrap().contains("made no plugin call"));
        assert!(std::fs::read_to_string(unread.join("bundle.txt")).unwrap().contains("node-state.txt: a plugin still held it"));
    }

    #[test]
    fn the_rules_a_trial_moved_are_named_per_node_and_an_unread_node_says_why() {
        let counters = |pairs: &[(&str, u64)]| Ok(pairs.iter().map(|(r, n)| ((*r).to_owned(), *n)).collect());
        let start: RuleCounters = vec![
            ("node w1".into(), counters(&[("nat -A POSTROUTING -j LAB-EGRESS", 3), ("nat -A LAB-EGRESS -s 10.244.1.4 -j SNAT", 0)])),
            ("node w2".into(), Err("docker exec failed".into())),
        ];
        let now: RuleCounters = vec![
            ("node w1".into(), counters(&[("nat -A POSTROUTING -j LAB-EGRESS", 9), ("nat -A LAB-EGRESS -s 10.244.1.4 -j SNAT", 0)])),
            ("node w2".into(), counters(&[])),
        ];
        let text = rules_moved(&start, &now);
        assert!(text.contains("--- node w1\n  nat -A POSTROUTING -j LAB-EGRESS"), "{text}");
        assert!(!text.contains("-j SNAT"), "a rule nothing went through is not listed: {text}");
        assert!(text.contains("--- node w2: not read: docker exec failed"), "{text}");
    }

    #[test]
    fn a_bundle_never_grows_past_its_limit_and_says_what_it_cut_and_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = bundle(dir.path());
        let files = LIMITS.max_bytes / LIMITS.max_file_bytes;
        for i in 0..files {
            b.file(&format!("a{i}.txt"), &"x".repeat(LIMITS.max_file_bytes * 2));
        }
        assert!(
            std::fs::read_to_string(dir.path().join("a0.txt")).unwrap().contains(&format!(
                "[cut at {} of {} bytes",
                LIMITS.max_file_bytes,
                LIMITS.max_file_bytes * 2
            )),
            "one file is cut at its own limit"
        );
        b.bytes = LIMITS.max_bytes - 10;
        b.file("b.txt", &"é".repeat(100));
        b.file("c.txt", "more");
        let on_disk: usize = std::fs::read_dir(dir.path()).unwrap().map(|f| f.unwrap().metadata().unwrap().len() as usize).sum();
        assert!(on_disk <= LIMITS.max_bytes + 200 * (files + 1), "{on_disk}");
        assert!(std::fs::read_to_string(dir.path().join("b.txt")).unwrap().contains("[cut at 10 of 200 bytes"), "cut at a character boundary and said so");
        assert!(!dir.path().join("c.txt").exists());
        assert!(b.skipped.iter().any(|s| s.starts_with("c.txt: the bundle reached")), "{:?}", b.skipped);
    }

    #[test]
    fn a_failing_step_is_recorded_not_raised_and_steps_past_the_time_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = bundle(dir.path());
        let command = DiagnosticCommand::new("x", &["ip", "link"]);
        b.command("nodes/n/x.txt", "node n", &command, |_, _| Err(HarnessError::Command { command: "ip".into(), detail: "no such node".into() }));
        assert!(std::fs::read_to_string(dir.path().join("nodes/n/x.txt")).unwrap().contains("could not be run"));
        assert_eq!(b.problems.len(), 1);
        b.started = Instant::now() - LIMITS.time;
        let mut ran = false;
        b.command("nodes/n/y.txt", "node n", &command, |_, _| {
            ran = true;
            unreachable!()
        });
        assert!(!ran && b.skipped.iter().any(|s| s.contains("LIMITS.time")), "{:?}", b.skipped);
        let evidence = TrialEvidence {
            scenario: "s",
            trial: "t1-x",
            outcome: "failed",
            flows: &[],
            talks: &[],
            book: &AddressBook::default(),
            profile_commands: &[],
            rules_at_start: None,
        };
        let index = std::fs::read_to_string(b.finish(&evidence).join("bundle.txt")).unwrap();
        assert!(
            index.contains("collection steps that failed (recorded, not raised):\n  nodes/n/x.txt") && index.contains("skipped:\n  nodes/n/y.txt"),
            "{index}"
        );
    }

    #[test]
    fn failures_get_a_bundle_by_default_always_every_trial_never_none() {
        assert!(Collect::Failures.wants(true) && !Collect::Failures.wants(false) && Collect::Always.wants(false) && !Collect::Never.wants(true));
    }
}
