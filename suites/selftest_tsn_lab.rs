//! Self-test of the TSN family by fault injection, on real packets on the lab.
//!
//! The check itself first: a talker on the node keeps its classes (the check can pass),
//! and a talker in a pod wired by the reference plugins alone lands in best effort (the
//! paper's problem). Then every broken metadata proxy, each configured only through a
//! profile and its conflist as a vendor's proxy would be, must fail exactly the scenarios
//! it should, naming the expected and observed classes; and a killed run's proxy state
//! (pins, links, programs, maps) must go with `cargo xtask gc`.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cni_probe::talk::Transport;
use harness::cni::{self, CniProfile};
use harness::diagnostics::Collect;
use harness::model::{labels, NamespaceSpec, PodSpec};
use harness::provider::lab::{gc, Lab, LabOptions};
use harness::provider::{runs, Cluster};
use harness::report::TrialOutcome;
use harness::scenario::{run_scenario, run_scenario_collecting, Collection, Scenario, ScenarioBody};
use harness::scenarios::tsn;
use harness::verdict::FailureReason;
use harness::Timeouts;
use libtest_mimic::{Arguments, Failed, Trial};

/// Every talker in best effort: what the paper saw without a proxy.
const ALL_BEST_EFFORT: &str = "talker-1 best-effort, talker-2 best-effort, best-effort best-effort";
const SWAPPED: &str = "talker-1 class-2, talker-2 class-1, best-effort best-effort";
const DELIVERY: &str = "delivery_time_set_with_so_txtime_reaches_the_nic";
const LEAK: &str = "traffic_that_never_reaches_the_nic_leaves_no_priority_behind";
const INTERLEAVED: &str = "interleaved_traffic_that_never_reaches_the_nic_leaves_no_priority_behind";

/// How one configuration must come out of a scenario: passed, or failed for a wrong class
/// (or a changed delivery time) with this observed role.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Pass,
    WrongClass(&'static str),
    /// Failed for a wrong class: best-effort packets lifted into a priority class (some or
    /// all of them, into either: the role names each class that took some).
    Lifted,
    DeliveryTimeChanged(&'static str),
}

/// A proxy configuration under self-test: its conflist entry (none: no proxy at all), and
/// what every class scenario and the leak scenario must do.
struct ProxyCase {
    name: &'static str,
    entry: Option<serde_json::Value>,
    classes: Expect,
    leak: Expect,
    /// The leak scenario's interleaved variant, within any clean-up period.
    interleaved: Expect,
    /// The delivery-time scenario: this kernel keeps a pod's SO_TXTIME across the veth and
    /// forwarding by itself, so only a proxy that drops it fails it.
    delivery: Expect,
}

fn proxy_cases() -> Vec<ProxyCase> {
    use serde_json::json;
    let proxy = |extra: serde_json::Value| {
        let mut entry = json!({ "type": "tsn-metadata-proxy", "nic": "eth0" });
        entry.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        Some(entry)
    };
    vec![
        ProxyCase {
            name: "the_reference_proxy_passes_every_scenario",
            entry: proxy(json!({})),
            classes: Expect::Pass,
            leak: Expect::Pass,
            interleaved: Expect::Pass,
            delivery: Expect::Pass,
        },
        ProxyCase {
            name: "without_a_proxy_every_talker_lands_in_best_effort",
            entry: None,
            classes: Expect::WrongClass(ALL_BEST_EFFORT),
            leak: Expect::Pass,
            interleaved: Expect::Pass,
            delivery: Expect::Pass,
        },
        ProxyCase {
            name: "a_restore_on_the_pod_veth_ingress_is_overwritten_by_forwarding",
            entry: proxy(json!({ "hook": "pod-veth-ingress" })),
            classes: Expect::WrongClass(ALL_BEST_EFFORT),
            leak: Expect::Pass,
            interleaved: Expect::Pass,
            delivery: Expect::Pass,
        },
        ProxyCase {
            name: "a_proxy_without_its_saver_loses_every_priority",
            entry: proxy(json!({ "faults": ["no-save"] })),
            classes: Expect::WrongClass(ALL_BEST_EFFORT),
            leak: Expect::Pass,
            interleaved: Expect::Pass,
            delivery: Expect::Pass,
        },
        ProxyCase {
            name: "a_proxy_without_its_restorer_loses_every_priority",
            entry: proxy(json!({ "faults": ["no-restore"] })),
            classes: Expect::WrongClass(ALL_BEST_EFFORT),
            leak: Expect::Pass,
            interleaved: Expect::Pass,
            delivery: Expect::Pass,
        },
        ProxyCase {
            name: "a_wrong_priority_map_puts_each_talker_in_the_other_s_class",
            entry: proxy(json!({ "faults": ["swap-priorities"] })),
            classes: Expect::WrongClass(SWAPPED),
            leak: Expect::Pass,
            interleaved: Expect::Pass,
            delivery: Expect::Pass,
        },
        ProxyCase {
            name: "per_packet_state_left_behind_lifts_later_best_effort_packets",
            entry: proxy(json!({ "faults": ["keep-per-packet-state"] })),
            classes: Expect::Pass,
            leak: Expect::WrongClass("class-2"),
            interleaved: Expect::Lifted,
            delivery: Expect::Pass,
        },
        ProxyCase {
            // The paper's map keyed by packet address, entries never overwritten, cleaned up
            // sooner than the next talk starts (bpf/tsn_metadata_proxy.c): the leak scenario's
            // talks one after another cannot see it; the interleaved variant must.
            name: "priorities_saved_by_packet_address_lift_interleaved_best_effort_packets",
            entry: proxy(json!({ "faults": ["key-by-packet-address"] })),
            classes: Expect::Pass,
            leak: Expect::Pass,
            interleaved: Expect::Lifted,
            delivery: Expect::Pass,
        },
        ProxyCase {
            name: "a_proxy_that_drops_the_delivery_time_fails_only_the_delivery_time_scenario",
            entry: proxy(json!({ "faults": ["clear-delivery-time"] })),
            classes: Expect::Pass,
            leak: Expect::Pass,
            interleaved: Expect::Pass,
            delivery: Expect::DeliveryTimeChanged("talker delivery-time-lost, best-effort no-delivery-time"),
        },
        ProxyCase {
            name: "a_proxy_that_stamps_best_effort_packets_fails_only_the_delivery_time_scenario",
            entry: proxy(json!({ "faults": ["stamp-best-effort"] })),
            classes: Expect::Pass,
            leak: Expect::Pass,
            interleaved: Expect::Pass,
            delivery: Expect::DeliveryTimeChanged("talker delivery-time-kept, best-effort delivery-time-off"),
        },
    ]
}

/// A profile directory like `fixtures/cni/reference-tsn-proxy`, with the proxy's conflist
/// entry replaced by `entry` (or removed): what a vendor would write, no Rust.
fn profile_with_proxy(entry: Option<&serde_json::Value>, dir: &Path) -> Result<CniProfile, Failed> {
    let shipped = harness::cni::profile::profiles_dir().join("reference-tsn-proxy");
    std::fs::copy(shipped.join("profile.yaml"), dir.join("profile.yaml")).map_err(|e| e.to_string())?;
    let conflist_path = shipped.join("10-lab-tsn.conflist");
    let mut conflist: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&conflist_path).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    let plugins = conflist["plugins"].as_array_mut().ok_or("the shipped conflist has plugins")?;
    plugins.retain(|p| p["type"] != "tsn-metadata-proxy");
    plugins.extend(entry.cloned());
    std::fs::write(dir.join("10-lab-tsn.conflist"), serde_json::to_string_pretty(&conflist).unwrap()).map_err(|e| e.to_string())?;
    cni::load_profile(&dir.join("profile.yaml").display().to_string()).map_err(|e| e.to_string().into())
}

fn check_proxy(case: &ProxyCase) -> Result<(), Failed> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let profile = profile_with_proxy(case.entry.as_ref(), dir.path())?;
    // Each scenario on a lab of its own (a lab takes 0.05 s): a TCP talker's last segments
    // from one scenario can never reach another's counters or a leaky proxy's map.
    let mut outcomes: Vec<(&str, TrialOutcome)> = Vec::new();
    let mut wrong = Vec::new();
    let bundles = tempfile::tempdir().map_err(|e| e.to_string())?;
    let collection = Collection { root: bundles.path().to_owned(), mode: Collect::Failures, profile_commands: vec![] };
    for scenario in tsn::all() {
        let lab: Arc<dyn Cluster> = Arc::new(Lab::provision(&profile, &LabOptions::from_env()?)?);
        let (outcome, bundle) = run_scenario_collecting(&lab, &scenario, &harness::provider::lab::timeouts(), "t1", None, Some(&collection));
        lab.teardown()?;
        wrong.extend(harness::diagnostics::bundle_problems(scenario.name, outcome.is_failure(), bundle.as_deref()));
        // The hop where a priority is lost is the node NIC's classifier: the bundle has its
        // classes with their counters.
        if let (TrialOutcome::Failed(_), Some(bundle)) = (&outcome, &bundle) {
            let classes: String = std::fs::read_dir(bundle.join("nodes"))
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|node| std::fs::read_to_string(node.path().join("classes-eth0.txt")).ok())
                .collect();
            if !(classes.contains("class htb 1:1 ") && classes.contains("Sent ")) {
                wrong.push(format!("{}: the bundle should hold the node NIC's classes with their counters: {classes}", scenario.name));
            }
            // The priority trace names the hop: the talker's packets leave the pod in their
            // class and reach the node NIC in another (a missing save or restore: best effort).
            let traced = std::fs::read_to_string(bundle.join("priority-trace.txt")).unwrap_or_default();
            let lost_at_the_nic = traced
                .lines()
                .any(|l| l.starts_with("the priority was lost between pod ") && l.contains("(leaving the pod) and node ") && l.contains(" (the NIC): "));
            let as_best_effort = traced.contains("reached node") && traced.contains("as best-effort (1:3, priority 0 (best effort))");
            let wanted = match case.classes {
                Expect::WrongClass(ALL_BEST_EFFORT) => lost_at_the_nic && as_best_effort,
                Expect::WrongClass(_) => lost_at_the_nic,
                _ => true,
            };
            // The interleaved talker's replay has the same company: its packets leave the pod
            // in best effort and reach the NIC lifted.
            let lifted_at_the_nic = traced.lines().any(|l| {
                l.starts_with("the packets were lifted out of best effort between pod ")
                    && l.contains("(leaving the pod) and node ")
                    && l.contains(" (the NIC): ")
            });
            if scenario.name == INTERLEAVED && !lifted_at_the_nic {
                wrong.push(format!("{}: the priority trace should name the hop where the best-effort packets were lifted (leaving the pod in best effort, reaching the NIC in a priority class): {traced}", scenario.name));
            }
            if ![LEAK, INTERLEAVED, DELIVERY].contains(&scenario.name) && !wanted {
                wrong.push(format!("{}: the priority trace should name the hop where the priority was lost (leaving the pod in its class, reaching the NIC in another): {traced}", scenario.name));
            }
        }
        outcomes.push((scenario.name, outcome));
    }
    for (scenario, outcome) in &outcomes {
        let expected = match *scenario {
            LEAK => case.leak,
            INTERLEAVED => case.interleaved,
            DELIVERY => case.delivery,
            name if name.contains("taprio") => {
                if !matches!(outcome, TrialOutcome::Ignored(reason) if reason.contains("no taprio") || reason.contains("not judged")) {
                    wrong.push(format!("{scenario} should be ignored with the kernel's reason, but {}: {}", outcome.label(), outcome.message()));
                }
                continue;
            }
            _ => case.classes,
        };
        match (expected, outcome) {
            (Expect::Pass, TrialOutcome::Passed(_)) => {}
            (Expect::Lifted, TrialOutcome::Failed(verdict))
                if verdict.reason == Some(FailureReason::WrongClass) && verdict.observed.role.contains("class-") =>
            {
                let message = verdict.message();
                if !(message.contains("expected best-effort") && message.contains("look at per-packet state saved for packets that never reached")) {
                    wrong.push(format!("{scenario}: the failure should expect best effort and name per-packet state as what to look at: {message}"));
                }
            }
            (Expect::WrongClass(role), TrialOutcome::Failed(verdict)) if verdict.reason == Some(FailureReason::WrongClass) && verdict.observed.role == role => {
                let message = verdict.message();
                if !(message.contains("expected ") && message.contains("packets per class: 1:1 (class-1): ")) {
                    wrong.push(format!("{scenario}: the failure should name the expected class, the observed class and the counts: {message}"));
                }
                if *scenario == LEAK && !message.contains("look at stale per-packet state") {
                    wrong.push(format!("{scenario}: the hint should name stale per-packet state: {message}"));
                }
            }
            (Expect::DeliveryTimeChanged(role), TrialOutcome::Failed(verdict))
                if verdict.reason == Some(FailureReason::DeliveryTimeChanged) && verdict.observed.role == role =>
            {
                let message = verdict.message();
                // Where the packets went, with counts, then the classifier's whole table.
                if !message.contains("); packets per class: 1:1 (delivery-time-kept): ") {
                    wrong.push(format!("{scenario}: the failure should name the counts: {message}"));
                }
            }
            (expected, other) => wrong.push(format!("{scenario}: expected {expected:?}, got {}: {}", other.label(), other.message())),
        }
    }
    match wrong.is_empty() {
        true => Ok(()),
        false => Err(wrong.join("\n").into()),
    }
}

fn talkers(in_a_pod: bool, transport: Transport) -> ScenarioBody {
    match (in_a_pod, transport) {
        (true, Transport::Udp) => |cx| {
            let (namespace, node) = (cx.namespace("tsn", labels([]))?, cx.a_worker()?);
            let talker = cx.pod(&namespace, "talker", labels([("app", "talker")]), &node)?;
            let outside = cx.external_listener()?;
            tsn::talkers_keep_their_classes(cx, Some(&talker), &node, outside, Transport::Udp)
        },
        (true, Transport::Tcp) => |cx| {
            let (namespace, node) = (cx.namespace("tsn", labels([]))?, cx.a_worker()?);
            let talker = cx.pod(&namespace, "talker", labels([("app", "talker")]), &node)?;
            let outside = cx.external_listener()?;
            tsn::talkers_keep_their_classes(cx, Some(&talker), &node, outside, Transport::Tcp)
        },
        (false, Transport::Udp) => |cx| {
            let (node, outside) = (cx.a_worker()?, cx.external_listener()?);
            tsn::talkers_keep_their_classes(cx, None, &node, outside, Transport::Udp)
        },
        (false, Transport::Tcp) => |cx| {
            let (node, outside) = (cx.a_worker()?, cx.external_listener()?);
            tsn::talkers_keep_their_classes(cx, None, &node, outside, Transport::Tcp)
        },
    }
}

fn outcome(in_a_pod: bool, transport: Transport) -> Result<TrialOutcome, Failed> {
    let lab: Arc<dyn Cluster> = Arc::new(Lab::provision(&cni::reference(), &LabOptions::from_env()?)?);
    let scenario = Scenario { name: "talkers", sentence: "talkers keep their classes", requires: &[], disruptive: true, body: talkers(in_a_pod, transport) };
    let outcome = run_scenario(&lab, &scenario, &Timeouts::default(), "t1");
    lab.teardown()?;
    Ok(outcome)
}

fn on_the_node_the_classes_are_kept(transport: Transport) -> Result<(), Failed> {
    match outcome(false, transport)? {
        TrialOutcome::Passed(_) => Ok(()),
        other => Err(format!("a talker on the node itself should keep its classes: {}", other.message()).into()),
    }
}

fn in_a_pod_without_a_proxy_everything_is_best_effort(transport: Transport) -> Result<(), Failed> {
    match outcome(true, transport)? {
        TrialOutcome::Failed(verdict)
            if verdict.reason == Some(FailureReason::WrongClass)
                && verdict.observed.role == "priority-1 best-effort, priority-2 best-effort, priority-0 best-effort" =>
        {
            let message = verdict.message();
            match message.contains("1:1 (class-1): 0") && message.contains(") in 1:1 (class-1), none in another class") {
                true => Ok(()),
                false => Err(format!("the failure should name the expected class and the counts: {message}").into()),
            }
        }
        other => Err(format!("expected the talkers' packets in best effort: {} ({other:?})", other.message()).into()),
    }
}

/// The ids of the proxy's programs loaded in the kernel now.
fn proxy_programs() -> BTreeSet<u32> {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .filter(|p| matches!(p.name_as_str(), Some(tsn_proxy::datapath::SAVER | tsn_proxy::datapath::RESTORER)))
        .map(|p| p.id())
        .collect()
}

/// The ids of the programs attached (tcx) to `eth0` egress in every network namespace of
/// `cluster`: this lab's proxy programs, not those of labs running beside it.
fn programs_attached_in(cluster: &str) -> BTreeSet<u32> {
    let namespaces: Vec<String> = std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("{cluster}-")))
        .collect();
    namespaces
        .iter()
        .filter_map(|namespace| tsn_proxy::datapath::attached_in(&format!("/run/netns/{namespace}"), "eth0", aya::programs::TcAttachType::Egress).ok())
        .flatten()
        .map(|(id, _)| id)
        .collect()
}

/// A run killed with the proxy's links in place: gc (what `cargo xtask gc` runs) leaves no
/// pin, link, program, map or namespace of it.
fn a_killed_run_s_proxy_state_goes_with_gc() -> Result<(), Failed> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let profile =
        profile_with_proxy(Some(&serde_json::json!({ "type": "tsn-metadata-proxy", "nic": "eth0", "faults": ["keep-per-packet-state"] })), dir.path())?;
    let lab = Lab::provision(&profile, &LabOptions::from_env()?)?;
    let cluster = lab.info().cluster.clone();
    lab.create_namespace(&NamespaceSpec { name: "tsn-gc".into(), labels: labels([]) })?;
    let node = lab.nodes().iter().find(|n| n.role == harness::model::NodeRole::Worker).ok_or("a worker")?.clone();
    for name in ["a", "b"] {
        lab.create_pod(&PodSpec { name: name.into(), namespace: "tsn-gc".into(), labels: labels([]), node: node.name.clone(), host_ports: vec![] })?;
    }
    let ours: BTreeSet<u32> = programs_attached_in(&cluster).intersection(&proxy_programs()).copied().collect();
    // Loaded once for the node (pinned, as a production proxy's agent loads them), a saver
    // attached in each pod and the restorer on the node's NIC.
    if ours.len() < 2 {
        return Err(format!("ADD should have loaded the proxy's saver and restorer; new proxy programs attached: {ours:?}").into());
    }
    let pins = runs::state_dir(&cluster).join(&node.name).join("bpffs/tsn-metadata-proxy");
    if !pins.join("pending").exists() {
        return Err(format!("the proxy's pins should be in the node's bpffs: {}", pins.display()).into());
    }
    // SIGKILL: no teardown, no DEL. Then what `cargo xtask gc` does.
    std::mem::forget(lab);
    gc::remove_cluster(&cluster)?;
    let budget = Duration::from_secs(5);
    let started = Instant::now();
    loop {
        let left: Vec<u32> = proxy_programs().intersection(&ours).copied().collect();
        if left.is_empty() && !runs::state_dir(&cluster).exists() {
            return Ok(());
        }
        if started.elapsed() > budget {
            return Err(format!("after gc, within {budget:?} (the kernel frees BPF objects after their last reference): programs {left:?} still loaded, state directory present: {}", runs::state_dir(&cluster).exists()).into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn main() -> std::process::ExitCode {
    let args = Arguments::from_args();
    let mut trials = vec![
        Trial::test("udp_talkers_on_the_node_itself_keep_their_classes", || on_the_node_the_classes_are_kept(Transport::Udp)),
        Trial::test("tcp_talkers_on_the_node_itself_keep_their_classes", || on_the_node_the_classes_are_kept(Transport::Tcp)),
        Trial::test("udp_talkers_in_a_pod_without_a_metadata_proxy_land_in_best_effort", || in_a_pod_without_a_proxy_everything_is_best_effort(Transport::Udp)),
        Trial::test("tcp_talkers_in_a_pod_without_a_metadata_proxy_land_in_best_effort", || in_a_pod_without_a_proxy_everything_is_best_effort(Transport::Tcp)),
        Trial::test("a_killed_run_s_proxy_state_goes_with_gc", a_killed_run_s_proxy_state_goes_with_gc),
    ];
    trials.extend(proxy_cases().into_iter().map(|case| Trial::test(case.name, move || check_proxy(&case))));
    libtest_mimic::run(&args, trials).exit_code()
}
