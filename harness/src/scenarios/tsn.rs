//! TSN priority preservation (the metadata-proxy paper): a time-sensitive pod's
//! `SO_PRIORITY` must reach the node NIC's qdisc, where the paper's priority map puts
//! priority 1 and 2 in classes of their own and the rest in best effort. The operations
//! here are built on the cluster's node primitive: an HTB qdisc with a BPF classifier on
//! the node's NIC (this kernel has no taprio or mqprio), and its per-class counters.
//!
//! Every scenario is disruptive: the counters of a node's NIC are shared by everything
//! the node sends, so a talker must talk alone to be counted exactly.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use cni_probe::talk::{Interleaved, TalkOptions, TalkReport, Transport};

use crate::cni::Feature;
use crate::error::{HarnessError, Result};
use crate::model::{labels, Labels, Node, Pod, POD_PORT};
use crate::scenario::{Scenario, ScenarioContext};
use crate::verdict::{budget, gates, priority, Verdict};

pub use crate::tools::{NODE_NIC, PROBE};

/// How far ahead a delivery-time talker sets each datagram's SO_TXTIME: the
/// delivery-time classifier's DELAY_NS (with a 100 ms tolerance for the way to the NIC).
pub const DELIVERY_DELAY: std::time::Duration = std::time::Duration::from_millis(500);

/// Where traffic that stays on the node goes: a port no talker class counts, closed, so
/// each datagram is dropped (and its packet freed) as soon as it arrives.
const STAYS_ON_THE_NODE_PORT: u16 = POD_PORT + 1;

/// Packets (UDP datagrams, TCP writes) each talker sends.
const TALKER_PACKETS: u64 = 50;

/// How long a node's NIC may keep sending before a talker's window opens anyway.
const NIC_QUIET: std::time::Duration = std::time::Duration::from_secs(2);

/// Talks so far in this process, numbering each talker's tag.
static TALKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The paper's talkers: priority 1, priority 2, and best effort beside them.
const PAPER_PRIORITIES: [u32; 3] = [1, 2, 0];

/// Every TSN scenario, in the order a reader would check them.
pub fn all() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "udp_talkers_reach_an_external_listener_each_in_its_own_class",
            sentence: "Talker pods sending UDP with priority 1 and 2, and a best-effort pod beside them, reach a listener outside the cluster with every packet in its own class at the node NIC's qdisc, none of the time-sensitive ones in best effort.",
            requires: &[Feature::TsnPriorityMap],
            disruptive: true,
            body: |cx| talkers_to_an_external_listener(cx, Transport::Udp),
        },
        Scenario {
            name: "tcp_talkers_reach_an_external_listener_each_in_its_own_class",
            sentence: "The same talkers over TCP: every segment in its talker's class at the node NIC's qdisc.",
            requires: &[Feature::TsnPriorityMap],
            disruptive: true,
            body: |cx| talkers_to_an_external_listener(cx, Transport::Tcp),
        },
        Scenario {
            name: "udp_talkers_reach_a_pod_on_another_node_each_in_its_own_class",
            sentence: "Talker pods sending UDP to a pod on another node leave their node's NIC each in its own class.",
            requires: &[Feature::TsnPriorityMap],
            disruptive: true,
            body: |cx| talkers_to_a_pod_on_another_node(cx, Transport::Udp),
        },
        Scenario {
            name: "tcp_talkers_reach_a_pod_on_another_node_each_in_its_own_class",
            sentence: "The same over TCP: every segment to the pod on another node in its talker's class at the source node's NIC.",
            requires: &[Feature::TsnPriorityMap],
            disruptive: true,
            body: |cx| talkers_to_a_pod_on_another_node(cx, Transport::Tcp),
        },
        Scenario {
            name: "udp_talkers_on_the_egress_gateway_path_keep_their_classes",
            sentence: "Talker pods an egress policy selects leave with the egress IP, and their UDP packets leave their own node's NIC (towards the gateway) each in its own class.",
            requires: &[Feature::TsnPriorityMap, Feature::EgressGateway],
            disruptive: true,
            body: |cx| talkers_on_the_egress_gateway_path(cx, Transport::Udp),
        },
        Scenario {
            name: "tcp_talkers_on_the_egress_gateway_path_keep_their_classes",
            sentence: "The same over TCP: on the way to the egress gateway every segment is in its talker's class at the pod's node NIC.",
            requires: &[Feature::TsnPriorityMap, Feature::EgressGateway],
            disruptive: true,
            body: |cx| talkers_on_the_egress_gateway_path(cx, Transport::Tcp),
        },
        Scenario {
            name: "traffic_that_never_reaches_the_nic_leaves_no_priority_behind",
            sentence: "After a pod sends priority 1 and 2 traffic that never reaches the NIC (to a pod beside it and to its own node), its best-effort packets to the outside are all in best effort: nothing was left behind to lift them.",
            requires: &[Feature::TsnPriorityMap],
            disruptive: true,
            body: traffic_that_never_reaches_the_nic_leaves_no_priority_behind,
        },
        Scenario {
            name: "interleaved_traffic_that_never_reaches_the_nic_leaves_no_priority_behind",
            sentence: "A pod's best-effort datagrams to the outside, each sent right after a priority 1 datagram to a pod beside it and a priority 2 one to its own node (traffic that never reaches the NIC), are all in best effort at the NIC: nothing saved for the packets that stayed lifts the ones that leave, however close behind them.",
            requires: &[Feature::TsnPriorityMap],
            disruptive: true,
            body: interleaved_traffic_that_never_reaches_the_nic_leaves_no_priority_behind,
        },
        Scenario {
            name: "delivery_time_set_with_so_txtime_reaches_the_nic",
            sentence: "A talker pod's datagrams with SO_TXTIME reach the node NIC carrying the delivery time it set: on CLOCK_TAI, as far ahead as it set it (within 100 ms), none lost; and its best-effort datagrams without one right after reach it carrying none.",
            requires: &[Feature::TsnPriorityMap],
            disruptive: true,
            body: delivery_time_set_with_so_txtime_reaches_the_nic,
        },
        Scenario {
            name: "talkers_leave_in_their_taprio_gate_windows",
            sentence: "With the paper's taprio schedule on the node NIC (40 us cycle: priority 1, priority 2, best effort), the listener receives each talker's packets inside its class's gate window.",
            requires: &[Feature::TsnPriorityMap],
            disruptive: true,
            body: talkers_leave_in_their_taprio_gate_windows,
        },
    ]
}

fn talkers_to_an_external_listener(cx: &mut ScenarioContext, transport: Transport) -> Result<Verdict> {
    let namespace = cx.namespace("tsn", labels([]))?;
    let node = cx.a_worker()?;
    let talkers = cx.tsn_talkers(&namespace, labels([("app", "talker")]), &node)?;
    let outside = cx.external_listener()?;
    cx.talkers_keep_their_classes(&talkers, outside, transport)
}

fn talkers_to_a_pod_on_another_node(cx: &mut ScenarioContext, transport: Transport) -> Result<Verdict> {
    let namespace = cx.namespace("tsn", labels([]))?;
    let node = cx.a_worker()?;
    let talkers = cx.tsn_talkers(&namespace, labels([("app", "talker")]), &node)?;
    let listener = cx.pod(&namespace, "listener", labels([("app", "listener")]), &cx.a_node_other_than(&node)?)?;
    cx.talkers_keep_their_classes(&talkers, SocketAddr::new(listener.address, POD_PORT), transport)
}

fn talkers_on_the_egress_gateway_path(cx: &mut ScenarioContext, transport: Transport) -> Result<Verdict> {
    let prod = cx.namespace("prod", labels([("env", "prod")]))?;
    let policy = cx.egress_policy(super::egress::PROD_WEB_EGRESS, &prod)?;
    let node = cx.worker_outside(&policy.gateway_node_selector)?;
    let talkers = cx.tsn_talkers(&prod, labels([("role", "web")]), &node)?;
    let realized = cx.realize_egress_policy(&policy)?;
    // The path first: a talker that does not take the gateway proves nothing about it.
    let through_the_gateway = cx.source_seen_outside_once_programmed(&talkers.pods[0].0, &cx.the_egress_ip(&policy, &realized))?;
    if !through_the_gateway.passed {
        return Ok(through_the_gateway);
    }
    let classes = cx.talkers_keep_their_classes(&talkers, cx.external_listener()?, transport)?;
    Ok(budget::all_of([through_the_gateway, classes]))
}

/// A worker with the priority map on its NIC, a talker pod on it and a pod beside it.
fn a_talker_with_a_pod_beside_it(cx: &mut ScenarioContext) -> Result<(Node, Pod, Pod)> {
    let namespace = cx.namespace("tsn", labels([]))?;
    let node = cx.a_worker()?;
    let talker = cx.pod(&namespace, "talker", labels([("app", "talker")]), &node)?;
    let beside = cx.pod(&namespace, "beside", labels([("app", "beside")]), &node)?;
    cx.tsn_qdisc_on(&node)?;
    Ok((node, talker, beside))
}

fn traffic_that_never_reaches_the_nic_leaves_no_priority_behind(cx: &mut ScenarioContext) -> Result<Verdict> {
    let (node, talker, beside) = a_talker_with_a_pod_beside_it(cx)?;
    for priority in [1, 2] {
        for stays_on_the_node in [SocketAddr::new(beside.address, POD_PORT), SocketAddr::new(node.address, POD_PORT)] {
            cx.talk(Some(&talker), &node, stays_on_the_node, Transport::Udp, priority)?;
        }
    }
    let mut verdict = cx.talker_class_at_nic(Some(&talker), &node, cx.external_listener()?, Transport::Udp, 0)?;
    verdict.look_at = format!("stale per-packet state: a priority saved for the pod's earlier packets (which never reached {NODE_NIC}) and restored onto later ones, e.g. a map entry keyed by socket or flow that nothing removes");
    Ok(verdict)
}

/// The same leftover state, within any clean-up period: every best-effort datagram goes
/// out right behind two that stay on the node, so state a proxy saved for those (keyed
/// by packet address, by socket, by flow) is still there when the next packet is built.
fn interleaved_traffic_that_never_reaches_the_nic_leaves_no_priority_behind(cx: &mut ScenarioContext) -> Result<Verdict> {
    let (node, talker, beside) = a_talker_with_a_pod_beside_it(cx)?;
    let interleave = vec![
        Interleaved { to: SocketAddr::new(beside.address, STAYS_ON_THE_NODE_PORT), priority: 1 },
        Interleaved { to: SocketAddr::new(node.address, STAYS_ON_THE_NODE_PORT), priority: 2 },
    ];
    let counted = cx.counted_talk(Some(&talker), &node, cx.external_listener()?, Transport::Udp, 0, &TalkExtras { interleave, ..TalkExtras::default() })?;
    let mut verdict = priority::talker_kept_its_class(&counted.talker, 0, counted.report.sent, &counted.grew, &format!("node {} {NODE_NIC}", node.name));
    verdict.look_at = format!(
        "per-packet state saved for packets that never reached {NODE_NIC} and restored onto the pod's next packets ({} datagram(s) to {} and {} interleaved with its {} best-effort ones), e.g. a map keyed by packet (skb) address that a packet which stays on the node never clears and a later packet built at the same address finds",
        counted.report.interleaved, beside.name, node.name, counted.report.sent
    );
    Ok(verdict)
}

fn delivery_time_set_with_so_txtime_reaches_the_nic(cx: &mut ScenarioContext) -> Result<Verdict> {
    let namespace = cx.namespace("tsn", labels([]))?;
    let node = cx.a_worker()?;
    let talker = cx.pod(&namespace, "talker", labels([("app", "talker")]), &node)?;
    // The NIC's classifier sorts the talker's packets by the delivery time they carry.
    cx.tsn_qdisc_on(&node)?;
    let classifier = crate::bpf::variant("tsn_classify", "tsn_classify_delivery_time", &["DELIVERY_TIME"])?;
    if let Some(refused) = cx.try_classifier(&node, &classifier)? {
        return Err(HarnessError::CannotObserve { reason: format!("the node's kernel refuses the delivery-time classifier (it reads skb->tstamp_type and needs bpf_ktime_get_tai_ns, Linux 6.1 or later): {refused}") });
    }
    let listener = cx.external_listener()?;
    let timed = TalkExtras { txtime_delay: Some(DELIVERY_DELAY), ..TalkExtras::default() };
    let counted = cx
        .counted_talk(Some(&talker), &node, listener, Transport::Udp, 1, &timed)
        .and_then(|with| Ok((with, cx.counted_talk(Some(&talker), &node, listener, Transport::Udp, 0, &TalkExtras::default())?)));
    // The priority map goes back on the NIC for the scenarios after this one, however it went.
    cx.tsn_qdisc_on(&node)?;
    let (with, without) = counted?;
    let nic = format!("node {} {NODE_NIC}", node.name);
    Ok(priority::every_talker(
        "delivery time (SO_TXTIME) at the node NIC, of a talker that set one and of best effort after it",
        vec![
            ("talker".into(), priority::delivery_time_kept(&with.talker, with.report.sent, &with.grew, &nic, &format!("{DELIVERY_DELAY:?}"))),
            ("best-effort".into(), priority::no_delivery_time_added(&without.talker, without.report.sent, &without.grew, &nic)),
        ],
    ))
}

fn talkers_leave_in_their_taprio_gate_windows(cx: &mut ScenarioContext) -> Result<Verdict> {
    let node = cx.a_worker()?;
    let schedule = gates::paper_schedule();
    if let Some(refused) = cx.taprio_on(&node, &schedule)? {
        return Err(HarnessError::CannotObserve {
            reason: format!("the node's NIC takes no taprio qdisc with the paper's schedule (its kernel lacks taprio, or the NIC the three transmit queues), so there are no gate windows to land in ({refused})"),
        });
    }
    let namespace = cx.namespace("tsn", labels([]));
    let judged = namespace
        .and_then(|namespace| cx.tsn_talkers(&namespace, labels([("app", "talker")]), &node))
        .and_then(|talkers| cx.talkers_in_their_gate_windows(&talkers, &schedule));
    // The NIC goes back to no root qdisc however it went; the priority map is put back by
    // the next scenario that counts.
    cx.cluster()
        .run_on_node(&node, "tc", &["qdisc", "del", "dev", NODE_NIC, "root"])?
        .stdout_of_success(&format!("tc qdisc del dev {NODE_NIC} root on node {}", node.name))?;
    judged
}

/// One talker's run: who talked, what it says it sent, how each NIC class grew meanwhile.
pub struct CountedTalk {
    pub talker: String,
    pub report: TalkReport,
    pub grew: BTreeMap<String, u64>,
}

/// What a talk adds to its packets: a delivery time each, datagrams interleaved.
#[derive(Debug, Clone, Default)]
pub struct TalkExtras {
    /// Each datagram's delivery time this far ahead (SO_TXTIME).
    pub txtime_delay: Option<std::time::Duration>,
    /// Before each packet, one datagram to each of these with its own priority.
    pub interleave: Vec<Interleaved>,
}

/// The paper's talkers on one node: a pod per priority.
pub struct Talkers {
    pub node: Node,
    /// Each talker pod with its priority.
    pub pods: Vec<(Pod, u32)>,
}

impl ScenarioContext {
    /// A talker pod for each of the paper's priorities on `node`, labelled `labels`.
    pub fn tsn_talkers(&mut self, namespace: &str, labels: Labels, node: &Node) -> Result<Talkers> {
        let pods = PAPER_PRIORITIES
            .into_iter()
            .map(|priority| {
                let name = match priority {
                    0 => "best-effort".to_owned(),
                    p => format!("talker-{p}"),
                };
                Ok((self.pod(namespace, &name, labels.clone(), node)?, priority))
            })
            .collect::<Result<_>>()?;
        Ok(Talkers { node: node.clone(), pods })
    }

    /// Each talker, alone, to `to`; whether every one kept its class at the node's NIC.
    pub fn talkers_keep_their_classes(&self, talkers: &Talkers, to: SocketAddr, transport: Transport) -> Result<Verdict> {
        let each: Vec<(String, Option<&Pod>, u32)> = talkers.pods.iter().map(|(pod, priority)| (pod.name.clone(), Some(pod), *priority)).collect();
        self.each_keeps_its_class(&talkers.node, &each, to, transport)
    }

    /// Each talker (a stable name, a pod or the node itself, a priority), alone, to `to`;
    /// whether every one kept its class at `node`'s NIC.
    fn each_keeps_its_class(&self, node: &Node, talkers: &[(String, Option<&Pod>, u32)], to: SocketAddr, transport: Transport) -> Result<Verdict> {
        self.tsn_qdisc_on(node)?;
        let verdicts = talkers
            .iter()
            .map(|(name, pod, priority)| Ok((name.clone(), self.talker_class_at_nic(*pod, node, to, transport, *priority)?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(priority::talkers_kept_their_classes(verdicts))
    }

    /// Another node than `node` (a worker if there is one).
    pub fn a_node_other_than(&self, node: &Node) -> Result<Node> {
        let others: Vec<&Node> = self.cluster().nodes().iter().filter(|n| n.name != node.name).collect();
        others
            .iter()
            .find(|n| n.role == crate::model::NodeRole::Worker)
            .or(others.first())
            .map(|n| (*n).clone())
            .ok_or_else(|| HarnessError::NotFound { what: "node".into(), wanted: format!("other than {} (the cluster has one node)", node.name) })
    }

    /// Puts the paper's priority map on `node`'s NIC: HTB classes 1:1 (priority 1), 1:2
    /// (priority 2), 1:3 (best effort) for talkers' packets (to [`POD_PORT`]), and 1:4 for
    /// everything else, chosen by `bpf/tsn_classify.c`.
    /// Idempotent.
    pub fn tsn_qdisc_on(&self, node: &Node) -> Result<()> {
        self.tsn_qdisc_with(node, &crate::bpf::object("tsn_classify")?)
    }

    /// The same HTB classes, sorted by `classifier` (a BPF object on this machine).
    pub fn tsn_qdisc_with(&self, node: &Node, classifier: &std::path::Path) -> Result<()> {
        let tc = |args: &[&str]| -> Result<()> {
            self.cluster().run_on_node(node, "tc", args)?.stdout_of_success(&format!("tc {} on node {}", args.join(" "), node.name)).map(drop)
        };
        let qdiscs = self
            .cluster()
            .run_on_node(node, "tc", &["qdisc", "show", "dev", NODE_NIC])?
            .stdout_of_success(&format!("tc qdisc show dev {NODE_NIC} on node {}", node.name))?;
        let (root, classes) = crate::bpf::priority_classes(NODE_NIC);
        fn words(args: &[String]) -> Vec<&str> {
            args.iter().map(String::as_str).collect()
        }
        if !qdiscs.lines().any(|l| l.starts_with("qdisc htb 1: root")) {
            tc(&words(&root))?;
        }
        for class in &classes {
            tc(&words(class))?;
        }
        match self.try_classifier(node, classifier)? {
            None => Ok(()),
            Some(refused) => {
                Err(HarnessError::Command { command: format!("loading the classifier {} on node {}", classifier.display(), node.name), detail: refused })
            }
        }
    }

    /// Puts `classifier` (a BPF object on this machine) on `node`'s NIC qdisc in place of
    /// the one there: `None` once loaded, or the kernel's refusal as tc said it.
    pub fn try_classifier(&self, node: &Node, classifier: &std::path::Path) -> Result<Option<String>> {
        let on_node = self.cluster().put_file_on_node(node, classifier)?;
        let replace = crate::bpf::classifier_filter(NODE_NIC, &on_node);
        let loaded = self.cluster().run_on_node(node, "tc", &replace.iter().map(String::as_str).collect::<Vec<_>>())?;
        match loaded.exit.as_str() {
            "exit status 0" => Ok(None),
            _ => Ok(Some(format!("`tc {}`: {}; {}", replace.join(" "), loaded.exit, loaded.stderr.trim()))),
        }
    }

    /// Puts `schedule` on `node`'s NIC as a taprio root qdisc: `None` once it is there, or
    /// tc's refusal (the kernel may lack taprio, or the NIC a transmit queue per gate), the
    /// root going back to none.
    pub fn taprio_on(&self, node: &Node, schedule: &gates::GateSchedule) -> Result<Option<String>> {
        let arguments = schedule.taprio_arguments();
        let mut replace = vec!["qdisc", "replace", "dev", NODE_NIC, "root", "handle", "100:"];
        replace.extend(arguments.iter().map(String::as_str));
        let tried = self.cluster().run_on_node(node, "tc", &replace)?;
        if tried.exit == "exit status 0" {
            return Ok(None);
        }
        let _ = self.cluster().run_on_node(node, "tc", &["qdisc", "del", "dev", NODE_NIC, "root"])?;
        Ok(Some(format!("`tc {}` on node {}: {}", replace.join(" "), node.name, tried.stderr.trim())))
    }

    /// With `schedule` on the talkers' node NIC: the node's own talker of each priority
    /// (whose priority reaches the qdisc with nothing between) draws each class's window
    /// at the external listener; then each talker pod, alone, must land in its class's.
    pub fn talkers_in_their_gate_windows(&self, talkers: &Talkers, schedule: &gates::GateSchedule) -> Result<Verdict> {
        let listener = self.external_listener()?;
        let node = &talkers.node;
        let reference_tags = PAPER_PRIORITIES
            .into_iter()
            .map(|priority| Ok((priority::class_of_priority(priority), self.talk(None, node, listener, Transport::Udp, priority)?.tag)))
            .collect::<Result<Vec<_>>>()?;
        let talker_tags = talkers
            .pods
            .iter()
            .map(|(pod, priority)| Ok((pod, *priority, self.talk(Some(pod), node, listener, Transport::Udp, *priority)?.tag)))
            .collect::<Result<Vec<_>>>()?;
        let heard = self.heard_by_listener(&talkers.pods[0].0, listener)?;
        let times = |tag: &str| heard.received_tai_ns.get(tag).cloned().unwrap_or_default();
        let reference: Vec<_> = reference_tags.iter().map(|(class, tag)| (*class, times(tag))).collect();
        let windows = gates::windows_from_reference(schedule, &reference, gates::JITTER_TOLERANCE_NS)
            .map_err(|why| HarnessError::CannotObserve { reason: format!("no gate windows to judge against on node {} {NODE_NIC}: {why}", node.name) })?;
        let nic = format!("node {} {NODE_NIC}", node.name);
        let each = talker_tags
            .iter()
            .map(|(pod, priority, tag)| {
                (
                    pod.name.clone(),
                    gates::talker_in_its_gate_window(&format!("{}/{}", pod.namespace, pod.name), *priority, TALKER_PACKETS, &times(tag), &windows, &nic),
                )
            })
            .collect();
        Ok(priority::every_talker("gate window of each talker's datagrams, as the listener received them", each))
    }

    /// What the external listener has heard so far, asked from `pod`.
    pub fn heard_by_listener(&self, pod: &Pod, listener: SocketAddr) -> Result<cni_probe::talk::Heard> {
        let url = format!("http://{listener}{}", cni_probe::talk::HEARD_PATH);
        let output = self.cluster().run_probe_in(pod, &["served".to_owned(), url.clone()])?;
        crate::provider::probe_output(&output, || format!("cni-probe served {url} in pod {}/{}", pod.namespace, pod.name))
    }

    /// The packets each class of `node`'s NIC qdisc has sent so far.
    pub fn nic_class_counters(&self, node: &Node) -> Result<BTreeMap<String, u64>> {
        let shown = self
            .cluster()
            .run_on_node(node, "tc", &["-s", "class", "show", "dev", NODE_NIC])?
            .stdout_of_success(&format!("tc -s class show dev {NODE_NIC} on node {}", node.name))?;
        Ok(priority::parse_class_counters(&shown))
    }

    /// The NIC's counters once nothing has left it for a moment: what earlier traffic sent
    /// late (a closing connection's last ACK) is counted before a talker starts, and a
    /// talker's own late segments in its own window. Waits at most `NIC_QUIET`, then reads.
    pub fn settled_class_counters(&self, node: &Node) -> Result<BTreeMap<String, u64>> {
        let budget = crate::deadline::budget(NIC_QUIET, "tsn::NIC_QUIET");
        let started = std::time::Instant::now();
        let mut last = self.nic_class_counters(node)?;
        loop {
            std::thread::sleep(std::time::Duration::from_millis(100));
            let now = self.nic_class_counters(node)?;
            if now == last || started.elapsed() >= budget.duration {
                if now != last {
                    tracing::warn!("node {} {NODE_NIC} still sending after {:?} ({}): counting from here", node.name, budget.duration, budget.name);
                }
                return Ok(now);
            }
            last = now;
        }
    }

    /// One talker in `pod` (or, with none, on `node` itself) sends to `to` with `priority`.
    pub fn talk(&self, pod: Option<&Pod>, node: &Node, to: SocketAddr, transport: Transport, priority: u32) -> Result<TalkReport> {
        self.talk_with(pod, node, to, transport, priority, &TalkExtras::default())
    }

    /// The same, with `extras` (a delivery time, interleaved datagrams).
    pub fn talk_with(&self, pod: Option<&Pod>, node: &Node, to: SocketAddr, transport: Transport, priority: u32, extras: &TalkExtras) -> Result<TalkReport> {
        let (place, name) = match pod {
            Some(pod) => (format!("pod {}/{}", pod.namespace, pod.name), pod.name.clone()),
            None => (format!("node {}", node.name), "node".to_owned()),
        };
        // Unique per talk: a listener keeps receive times per tag, across scenarios and runs.
        let tag = format!("{}-{name}-prio{priority}-{}", self.cluster().info().run_id, TALKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let options = TalkOptions {
            to,
            transport,
            priority,
            tos: None,
            count: TALKER_PACKETS,
            payload: 200,
            tag,
            txtime_delay: extras.txtime_delay,
            interleave: extras.interleave.clone(),
        };
        self.record_talk(crate::diagnostics::Talk { pod: pod.cloned(), node: node.clone(), options: options.clone() });
        let output = match pod {
            Some(pod) => self.cluster().run_probe_in(pod, &options.to_args())?,
            None => self.cluster().run_on_node(node, PROBE, &options.to_args().iter().map(String::as_str).collect::<Vec<_>>())?,
        };
        let report: TalkReport = crate::provider::probe_output(&output, || format!("cni-probe talk in {place}"))?;
        match report.error {
            Some(error) => Err(HarnessError::Command { command: format!("cni-probe talk {to} in {place}"), detail: error }),
            None => Ok(report),
        }
    }

    /// Runs one talker in `pod` (or, with none, on `node` itself) with `priority` to `to`,
    /// alone, and judges the classes its packets took at `node`'s NIC.
    pub fn talker_class_at_nic(&self, pod: Option<&Pod>, node: &Node, to: SocketAddr, transport: Transport, priority: u32) -> Result<Verdict> {
        let counted = self.counted_talk(pod, node, to, transport, priority, &TalkExtras::default())?;
        let at_least = match transport {
            Transport::Udp => counted.report.sent,
            Transport::Tcp => 1,
        };
        Ok(priority::talker_kept_its_class(&counted.talker, priority, at_least, &counted.grew, &format!("node {} {NODE_NIC}", node.name)))
    }

    /// Runs one talker alone, between two settled readings of `node`'s NIC counters.
    pub fn counted_talk(
        &self,
        pod: Option<&Pod>,
        node: &Node,
        to: SocketAddr,
        transport: Transport,
        priority: u32,
        extras: &TalkExtras,
    ) -> Result<CountedTalk> {
        let talker = match pod {
            Some(pod) => format!("{}/{}", pod.namespace, pod.name),
            None => format!("node {}", node.name),
        };
        let before = self.settled_class_counters(node)?;
        let report = self.talk_with(pod, node, to, transport, priority, extras)?;
        let after = self.settled_class_counters(node)?;
        Ok(CountedTalk { talker, report, grew: priority::growth(&before, &after) })
    }

    /// The external host's UDP listener (beside its echo, on the same port).
    pub fn external_listener(&self) -> Result<SocketAddr> {
        let url = self.cluster().external_echo_url();
        url.trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .map_err(|_| HarnessError::NotFound { what: "address".into(), wanted: format!("of the external listener in {url}") })
    }
}

/// The paper's talkers, each alone, in `pod` (or on `node` itself): priority 1, 2 and best
/// effort, every one keeping its class.
pub fn talkers_keep_their_classes(cx: &mut ScenarioContext, pod: Option<&Pod>, node: &Node, to: SocketAddr, transport: Transport) -> Result<Verdict> {
    let each: Vec<(String, Option<&Pod>, u32)> = PAPER_PRIORITIES.into_iter().map(|p| (format!("priority-{p}"), pod, p)).collect();
    cx.each_keeps_its_class(node, &each, to, transport)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use cni_probe::talk::{Heard, TalkReport, Transport};

    use crate::model::{ExecOutput, Node, NodeRole};
    use crate::provider::stand_in::stand_in_with;
    use crate::report::TrialOutcome;
    use crate::scenario::run_scenario;
    use crate::verdict::gates::{paper_schedule, GateSchedule};
    use crate::verdict::{priority, FailureReason};

    /// The taprio scenario on a stand-in whose NIC takes taprio (or refuses it), whose node
    /// talkers land in their class's gate, and whose pod talkers land in theirs only when
    /// `pods_keep_priority`: the listener's receive times, 13 us of path delay later. Gives
    /// the outcome and every `tc` command the node ran.
    fn gate_scenario(taprio_refused: bool, pods_keep_priority: bool) -> (TrialOutcome, Vec<String>) {
        let talks: Arc<Mutex<Vec<(String, u32, bool)>>> = Arc::default();
        let tc: Arc<Mutex<Vec<String>>> = Arc::default();
        let answer = |stdout: String| ExecOutput { stdout, stderr: String::new(), exit: "exit status 0".into() };
        let talked = {
            let talks = Arc::clone(&talks);
            move |args: &[String], from_node: bool| {
                let flag = |name: &str| args.iter().position(|a| a == name).map(|i| args[i + 1].clone()).unwrap();
                let (tag, priority) = (flag("--tag"), flag("--priority").parse().unwrap());
                talks.lock().unwrap().push((tag.clone(), priority, from_node));
                let report = TalkReport {
                    transport: Transport::Udp,
                    tag,
                    sent: 50,
                    bytes: 10_000,
                    priority,
                    tos: None,
                    first_txtime_ns: None,
                    interleaved: 0,
                    error: None,
                };
                serde_json::to_string(&report).unwrap()
            }
        };
        let on_node = {
            let (tc, talked) = (Arc::clone(&tc), talked.clone());
            move |_: &Node, program: &str, args: &[&str]| match program {
                "tc" => {
                    tc.lock().unwrap().push(args.join(" "));
                    match taprio_refused && args.contains(&"taprio") {
                        true => ExecOutput { stdout: String::new(), stderr: "Error: Specified qdisc kind is unknown.".into(), exit: "exit status 2".into() },
                        false => answer(String::new()),
                    }
                }
                super::PROBE => answer(talked(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>(), true)),
                other => panic!("no {other} on a stand-in node"),
            }
        };
        let in_pod = move |_: &crate::model::Pod, args: &[String]| match args[0].as_str() {
            "talk" => answer(talked(args, false)),
            "served" => {
                assert!(args[1].ends_with(cni_probe::talk::HEARD_PATH), "{args:?}");
                let schedule: GateSchedule = paper_schedule();
                let mut heard = Heard::default();
                for (tag, priority, from_node) in talks.lock().unwrap().iter() {
                    let class = if *from_node || pods_keep_priority { priority::class_of_priority(*priority) } else { priority::BEST_EFFORT };
                    let gate = schedule.gates.iter().find(|g| g.class == class).unwrap();
                    let times = (0..50u64).map(|i| 1_700_000_000_000_000_000 + i * 7 * schedule.cycle_ns + gate.open_ns + (i % 10) * 160 + 13_000).collect();
                    heard.udp.insert(tag.clone(), 50);
                    heard.received_tai_ns.insert(tag.clone(), times);
                }
                answer(serde_json::to_string(&heard).unwrap())
            }
            other => panic!("no probe {other} here"),
        };
        let worker = Node { name: "c-worker".into(), role: NodeRole::Worker, labels: Default::default(), address: "192.0.2.21".parse().unwrap() };
        let cluster: Arc<dyn crate::provider::Cluster> = Arc::new(stand_in_with(vec![worker], &[]).with_node_commands(on_node).with_probe_runs(in_pod));
        let scenario = super::all().into_iter().find(|s| s.name == "talkers_leave_in_their_taprio_gate_windows").unwrap();
        let outcome = run_scenario(&cluster, &scenario, &crate::Timeouts::default(), "t1");
        let commands = tc.lock().unwrap().clone();
        (outcome, commands)
    }

    #[test]
    fn talkers_that_keep_their_priority_leave_in_their_gate_windows_and_the_nic_is_left_bare() {
        let (outcome, tc) = gate_scenario(false, true);
        assert!(matches!(&outcome, TrialOutcome::Passed(v) if v.expected.role == "talker-1 class-1, talker-2 class-2, best-effort best-effort"), "{outcome:?}");
        assert!(tc[0].contains(&paper_schedule().taprio_arguments().join(" ")), "the paper's schedule goes on eth0: {tc:?}");
        assert_eq!(tc.last().unwrap(), "qdisc del dev eth0 root", "taprio comes off after the talk: {tc:?}");
    }

    #[test]
    fn pod_talkers_whose_priority_is_lost_on_the_way_leave_in_best_effort_s_window() {
        let (outcome, tc) = gate_scenario(false, false);
        let TrialOutcome::Failed(verdict) = &outcome else { panic!("{outcome:?}") };
        assert_eq!(
            (verdict.reason, verdict.observed.role.as_str()),
            (Some(FailureReason::OutsideGateWindow), "talker-1 best-effort, talker-2 best-effort, best-effort best-effort")
        );
        assert!(verdict.message().contains("class-1: 0, class-2: 0, best-effort: 50"), "{}", verdict.message());
        assert_eq!(tc.last().unwrap(), "qdisc del dev eth0 root", "taprio comes off after a failure too: {tc:?}");
    }

    #[test]
    fn a_nic_that_refuses_taprio_ignores_the_scenario_with_tc_s_words() {
        let (outcome, _) = gate_scenario(true, true);
        assert!(
            matches!(&outcome, TrialOutcome::Ignored(reason) if reason.contains("no taprio qdisc with the paper's schedule") && reason.contains("Specified qdisc kind is unknown")),
            "{outcome:?}"
        );
    }
    #[test]
    fn the_classifier_counts_packets_to_the_port_every_listener_uses() {
        let source = std::fs::read_to_string(crate::workspace_root().join("bpf/tsn_classify.c")).unwrap();
        assert!(source.contains(&format!("#define TALKER_PORT {}", crate::model::POD_PORT)), "bpf/tsn_classify.c and model::POD_PORT disagree");
        assert_eq!(crate::provider::external::ECHO_PORT, crate::model::POD_PORT, "the external listener shares the port");
        assert!(
            source.contains(&format!("#define DELAY_NS {}ull", super::DELIVERY_DELAY.as_nanos())),
            "bpf/tsn_classify.c's DELAY_NS and DELIVERY_DELAY disagree"
        );
    }
}
