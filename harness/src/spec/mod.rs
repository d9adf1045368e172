//! CNI specification conformance of plugin binaries: each check runs a plugin (or a chain)
//! exactly as a container runtime does, on a node of its own, and judges one rule of SPEC.md.
//!
//! A *subject* is a conflist (or a single plugin's `.conf`) and the directories its plugin
//! binaries are in. Checks that need something the subject does not claim (CHECK before
//! 0.4.0, STATUS and GC before 1.1.0, chaining with one plugin) are not applicable, with the
//! reason. A fault that a plugin really has is reported as a failure with its evidence;
//! the reviewed list of known failures ([`known`]) only decides the exit status.

pub mod known;
pub mod rules;
pub mod sandbox;
pub mod suite;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::cni::runtime::{plugin_config, plugin_type, Attachment, CniRuntime, NetworkConfigList, PluginOutput};
use crate::error::{HarnessError, Result};
use crate::verdict::Verdict;
use rules::{judged, Keyword, Rule};
use sandbox::{Container, Sandbox};

/// The versions of the specification whose results the checks know.
pub const KNOWN_VERSIONS: [&str; 7] = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// Versions before chaining: a conflist of several plugins starts at 0.3.0.
const BEFORE_CHAINING: [&str; 2] = ["0.1.0", "0.2.0"];

/// A plugin or chain under test.
#[derive(Debug, Clone)]
pub struct Subject {
    pub name: String,
    pub source: PathBuf,
    pub list: NetworkConfigList,
    pub plugin_dirs: Vec<PathBuf>,
    /// The specification versions every plugin of the chain claims (its VERSION answer).
    pub claimed: Vec<String>,
    /// The plugins' own version: their package's, or a digest of the binaries.
    pub version: String,
    /// Why the subject cannot run on this machine at all (its kernel lacks a link kind).
    pub cannot_run: Option<String>,
    /// The profile the subject comes from (a certification's), whose node files and logs
    /// each check's node gets as a lab node does ([`crate::cni::runtime::NodeView::install`]).
    pub profile: Option<crate::cni::CniProfile>,
}

impl Subject {
    /// Loads a subject from a `.conflist` or a single plugin's `.conf`; asks its plugins
    /// which versions they support.
    pub fn load(path: &Path, plugin_dirs: Vec<PathBuf>) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| HarnessError::FixtureUnreadable { path: path.to_owned(), source })?;
        let list = match path.extension().and_then(|e| e.to_str()) {
            Some("conf") | Some("json") => {
                let malformed = |detail: String| HarnessError::FixtureMalformed { path: path.to_owned(), detail };
                let value: Value = serde_json::from_str(&text).map_err(|e| malformed(format!("not valid JSON: {e}")))?;
                let mut plugin = value.as_object().cloned().ok_or_else(|| malformed("expected a plugin configuration object".into()))?;
                let field = |plugin: &mut Map<String, Value>, name: &str| plugin.remove(name).and_then(|v| v.as_str().map(str::to_owned));
                let cni_version = field(&mut plugin, "cniVersion").ok_or_else(|| malformed("cniVersion: expected a string such as \"1.0.0\"".into()))?;
                let name = field(&mut plugin, "name").ok_or_else(|| malformed("name: expected the network's name".into()))?;
                NetworkConfigList::parse(&serde_json::json!({ "cniVersion": cni_version, "name": name, "plugins": [plugin] }).to_string(), path)?
            }
            _ => NetworkConfigList::parse(&text, path)?,
        };
        let mut list = list;
        // A vendor's conflist may name per-node values, as on the lab: the check's node.
        crate::cni::runtime::NodePlaceholders {
            node_name: "cni-spec-node".into(),
            node_address: sandbox::UPLINK_ADDRESS.split('/').next().and_then(|a| a.parse().ok()).expect("the uplink address is an address"),
            node_pod_cidr: "10.32.0.0/24".parse().expect("valid"),
            pod_subnet: "10.32.0.0/16".parse().expect("valid"),
        }
        .fill_in(&mut list);
        let runtime = CniRuntime { plugin_dirs: plugin_dirs.clone(), cache_dir: std::env::temp_dir(), node: None, records: Default::default(), budget: None };
        runtime.require_plugins(&list)?;
        let mut claimed: Option<Vec<String>> = None;
        for plugin in list.plugin_types() {
            let (versions, _) = runtime.claimed_versions(plugin, &list.cni_version)?;
            claimed = Some(match claimed {
                None => versions,
                Some(before) => before.into_iter().filter(|v| versions.contains(v)).collect(),
            });
        }
        let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("subject").to_owned();
        let version = plugins_version(&runtime, &list);
        let cannot_run = list.plugin_types().find_map(sandbox::kernel_lacks);
        Ok(Self { name, source: path.to_owned(), list, plugin_dirs, claimed: claimed.unwrap_or_default(), version, cannot_run, profile: None })
    }

    /// The subject's list at another version of the specification.
    pub fn at(&self, version: &str) -> NetworkConfigList {
        NetworkConfigList { cni_version: version.to_owned(), ..self.list.clone() }
    }

    fn claims(&self, version: &str) -> bool {
        self.claimed.iter().any(|v| v == version)
    }

    /// Why the subject's config cannot be judged at its `cniVersion`: its plugins do not
    /// claim that version, and a plugin's answer to such a config is the refusal the
    /// specification asks for ("incompatible CNI versions", code 1), not a fault.
    pub fn config_version_unclaimed(&self) -> Option<String> {
        (!self.claims(&self.list.cni_version)).then(|| {
            format!(
                "the plugins do not claim the config's cniVersion {} (they claim {})",
                self.list.cni_version,
                if self.claimed.is_empty() { "none".to_owned() } else { self.claimed.join(", ") }
            )
        })
    }
}

/// The checks that still judge a subject whose plugins do not claim its config's version:
/// they ask VERSION, or ADD at the versions the plugins do claim.
pub const JUDGED_AT_ANY_CONFIG_VERSION: [&str; 2] = ["version_answers_its_supported_versions", "every_claimed_version_adds"];

/// The Debian package that ships the binaries, with its version (Debian unstable's as
/// `cargo xtask deps` unpacked it, or the installed one); or a digest of them.
fn plugins_version(runtime: &CniRuntime, list: &NetworkConfigList) -> String {
    let paths: Vec<PathBuf> = list.plugin_types().filter_map(|p| runtime.plugin_path(p).ok()).collect();
    if let Ok(unstable) = crate::provider::host::unstable_plugins() {
        if paths.first().is_some_and(|p| p.starts_with(&unstable.dir)) {
            return format!("{} {} (Debian unstable)", crate::provider::host::REFERENCE_PLUGINS_PACKAGE, unstable.version);
        }
    }
    let package = paths.first().and_then(|p| crate::provider::host::debian_package_of(p));
    if let Some((package, version)) = package.and_then(|package| crate::provider::host::debian_package_version(&package).map(|version| (package, version))) {
        return format!("{package} {version}");
    }
    let digests = paths
        .iter()
        .filter_map(|p| crate::provider::lab::shell::run("sha256sum", &[&p.display().to_string()], None).ok())
        .map(|l| l.chars().take(12).collect::<String>())
        .collect::<Vec<_>>();
    format!("unpackaged sha256 {}", digests.join("+"))
}

/// What a check decides: a verdict, or that the rule does not apply to the subject.
#[derive(Debug)]
// One per check, returned and matched at once, never kept in a collection: boxing the
// verdict would cost every check's code a `Box` for nothing.
#[allow(clippy::large_enum_variant)]
pub enum Judgement {
    Verdict(Verdict),
    NotApplicable(String),
    /// The check's precondition failed (ADD failed, so DEL was never asked), or it could
    /// not judge every item it meant to: no verdict, with the reason.
    NotJudged(String),
}

/// One check: the rule it judges and how.
#[derive(Clone, Copy)]
pub struct Check {
    pub rule: Rule,
    pub body: fn(&mut SpecContext<'_>) -> Result<Judgement>,
}

/// A subject on a node of its own, for one check.
pub struct SpecContext<'a> {
    pub subject: &'a Subject,
    /// The rule the running check judges.
    pub rule: Rule,
    pub sandbox: Sandbox,
}

/// One plugin's run within a chain.
#[derive(Debug, Clone)]
pub struct Step {
    pub plugin: String,
    pub output: PluginOutput,
}

impl Step {
    /// Why its `command` failed, in the plugin's words, for a problem's evidence.
    fn failure(&self, command: &str) -> String {
        self.output.failure(command)
    }
}

impl SpecContext<'_> {
    fn verdict(&self, problems: Vec<String>, seen: impl Into<String>) -> Result<Judgement> {
        Ok(Judgement::Verdict(judged(&self.rule, &format!("{} ({})", self.subject.name, self.subject.version), problems, seen.into())))
    }

    /// The verdict of a check over `meant` items, `unjudged` of which it could not judge:
    /// see [`rules::over_items`].
    fn verdict_over(&self, meant: usize, unjudged: &[String], problems: Vec<String>, seen: impl Into<String>) -> Result<Judgement> {
        match rules::over_items(meant, unjudged, problems) {
            Ok(problems) => self.verdict(problems, seen),
            Err(why) => Ok(Judgement::NotJudged(why)),
        }
    }

    /// Runs `command` over the chain as a runtime does: ADD in order with each result as
    /// the next one's `prevResult`; CHECK and DEL with `previous` (the ADD result), DEL in
    /// reverse and on through failures. Stops an ADD or CHECK at the first failing plugin.
    fn chain(&self, command: &str, list: &NetworkConfigList, attachment: &Attachment, previous: Option<&Value>) -> Result<Vec<Step>> {
        let mut steps = Vec::new();
        let mut carried = previous.cloned();
        let plugins: Vec<&Map<String, Value>> = match command {
            "DEL" => list.plugins.iter().rev().collect(),
            _ => list.plugins.iter().collect(),
        };
        for plugin in plugins {
            let config = plugin_config(list, plugin, attachment, carried.as_ref());
            let output = self.sandbox.runtime.exec(command, plugin_type(plugin), config.to_string().as_bytes(), &attachment.environment(command))?;
            let failed = !output.success;
            if command == "ADD" && !failed {
                carried = serde_json::from_str(&output.stdout).ok();
            }
            steps.push(Step { plugin: plugin_type(plugin).to_owned(), output });
            if failed && command != "DEL" {
                break;
            }
        }
        Ok(steps)
    }

    /// ADD over the chain; the final result, or the failing plugin's output as a problem.
    fn add(&self, list: &NetworkConfigList, container: &Container) -> Result<std::result::Result<Value, String>> {
        let steps = self.chain("ADD", list, &self.sandbox.attachment(container), None)?;
        let last = steps.last().expect("a chain has plugins");
        if !last.output.success {
            return Ok(Err(format!("ADD by {} failed: {}", last.plugin, last.failure("ADD"))));
        }
        Ok(serde_json::from_str(&last.output.stdout).map_err(|e| format!("ADD by {} printed no JSON result ({e}): {:?}", last.plugin, last.output.stdout)))
    }

    /// ADD as the precondition of a check about what follows it (CHECK, DEL): the result,
    /// or why the check is not judged, naming what never ran.
    fn add_before(&self, container: &Container, never_asked: &str) -> Result<std::result::Result<Value, Judgement>> {
        Ok(self.add(&self.subject.list, container)?.map_err(|problem| Judgement::NotJudged(format!("{problem}, so {never_asked} never ran"))))
    }

    /// DEL of an attachment a check made and judged no further, as a runtime follows every
    /// ADD with DEL: a plugin's reservations and records are not left behind. What that DEL
    /// does is for the DEL checks to judge.
    fn clean_up(&self, container: &Container, result: Option<&Value>) -> Result<()> {
        self.del(&self.subject.list, container, result).map(drop)
    }

    /// DEL over the chain; the failures, one line per failing plugin.
    fn del(&self, list: &NetworkConfigList, container: &Container, previous: Option<&Value>) -> Result<Vec<String>> {
        let steps = self.chain("DEL", list, &self.sandbox.attachment(container), previous)?;
        Ok(steps.iter().filter(|s| !s.output.success).map(|s| format!("DEL by {} failed: {}", s.plugin, s.failure("DEL"))).collect())
    }

    /// An attachment added and deleted, so that what a plugin keeps for every attachment
    /// (a bridge, its chains, the IPAM's bookkeeping) exists before the node is measured.
    fn warm_up(&self) -> Result<std::result::Result<(), String>> {
        let list = &self.subject.list;
        let container = self.sandbox.container()?;
        let result = match self.add(list, &container)? {
            Ok(result) => result,
            Err(problem) => return Ok(Err(problem)),
        };
        let problems = self.del(list, &container, Some(&result))?;
        self.sandbox.remove_container(&container)?;
        Ok(if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) })
    }
}

macro_rules! rule {
    ($keyword:ident, $name:literal, $section:literal, $sentence:literal) => {
        Rule { name: $name, sentence: $sentence, section: $section, keyword: Keyword::$keyword }
    };
}

/// Every check, in the order the specification states the rules, each with the keyword
/// of the sentence it enforces (SPEC.md uses RFC 2119's words, lower case included): only
/// a MUST not met is a violation; a SHOULD not met deviates from a recommendation.
pub fn checks() -> Vec<Check> {
    vec![
        Check { rule: rule!(Must, "version_answers_its_supported_versions", "section 2, VERSION", "VERSION prints the versions the plugin supports, as JSON, whatever version the config names (the operation's defined output; section 2: a plugin must exit 0 on success)."), body: version_answers },
        Check { rule: rule!(Must, "every_claimed_version_adds", "section 2, ADD; section 5, ADD success", "At every version the plugins claim (a chain from 0.3.0, when chaining began), ADD returns a result valid for that version: plugins must output the result of the config's cniVersion."), body: every_claimed_version },
        Check { rule: rule!(Must, "add_result_is_valid_for_its_version", "section 5, ADD success", "ADD returns a result of the config's version: named interfaces, addresses in CIDR notation that refer to interfaces of the result, routes, DNS; sandbox must be given for interfaces in the container."), body: add_result_is_valid },
        Check { rule: rule!(Must, "add_reports_what_is_really_there", "section 5, ADD success (interfaces, ips)", "The interfaces and addresses ADD reports are in the container (and host interfaces on the node): the result is the record of what the attachment made."), body: add_reports_what_is_there },
        Check { rule: rule!(Should, "check_passes_after_add", "section 2, CHECK", "CHECK with the ADD result as prevResult succeeds right after ADD (CHECK should fail only when the container's networking is not as expected)."), body: check_passes_after_add },
        Check { rule: rule!(Should, "check_fails_when_the_container_changed", "section 2, CHECK", "After the container's address is removed behind the plugin's back, CHECK fails with an error (the plugin should return an error if a resource listed in prevResult is missing)."), body: check_fails_when_changed },
        Check { rule: rule!(Should, "check_fails_when_a_chained_plugin_s_own_state_is_gone", "section 2, CHECK", "After ADD, the iptables chains a chained plugin made on the node for this container alone (portmap's DNAT chain for its port mappings) are removed behind its back; CHECK then fails with an error from that plugin (CHECK should fail when the networking the plugin set up is not as expected, not only when the container lost its address)."), body: check_fails_when_own_state_gone },
        Check { rule: rule!(Should, "del_removes_what_add_created", "section 2, DEL", "DEL removes what ADD created (a plugin should delete the interface or undo the modifications of its ADD): the node's links, addresses, routes, rules, iptables and nftables rules, IPAM files and BPF pins are as before ADD, and the container's interface is gone."), body: del_removes_what_add_created },
        Check { rule: rule!(Should, "the_last_del_leaves_the_node_as_before_the_first_add", "section 2, DEL", "After the only attachment's DEL the node's datapath is as before its ADD, node-wide state made once included (links such as a bridge, addresses, routes, rules, iptables and nftables rules, qdiscs and filters on the node's links, BPF pins): a plugin should undo the modifications of its ADD. IPAM bookkeeping files are judged per attachment, by del_removes_what_add_created."), body: last_del_leaves_the_node_as_before },
        Check { rule: rule!(Should, "del_after_a_failed_add_succeeds_and_frees", "section 2, DEL; section 3, lifecycle", "An ADD that fails (the container already holds an eth0) is followed by DEL, as a runtime follows every ADD (ADD is always eventually followed by a corresponding DEL); that DEL, given no prevResult, succeeds and leaves the node as before the ADD (plugins should generally complete a DEL without error even if some resources are missing)."), body: del_after_a_failed_add },
        Check { rule: rule!(Should, "del_twice_succeeds", "section 2, DEL", "A second DEL of the same attachment succeeds (plugins should generally complete a DEL without error even if some resources are missing)."), body: del_twice_succeeds },
        Check { rule: rule!(Should, "del_without_add_succeeds", "section 2, DEL", "DEL of an attachment that was never added succeeds (plugins should generally complete a DEL without error even if some resources are missing)."), body: del_without_add_succeeds },
        Check { rule: rule!(Should, "del_after_the_netns_is_gone_succeeds_and_frees", "section 2, DEL", "DEL after the container's network namespace is gone succeeds and still frees what ADD allocated on the node (an IPAM plugin should release its allocation even if the namespace no longer exists)."), body: del_after_netns_gone },
        Check { rule: rule!(Must, "errors_exit_non_zero", "section 2, Errors", "Every plugin of the chain given a malformed config, no CNI_NETNS, an unknown cniVersion or a config without its name exits non-zero (a plugin must exit non-zero on failure)."), body: errors_exit_non_zero },
        Check { rule: rule!(Should, "errors_are_the_specification_s_json", "section 2, Errors; section 6, error codes", "Every plugin of the chain fails those four with the JSON error structure on stdout and its well-known code: 6, 4, 1, and 7 or a plugin code (a plugin should output an error result structure)."), body: errors_are_json },
        Check { rule: rule!(Should, "chained_plugins_pass_on_the_previous_result", "section 3, chaining (prevResult)", "Every plugin after the first gets its predecessor's result as prevResult and returns a result that keeps its interfaces and addresses (plugins should echo prevResult unless they mean to change it)."), body: chain_passes_on },
        Check { rule: rule!(Should, "concurrent_adds_get_distinct_addresses", "section 3, lifecycle (parallel operations); section 4, IPAM", "Eight ADDs at once (the runtime may run operations for different containers in parallel) all succeed with distinct addresses, and their DELs leave the node as it was."), body: concurrent_adds },
        Check { rule: rule!(Must, "status_answers_when_ready_of_1_1_0", "section 2, STATUS (1.1.0)", "A plugin claiming 1.1.0 exits 0 on STATUS when it is ready to service ADD (a plugin must exit with a zero return code if it is ready)."), body: status_answers },
        Check { rule: rule!(Should, "gc_frees_stale_attachments_of_1_1_0", "section 2, GC (1.1.0)", "GC, sent as libcni sends it (both cni.dev/valid-attachments and cni.dev/attachments, empty), frees what ADD allocated for an attachment that is gone and succeeds (a plugin should remove as many stale resources as possible)."), body: gc_frees_stale_attachments },
        Check { rule: rule!(Must, "gc_is_passed_to_delegated_plugins_of_1_1_0", "section 2, GC (1.1.0)", "A plugin with a delegated IPAM plugin calls GC on it (plugins must forward GC calls to the delegated plugins they are configured to use)."), body: gc_reaches_delegates },
    ]
}

fn version_answers(cx: &mut SpecContext<'_>) -> Result<Judgement> {
    let mut problems = Vec::new();
    let mut seen = Vec::new();
    for plugin in cx.subject.list.plugin_types() {
        for asked in [cx.subject.list.cni_version.as_str(), "99.0.0"] {
            let output =
                cx.sandbox.runtime.exec("VERSION", plugin, format!(r#"{{"cniVersion":"{asked}"}}"#).as_bytes(), &[("CNI_COMMAND", "VERSION".into())])?;
            let answer: Option<Value> = serde_json::from_str(&output.stdout).ok();
            let versions =
                answer.as_ref().and_then(|a| a.get("supportedVersions")).and_then(Value::as_array).filter(|v| !v.is_empty() && v.iter().all(Value::is_string));
            // A config version the plugin does not list is the subject's matter (then its other
            // checks are not applicable), not a fault of the plugin's VERSION answer.
            match (output.success, versions, answer.as_ref().and_then(|a| a.get("cniVersion")).and_then(Value::as_str)) {
                (true, Some(versions), Some(_)) => seen.push(format!("{plugin}: {}", versions.len())),
                _ => problems.push(format!(
                    "{plugin} (config version {asked}): no versions answer: {} {:?} {:?}",
                    output.status,
                    output.stdout.trim(),
                    output.stderr.trim()
                )),
            }
        }
    }
    cx.verdict(problems, format!("versions answered ({})", seen.join(", ")))
}

fn every_claimed_version(cx: &mut SpecContext<'_>) -> Result<Judgement> {
    let chained = cx.subject.list.plugins.len() > 1;
    let versions: Vec<&str> = KNOWN_VERSIONS.iter().copied().filter(|v| cx.subject.claims(v) && !(chained && BEFORE_CHAINING.contains(v))).collect();
    if versions.is_empty() {
        return Ok(Judgement::NotApplicable(format!("the plugins claim none of {KNOWN_VERSIONS:?}: {:?}", cx.subject.claimed)));
    }
    let mut problems = Vec::new();
    for version in &versions {
        let list = cx.subject.at(version);
        let container = cx.sandbox.container()?;
        match cx.add(&list, &container)? {
            Ok(result) => {
                problems.extend(rules::result_problems(&result, version).into_iter().map(|p| format!("at {version}: {p}")));
                // DEL only cleans up: whether it succeeds and frees is for the DEL checks.
                let _ = cx.del(&list, &container, Some(&result))?;
            }
            Err(problem) => problems.push(format!("at {version}: {problem}")),
        }
    }
    let unchained = if chained { "; 0.1.0 and 0.2.0 not for a chain, which needs 0.3.0" } else { "" };
    cx.verdict(problems, format!("a valid result at {}{unchained}", versions.join(", ")))
}

fn add_result_is_valid(cx: &mut SpecContext<'_>) -> Result<Judgement> {
    let container = cx.sandbox.container()?;
    let problems = match cx.add(&cx.subject.list, &container)? {
        Ok(result) => {
            let problems = rules::result_problems(&result, &cx.subject.list.cni_version);
            cx.clean_up(&container, Some(&result))?;
            problems
        }
        Err(problem) => vec![problem],
    };
    cx.verdict(problems, format!("a valid {} result", cx.subject.list.cni_version))
}

fn add_reports_what_is_there(cx: &mut SpecContext<'_>) -> Result<Judgement> {
    let container = cx.sandbox.container()?;
    let problems = match cx.add(&cx.subject.list, &container)? {
        Ok(result) => {
            let problems =
                rules::not_really_there(&result, &container.path.display().to_string(), &cx.sandbox.container_state(&container)?, &cx.sandbox.node_state()?);
            cx.clean_up(&container, Some(&result))?;
            problems
        }
        Err(problem) => vec![problem],
    };
    cx.verdict(problems, "every reported interface and address found")
}

/// CHECK exists from 0.4.0 on.
fn check_not_applicable(subject: &Subject) -> Option<String> {
    matches!(subject.list.cni_version.as_str(), "0.1.0" | "0.2.0" | "0.3.0" | "0.3.1")
        .then(|| format!("CHECK exists from 0.4.0; the config is {}", subject.list.cni_version))
}

fn check_passes_after_add(cx: &mut SpecContext<'_>) -> Result<Judgement> {
    if let Some(reason) = check_not_applicable(cx.subject) {
        return Ok(Judgement::NotApplicable(reason));
    }
    let container = cx.sandbox.container()?;
    let result = match cx.add_before(&container, "CHECK")? {
        Ok(result) => result,
        Err(not_judged) => return Ok(not_judged),
    };
    let problems = cx
        .chain("CHECK", &cx.subject.list, &cx.sandbox.attachment(&container), Some(&result))?
        .iter()
        .filter(|s| !s.output.success)
        .map(|s| format!("CHECK by {} failed right after ADD: {}", s.plugin, s.failure("CHECK")))
        .collect();
    cx.clean_up(&container, Some(&result))?;
    cx.verdict(problems, "CHECK succeeded")
}

fn check_fails_when_changed(cx: &mut SpecContext<'_>) -> Result<Judgement> {
    if let Some(reason) = check_not_applicable(cx.subject) {
        return Ok(Judgement::NotApplicable(reason));
    }
    let container = cx.sandbox.container()?;
    let result = match cx.add_before(&container, "CHECK")? {
        Ok(result) => result,
        Err(not_judged) => return Ok(not_judged),
    };
    let state = cx.sandbox.container_state(&container)?;
    let Some(interface) = state.iter().find(|l| l.starts_with("address ")).and_then(|l| l.rsplit(" on ").next()).map(str::to_owned) else {
        cx.clean_up(&container, Some(&result))?;
        return Ok(Judgement::NotApplicable("ADD put no address in the container to change".into()));
    };
    cx.sandbox.in_container(&container, &["addr", "flush", "dev", &interface])?;
    let steps = cx.chain("CHECK", &cx.subject.list, &cx.sandbox.attachment(&container), Some(&result))?;
    let problems = match steps.iter().find(|s| !s.output.success) {
        Some(failed) => {
            rules::error_problems(&failed.output, &(1..100).collect::<Vec<_>>(), true).into_iter().map(|p| format!("CHECK by {}: {p}", failed.plugin)).collect()
        }
        None => vec![format!(
            "CHECK succeeded although {interface} lost its addresses (checked by {})",
            steps.iter().map(|s| s.plugin.as_str()).collect::<Vec<_>>().join(", ")
        )],
    };
    cx.clean_up(&container, Some(&result))?;
    cx.verdict(problems, format!("CHECK failed once {interface} lost its addresses"))
}

/// ADD over the chain one plugin at a time (each given its predecessor's result, as in a
/// chain), the node read after each: the final result, and per plugin the iptables chains
/// it made; or why ADD failed.
fn add_plugin_by_plugin(cx: &SpecContext<'_>, container: &Container) -> Result<std::result::Result<(Value, Vec<(String, BTreeSet<String>)>), String>> {
    let attachment = cx.sandbox.attachment(container);
    let mut before = cx.sandbox.node_state()?;
    let mut previous: Option<Value> = None;
    let mut made = Vec::new();
    for plugin in &cx.subject.list.plugins {
        let alone = NetworkConfigList { plugins: vec![plugin.clone()], ..cx.subject.list.clone() };
        let step = cx.chain("ADD", &alone, &attachment, previous.as_ref())?.pop().expect("one plugin, one step");
        if !step.output.success {
            return Ok(Err(format!("ADD by {} failed: {}", step.plugin, step.failure("ADD"))));
        }
        previous = Some(
            serde_json::from_str(&step.output.stdout)
                .map_err(|e| crate::error::HarnessError::CniResult { plugin: step.plugin.clone(), detail: format!("ADD printed no JSON result: {e}") })?,
        );
        let after = cx.sandbox.node_state()?;
        made.push((step.plugin, sandbox::own_chains(after.difference(&before))));
        before = after;
    }
    Ok(Ok((previous.expect("a chain has plugins"), made)))
}

/// For each chained plugin (after the first) that made iptables chains of its own for the
/// container, on an attachment of its own: CHECK passes untouched, then its chains are
/// removed and CHECK must fail, by that plugin, with the error structure. A node-wide chain
/// made once (a warm-up makes it first) is no attachment's and is not removed.
fn check_fails_when_own_state_gone(cx: &mut SpecContext<'_>) -> Result<Judgement> {
    if let Some(reason) = check_not_applicable(cx.subject) {
        return Ok(Judgement::NotApplicable(reason));
    }
    if cx.subject.list.plugins.len() < 2 {
        return Ok(Judgement::NotApplicable("a single plugin: no chained plugin".into()));
    }
    if let Err(problem) = cx.warm_up()? {
        return Ok(warm_up_failed(&problem, "CHECK"));
    }
    let (mut problems, mut judged, mut unjudged) = (Vec::new(), Vec::new(), Vec::new());
    let mut plugin_index = 1;
    while plugin_index < cx.subject.list.plugins.len() {
        let container = cx.sandbox.container()?;
        let (result, made) = match add_plugin_by_plugin(cx, &container)? {
            Ok(added) => added,
            Err(problem) => return Ok(Judgement::NotJudged(format!("{problem}, so CHECK never ran"))),
        };
        let Some((index, (plugin, chains))) = made.iter().enumerate().skip(plugin_index).find(|(_, (_, chains))| !chains.is_empty()) else {
            cx.clean_up(&container, Some(&result))?;
            break;
        };
        plugin_index = index + 1;
        let attachment = cx.sandbox.attachment(&container);
        let untouched = cx.chain("CHECK", &cx.subject.list, &attachment, Some(&result))?;
        if let Some(failed) = untouched.iter().find(|s| !s.output.success) {
            unjudged.push(format!(
                "{plugin}: CHECK fails even on the untouched attachment ({}: {}; check_passes_after_add judges that)",
                failed.plugin,
                failed.failure("CHECK")
            ));
            cx.clean_up(&container, Some(&result))?;
            continue;
        }
        let chains: Vec<String> = chains.iter().cloned().collect();
        cx.sandbox.remove_iptables_chains(&chains)?;
        let steps = cx.chain("CHECK", &cx.subject.list, &attachment, Some(&result))?;
        match steps.iter().find(|s| !s.output.success) {
            Some(failed) if failed.plugin == *plugin => problems
                .extend(rules::error_problems(&failed.output, &(1..100).collect::<Vec<_>>(), true).into_iter().map(|p| format!("CHECK by {plugin}: {p}"))),
            Some(failed) => problems.push(format!(
                "CHECK by {plugin} succeeded although its chains {} were removed ({} failed instead: {})",
                chains.join(", "),
                failed.plugin,
                failed.failure("CHECK")
            )),
            None => problems.push(format!("CHECK succeeded although {plugin}'s own chains {} were removed", chains.join(", "))),
        }
        judged.push(format!("{plugin} ({})", chains.join(", ")));
        cx.clean_up(&container, Some(&result))?;
    }
    if judged.is_empty() && unjudged.is_empty() {
        return Ok(Judgement::NotApplicable("no chained plugin made an iptables chain of its own for the container".into()));
    }
    cx.verdict_over(judged.len() + unjudged.len(), &unjudged, problems, format!("CHECK failed once the chains of {} were removed", judged.join(", ")))
}

/// ADDs and DELs with `between` run between them (`asked`: what `between` asks, named
/// when it never ran); what the node and container gained or lost, or why nothing was
/// judged (the warm-up's or the ADD's failure).
fn node_changes(
    cx: &SpecContext<'_>,
    asked: &str,
    between: impl FnOnce(&SpecContext<'_>, &Container, &Value) -> Result<Vec<String>>,
) -> Result<std::result::Result<Vec<String>, Judgement>> {
    if let Err(problem) = cx.warm_up()? {
        return Ok(Err(warm_up_failed(&problem, asked)));
    }
    let before = cx.sandbox.node_state()?;
    let container = cx.sandbox.container()?;
    let container_before = cx.sandbox.container_state(&container)?;
    let result = match cx.add_before(&container, asked)? {
        Ok(result) => result,
        Err(not_judged) => return Ok(Err(not_judged)),
    };
    let mut problems = between(cx, &container, &result)?;
    problems.extend(settled_changes(cx, &before)?);
    if cx.sandbox.exists(&container) {
        problems.extend(rules::changes(&container_before, &cx.sandbox.container_state(&container)?).into_iter().map(|p| format!("container {p}")));
    }
    Ok(Ok(problems))
}

/// The warm-up's ADD or DEL failed: what the check asks never ran.
fn warm_up_failed(problem: &str, asked: &str) -> Judgement {
    Judgement::NotJudged(format!("warming up (an attachment added and deleted first): {problem}, so {asked} never ran"))
}

/// How long the kernel may take to destroy a deleted namespace's links, and to detach a tcx
/// program whose last reference (its link's pin) went (both in the background, later on a
/// loaded machine): the node is compared with `before` until it matches or this ran out.
const NAMESPACE_CLEANUP: std::time::Duration = std::time::Duration::from_secs(5);

/// What the node gained or lost since `before`, once it matches or [`NAMESPACE_CLEANUP`]
/// ran out (then said in the last problem).
fn settled_changes(cx: &SpecContext<'_>, before: &BTreeSet<String>) -> Result<Vec<String>> {
    settled_changes_except(cx, before, |_| false)
}

/// [`settled_changes`] of what `unjudged` does not pick out, looking again with a
/// [`Backoff`](crate::deadline::Backoff) until [`NAMESPACE_CLEANUP`] runs out.
fn settled_changes_except(cx: &SpecContext<'_>, before: &BTreeSet<String>, unjudged: impl Fn(&str) -> bool) -> Result<Vec<String>> {
    let mut backoff = crate::deadline::Backoff::within(NAMESPACE_CLEANUP);
    loop {
        let mut changes = rules::changes(before, &cx.sandbox.node_state()?);
        changes.retain(|change| !unjudged(change));
        if changes.is_empty() {
            return Ok(changes);
        }
        if !backoff.pause() {
            changes.push(format!("still so after waiting {} s for the kernel's clean-up of namespaces and links", NAMESPACE_CLEANUP.as_secs()));
            return Ok(changes);
        }
    }
}

fn del_removes_what_add_created(cx: &mut SpecContext<'_>) -> Result<Judgement> {
    let problems = match node_changes(cx, "DEL", |cx, container, result| cx.del(&cx.subject.list, container, Some(result)))? {
        Ok(problems) => problems,
        Err(not_judged) => return Ok(not_judged),
    };
    cx.verdict(problems, "the node and container as before ADD")
}

/// The first ADD on a pristine node (no warm-up) and its DEL: what node-wide state made
/// once (a bridge, a program on the node's NIC, a pin) is still there. Files under
/// `/var/lib/cni` are left to [`del_removes_what_add_created`]: an IPAM plugin's
/// bookkeeping (a lock, the last address handed out) outlives its attachments by design; so
/// do the empty tables and built-in chains any iptables call makes on first use.
fn last_del_leaves_the_node_as_before(cx: &mut SpecContext<'_>) -> Result<Judgement> {
    let before = cx.sandbox.node_state()?;
    let container = cx.sandbox.container()?;
    let mut problems = match cx.add_before(&container, "DEL")? {
        Ok(result) => cx.del(&cx.subject.list, &container, Some(&result))?,
        Err(not_judged) => return Ok(not_judged),
    };
    cx.sandbox.remove_container(&container)?;
    let unjudged = |change: &str| change.contains(sandbox::IPAM_FILES) || rules::is_an_empty_table_s_skeleton(change);
    problems.extend(settled_changes_except(cx, &before, unjudged)?.into_iter().map(|p| format!("after the last DEL {p}")));
    cx.verdict(problems, "the node's datapath as before the first ADD")
}

/// ADD into a container that already holds the interface (so ADD fails, as it does when a
/// runtime retries a half-made sandbox), then DEL without prevResult, as libcni sends it
/// when it cached no result.
fn del_after_a_failed_add(cx: &mut SpecContext<'_>) -> Result<Judgement> {
    if let Err(problem) = cx.warm_up()? {
        return Ok(warm_up_failed(&problem, "the DEL after a failed ADD"));
    }
    let before = cx.sandbox.node_state()?;
    let container = cx.sandbox.container()?;
    let attachment = cx.sandbox.attachment(&container);
    cx.sandbox.in_container(&container, &["link", "add", &attachment.ifname, "type", "veth", "peer", "name", "in-the-way"])?;
    let mut problems = Vec::new();
    if let Ok(result) = cx.add(&cx.subject.list, &container)? {
        // Not this check's premise: the plugin took over the interface. Its DEL is judged
        // by the other DEL checks.
        cx.del(&cx.subject.list, &container, Some(&result))?;
        cx.sandbox.remove_container(&container)?;
        return Ok(Judgement::NotApplicable(format!("ADD succeeded although the container already held {}", attachment.ifname)));
    }
    problems.extend(cx.del(&cx.subject.list, &container, None)?.into_iter().map(|p| format!("after the failed ADD, {p}")));
    cx.sandbox.remove_container(&container)?;
    problems.extend(settled_changes(cx, &before)?.into_iter().map(|p| format!("after the failed ADD and its DEL {p}")));
    cx.verdict(problems, "ADD failed, its DEL succeeded and the node is as before the ADD")
}

fn del_twice_succeeds(cx: &mut SpecContext<'_>) -> Result<Judgement> {
    let container = cx.sandbox.container()?;
    let result = match cx.add_before(&container, "DEL")? {
        Ok(result) => result,
        Err(not_judged) => return Ok(not_judged),
    };
    let mut problems = cx.del(&cx.subject.list, &container, Some(&result))?;
    // A runtime that lost track passes no prevResult the second time.
    problems.extend(cx.del(&cx.subject.list, &container, None)?.into_iter().map(|p| format!("second {p}")));
    cx.verdict(problems, "both DELs succeeded")
}

fn del_without_add_succeeds(cx: &mut SpecContext<'_>) -> Result<Judgement> {
    let container = cx.sandbox.container()?;
    let problems = cx.del(&cx.subject.list, &container, None)?;
    cx.verdict(problems, "DEL succeeded")
}

fn del_after_netns_gone(cx: &mut SpecContext<'_>) -> Result<Judgement> {
    let problems = match node_changes(cx, "DEL", |cx, container, result| {
        cx.sandbox.remove_container(container)?;
        cx.del(&cx.subject.list, container, Some(result))
    })? {
        Ok(problems) => problems,
        Err(not_judged) => return Ok(not_judged),
    };
    cx.verdict(problems, "DEL succeeded and the node is as before ADD")
}

/// One error case run on one plugin of the chain: what it printed, and the codes it may use.
struct ErrorCase {
    plugin: String,
    case: &'static str,
    output: PluginOutput,
    codes: &'static [u64],
    plugin_codes: bool,
}

/// Every plugin of the chain (not only the first) given each of four wrong inputs.
fn error_cases(cx: &SpecContext<'_>) -> Result<Vec<ErrorCase>> {
    let container = cx.sandbox.container()?;
    let attachment = cx.sandbox.attachment(&container);
    let environment = attachment.environment("ADD");
    let without_netns: Vec<(&str, String)> = environment.iter().filter(|(k, _)| *k != "CNI_NETNS").cloned().collect();
    let mut cases = Vec::new();
    for plugin in &cx.subject.list.plugins {
        let config = plugin_config(&cx.subject.list, plugin, &attachment, None);
        let with = |change: &dyn Fn(&mut Map<String, Value>)| {
            let mut config = config.as_object().cloned().expect("a config is an object");
            change(&mut config);
            Value::Object(config).to_string()
        };
        let inputs: [(&'static str, String, &[(&str, String)], &'static [u64], bool); 4] = [
            ("a malformed config", "{ not json".to_owned(), &environment, &[6], false),
            ("no CNI_NETNS", config.to_string(), &without_netns, &[4], false),
            ("cniVersion 99.0.0", with(&|c| drop(c.insert("cniVersion".into(), "99.0.0".into()))), &environment, &[1], false),
            ("a config without its name", with(&|c| drop(c.remove("name"))), &environment, &[7], true),
        ];
        for (case, stdin, environment, codes, plugin_codes) in inputs {
            let output = cx.sandbox.runtime.exec("ADD", plugin_type(plugin), stdin.as_bytes(), environment)?;
            if output.success {
                // It added something after all: take it away again.
                let _ = cx.del(&cx.subject.list, &container, serde_json::from_str::<Value>(&output.stdout).ok().as_ref());
            }
            cases.push(ErrorCase { plugin: plugin_type(plugin).to_owned(), case, output, codes, plugin_codes });
        }
    }
    Ok(cases)
}

fn errors_exit_non_zero(cx: &mut SpecContext<'_>) -> Result<Judgement> {
    let cases = error_cases(cx)?;
    let problems = cases
        .iter()
        .filter(|c| c.output.success)
        .map(|c| format!("{} given {}: exited with status 0, printing {:?}", c.plugin, c.case, c.output.stdout.trim()))
        .collect();
    cx.verdict(problems, format!("{} wrong inputs to {} plugins, each a non-zero exit", cases.len(), cx.subject.list.plugins.len()))
}

fn errors_are_json(cx: &mut SpecContext<'_>) -> Result<Judgement> {
    let cases = error_cases(cx)?;
    // A case is an error to judge when the plugin failed or printed an error structure
    // (with whatever exit status: that is errors_exit_non_zero's MUST). One that exited 0
    // printing no error produced nothing this check can judge, and is never a pass.
    let printed_an_error = |c: &ErrorCase| serde_json::from_str::<Value>(&c.output.stdout).ok().is_some_and(|v| v.get("code").is_some());
    let (judged, unjudged): (Vec<&ErrorCase>, Vec<&ErrorCase>) = cases.iter().partition(|c| !c.output.success || printed_an_error(c));
    let problems = judged
        .iter()
        .flat_map(|c| {
            rules::error_problems(&c.output, c.codes, c.plugin_codes)
                .into_iter()
                .filter(|p| p != rules::EXITED_ZERO)
                .map(move |p| format!("{} given {}: {p}", c.plugin, c.case))
        })
        .collect();
    let unjudged: Vec<String> =
        unjudged.iter().map(|c| format!("{} given {}: exited 0 printing no error ({:?})", c.plugin, c.case, c.output.stdout.trim())).collect();
    cx.verdict_over(cases.len(), &unjudged, problems, format!("{} errors, each the JSON structure with its code", judged.len()))
}

fn chain_passes_on(cx: &mut SpecContext<'_>) -> Result<Judgement> {
    if cx.subject.list.plugins.len() < 2 {
        return Ok(Judgement::NotApplicable("a single plugin: no chain".into()));
    }
    let container = cx.sandbox.container()?;
    let steps = cx.chain("ADD", &cx.subject.list, &cx.sandbox.attachment(&container), None)?;
    let last_result = steps.last().filter(|s| s.output.success).and_then(|s| serde_json::from_str::<Value>(&s.output.stdout).ok());
    cx.clean_up(&container, last_result.as_ref())?;
    if let Some(first) = steps.first().filter(|s| !s.output.success) {
        return Ok(Judgement::NotJudged(format!("ADD by {} failed: {}, so no plugin was given a prevResult", first.plugin, first.failure("ADD"))));
    }
    let (mut problems, mut unjudged) = (Vec::new(), Vec::new());
    let followers: Vec<&str> = cx.subject.list.plugin_types().skip(1).collect();
    for (i, next_plugin) in followers.iter().enumerate() {
        let (Some(previous), Some(next)) = (steps.get(i), steps.get(i + 1)) else {
            unjudged.push(format!("{next_plugin} never ran: the chain stopped before it"));
            continue;
        };
        let Ok(previous_result) = serde_json::from_str::<Value>(&previous.output.stdout) else {
            unjudged.push(format!("{next_plugin}: {} printed no JSON result to pass on", previous.plugin));
            continue;
        };
        match serde_json::from_str::<Value>(&next.output.stdout) {
            Ok(result) if next.output.success => {
                problems.extend(rules::dropped_from_previous(&previous_result, &result).into_iter().map(|p| format!("{}: {p}", next.plugin)))
            }
            _ => problems.push(format!("{} failed given {}'s result: {}", next.plugin, previous.plugin, next.failure("ADD"))),
        }
    }
    cx.verdict_over(followers.len(), &unjudged, problems, format!("{} kept what it was given", followers.join(", ")))
}

fn concurrent_adds(cx: &mut SpecContext<'_>) -> Result<Judgement> {
    let ipam_types = cx.subject.list.plugins.iter().filter_map(|p| p.get("ipam").and_then(|i| i.get("type")).and_then(Value::as_str));
    if ipam_types.chain(cx.subject.list.plugin_types()).any(|t| t == "static") {
        return Ok(Judgement::NotApplicable("static IPAM gives every container the configured addresses".into()));
    }
    if let Err(problem) = cx.warm_up()? {
        return Ok(warm_up_failed(&problem, "the concurrent ADDs"));
    }
    let before = cx.sandbox.node_state()?;
    let containers = (0..8).map(|_| cx.sandbox.container()).collect::<Result<Vec<_>>>()?;
    let cx = &*cx;
    let added: Vec<Result<std::result::Result<Value, String>>> = std::thread::scope(|scope| {
        let running: Vec<_> = containers.iter().map(|c| scope.spawn(move || cx.add(&cx.subject.list, c))).collect();
        running.into_iter().map(|r| r.join().expect("an ADD thread does not panic")).collect()
    });
    let mut problems = Vec::new();
    let mut addresses = BTreeSet::new();
    let mut results = Vec::new();
    for (container, added) in containers.iter().zip(added) {
        match added? {
            Ok(result) => {
                for ip in result.get("ips").and_then(Value::as_array).into_iter().flatten().filter_map(|ip| ip.get("address").and_then(Value::as_str)) {
                    if !addresses.insert(ip.to_owned()) {
                        problems.push(format!("address {ip} given twice"));
                    }
                }
                results.push((container, Some(result)));
            }
            Err(problem) => {
                problems.push(format!("{}: {problem}", container.id));
                results.push((container, None));
            }
        }
    }
    let deleted: Vec<Result<Vec<String>>> = std::thread::scope(|scope| {
        let running: Vec<_> = results.iter().map(|(c, r)| scope.spawn(move || cx.del(&cx.subject.list, c, r.as_ref()))).collect();
        running.into_iter().map(|r| r.join().expect("a DEL thread does not panic")).collect()
    });
    for deleted in deleted {
        problems.extend(deleted?);
    }
    problems.extend(settled_changes(cx, &before)?);
    cx.verdict(problems, format!("{} distinct addresses; the node as before", addresses.len()))
}

/// Of a subject that does not claim 1.1.0, why STATUS and GC are not applicable.
fn before_1_1_0(subject: &Subject) -> Option<Judgement> {
    (!subject.claims("1.1.0")).then(|| Judgement::NotApplicable(format!("STATUS and GC are 1.1.0; the plugins claim {:?}", subject.claimed)))
}

/// A plugin's config for STATUS or GC as libcni 1.3 builds it (`GCNetworkList`,
/// `GetStatusNetworkList`): the plugin's own fields with the list's name and version, no
/// prevResult or runtimeConfig; for GC both keys of the valid attachments, since the
/// specification first named it `cni.dev/attachments` (libcni #1101 sets both).
fn network_config(list: &NetworkConfigList, plugin: &Map<String, Value>, valid_attachments: Option<&Value>) -> Value {
    let mut config = plugin.clone();
    config.insert("cniVersion".into(), Value::String(list.cni_version.clone()));
    config.insert("name".into(), Value::String(list.name.clone()));
    if let Some(valid) = valid_attachments {
        config.insert("cni.dev/valid-attachments".into(), valid.clone());
        config.insert("cni.dev/attachments".into(), valid.clone());
    }
    Value::Object(config)
}

/// The environment libcni gives STATUS and GC: the command, and empty attachment variables.
fn without_attachment(command: &str) -> Vec<(&'static str, String)> {
    vec![
        ("CNI_COMMAND", command.to_owned()),
        ("CNI_CONTAINERID", String::new()),
        ("CNI_NETNS", String::new()),
        ("CNI_IFNAME", String::new()),
        ("CNI_ARGS", String::new()),
    ]
}

fn status_answers(cx: &mut SpecContext<'_>) -> Result<Judgement> {
    if let Some(not_applicable) = before_1_1_0(cx.subject) {
        return Ok(not_applicable);
    }
    let list = cx.subject.at("1.1.0");
    let mut problems = Vec::new();
    for plugin in &list.plugins {
        let output = cx.sandbox.runtime.exec(
            "STATUS",
            plugin_type(plugin),
            network_config(&list, plugin, None).to_string().as_bytes(),
            &without_attachment("STATUS"),
        )?;
        if !output.success {
            problems.push(format!("STATUS by {}: {}", plugin_type(plugin), output.failure("STATUS")));
        }
    }
    cx.verdict(problems, "every plugin answered STATUS with success")
}

/// GC of the whole chain with no valid attachments, as libcni sends it; each plugin's
/// failure, in its words.
fn gc(runtime: &CniRuntime, list: &NetworkConfigList) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for plugin in &list.plugins {
        let output = runtime.exec(
            "GC",
            plugin_type(plugin),
            network_config(list, plugin, Some(&Value::Array(Vec::new()))).to_string().as_bytes(),
            &without_attachment("GC"),
        )?;
        if !output.success {
            problems.push(format!("GC by {}: {}", plugin_type(plugin), output.failure("GC")));
        }
    }
    Ok(problems)
}

fn gc_frees_stale_attachments(cx: &mut SpecContext<'_>) -> Result<Judgement> {
    if let Some(not_applicable) = before_1_1_0(cx.subject) {
        return Ok(not_applicable);
    }
    let list = cx.subject.at("1.1.0");
    // libcni first sends DEL for stale attachments it has cached; that is the runtime's
    // part, left out here: what is judged is what the plugins' own GC frees.
    let problems = match node_changes(cx, "GC", |cx, container, _result| {
        cx.sandbox.remove_container(container)?;
        gc(&cx.sandbox.runtime, &list)
    })? {
        Ok(problems) => problems,
        Err(not_judged) => return Ok(not_judged),
    };
    cx.verdict(problems, "GC succeeded and freed the gone attachment")
}

fn gc_reaches_delegates(cx: &mut SpecContext<'_>) -> Result<Judgement> {
    if let Some(not_applicable) = before_1_1_0(cx.subject) {
        return Ok(not_applicable);
    }
    let list = cx.subject.at("1.1.0");
    let delegates: BTreeSet<String> =
        list.plugins.iter().filter_map(|p| p.get("ipam").and_then(|i| i.get("type")).and_then(Value::as_str).map(str::to_owned)).collect();
    if delegates.is_empty() {
        return Ok(Judgement::NotApplicable("no plugin of the chain delegates to an IPAM plugin".into()));
    }
    // Each delegate is found first on CNI_PATH as a shim that notes the command and runs
    // the real binary: what reaches it is seen without changing what it does.
    let shims =
        tempfile::tempdir().map_err(|e| crate::error::HarnessError::Command { command: "make a directory for IPAM shims".into(), detail: e.to_string() })?;
    let log = shims.path().join("calls");
    for delegate in &delegates {
        let real = cx.sandbox.runtime.plugin_path(delegate)?;
        let shim = shims.path().join(delegate);
        let script = format!("#!/bin/sh\necho \"$CNI_COMMAND {delegate}\" >> '{}'\nexec '{}' \"$@\"\n", log.display(), real.display());
        std::fs::write(&shim, script)
            .and_then(|()| std::fs::set_permissions(&shim, std::os::unix::fs::PermissionsExt::from_mode(0o755)))
            .map_err(|e| crate::error::HarnessError::Command { command: format!("write {}", shim.display()), detail: e.to_string() })?;
    }
    let runtime = CniRuntime {
        plugin_dirs: std::iter::once(shims.path().to_owned()).chain(cx.sandbox.runtime.plugin_dirs.iter().cloned()).collect(),
        ..cx.sandbox.runtime.clone()
    };
    let failures = gc(&runtime, &list)?;
    let calls = std::fs::read_to_string(&log).unwrap_or_default();
    let mut problems: Vec<String> = delegates
        .iter()
        .filter(|d| !calls.lines().any(|l| l == format!("GC {d}")))
        .map(|d| {
            format!(
                "no GC reached the delegated IPAM plugin {d} (calls it saw: {:?}){}",
                calls.lines().collect::<Vec<_>>(),
                if failures.is_empty() { String::new() } else { format!("; {}", failures.join("; ")) }
            )
        })
        .collect();
    problems.dedup();
    cx.verdict(problems, format!("GC reached {}", delegates.iter().cloned().collect::<Vec<_>>().join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_check_has_a_unique_name_a_sentence_and_a_section() {
        let checks = checks();
        let names: BTreeSet<&str> = checks.iter().map(|c| c.rule.name).collect();
        assert_eq!(names.len(), checks.len());
        assert!(checks.iter().all(|c| c.rule.section.starts_with("section ") && c.rule.sentence.ends_with('.')));
    }

    #[test]
    fn a_malformed_subject_names_its_file_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("mine.conf");
        std::fs::write(&conf, r#"{"name": "n", "type": "ptp"}"#).unwrap();
        let error = Subject::load(&conf, vec![PathBuf::from("/usr/lib/cni")]).unwrap_err().to_string();
        assert!(error.contains("mine.conf") && error.contains("cniVersion"), "{error}");
        let list = dir.path().join("mine.conflist");
        std::fs::write(&list, r#"{"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "no-such-plugin"}]}"#).unwrap();
        let error = Subject::load(&list, vec![dir.path().to_owned()]).unwrap_err().to_string();
        assert!(error.contains("no-such-plugin") && error.contains(&dir.path().display().to_string()), "{error}");
    }
}
