//! TSN priority preservation (the metadata-proxy paper): a time-sensitive pod's
//! `SO_PRIORITY` must reach the node NIC's qdisc, where the paper's priority map puts
//! priority 1 and 2 in classes of their own and the rest in best effort. The operations
//! here are built on the cluster's node primitive: an HTB qdisc with a BPF classifier on
//! the node's NIC (this kernel has no taprio or mqprio), and its per-class counters.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use cni_probe::talk::{TalkOptions, TalkReport, Transport};

use crate::error::{HarnessError, Result};
use crate::model::{Node, Pod};
use crate::scenario::ScenarioContext;
use crate::verdict::{budget, priority, Verdict};

/// The node's NIC, as the lab's and kind's nodes name it.
pub const NODE_NIC: &str = "eth0";

/// The probe's name as a node command (the lab has it on every node).
pub const PROBE: &str = "cni-probe";

/// Packets each talker sends.
const TALKER_PACKETS: u64 = 50;

impl ScenarioContext {
    /// Puts the paper's priority map on `node`'s NIC: HTB classes 1:1 (priority 1), 1:2
    /// (priority 2), 1:3 (best effort) and 1:4 (not IPv4), chosen by `bpf/tsn_classify.c`.
    /// Idempotent.
    pub fn tsn_qdisc_on(&self, node: &Node) -> Result<()> {
        let classifier = crate::bpf::object("tsn_classify")?;
        let classifier = classifier.display().to_string();
        let tc = |args: &[&str]| -> Result<()> {
            self.cluster().run_on_node(node, "tc", args)?.stdout_of_success(&format!("tc {} on node {}", args.join(" "), node.name)).map(drop)
        };
        tc(&["qdisc", "replace", "dev", NODE_NIC, "root", "handle", "1:", "htb", "default", "3"])?;
        for minor in 1..=4 {
            tc(&["class", "replace", "dev", NODE_NIC, "parent", "1:", "classid", &format!("1:{minor}"), "htb", "rate", "10gbit", "quantum", "60000"])?;
        }
        tc(&["filter", "replace", "dev", NODE_NIC, "parent", "1:", "prio", "1", "handle", "1", "bpf", "obj", &classifier, "sec", "classifier"])
    }

    /// The packets each class of `node`'s NIC qdisc has sent so far.
    pub fn nic_class_counters(&self, node: &Node) -> Result<BTreeMap<String, u64>> {
        let shown = self.cluster().run_on_node(node, "tc", &["-s", "class", "show", "dev", NODE_NIC])?.stdout_of_success(&format!("tc -s class show dev {NODE_NIC} on node {}", node.name))?;
        Ok(priority::parse_class_counters(&shown))
    }

    /// Runs one talker in `pod` (or, with none, on `node` itself) with `priority` to `to`,
    /// alone, and judges the classes its packets took at `node`'s NIC.
    pub fn talker_class_at_nic(&self, pod: Option<&Pod>, node: &Node, to: SocketAddr, transport: Transport, priority: u32) -> Result<Verdict> {
        let (place, name) = match pod {
            Some(pod) => (format!("pod {}/{}", pod.namespace, pod.name), pod.name.clone()),
            None => (format!("node {}", node.name), "node".to_owned()),
        };
        let tag = format!("{name}-prio{priority}");
        let options = TalkOptions { to, transport, priority, tos: None, count: TALKER_PACKETS, payload: 200, tag: tag.clone() };
        let before = self.nic_class_counters(node)?;
        let output = match pod {
            Some(pod) => self.cluster().run_probe_in(pod, &options.to_args())?,
            None => self.cluster().run_on_node(node, PROBE, &options.to_args().iter().map(String::as_str).collect::<Vec<_>>())?,
        };
        let report: TalkReport = crate::provider::probe_output(&output, || format!("cni-probe talk in {place}"))?;
        if let Some(error) = report.error {
            return Err(HarnessError::Command { command: format!("cni-probe talk {to} in {place}"), detail: error });
        }
        let after = self.nic_class_counters(node)?;
        let at_least = match transport {
            Transport::Udp => report.sent,
            Transport::Tcp => 1,
        };
        Ok(priority::talker_kept_its_class(&format!("{tag} in {place}"), priority, at_least, &priority::growth(&before, &after), &format!("node {} {NODE_NIC}", node.name)))
    }

    /// The external host's UDP listener (beside its echo, on the same port).
    pub fn external_listener(&self) -> Result<SocketAddr> {
        let url = self.cluster().external_echo_url();
        url.trim_start_matches("http://").trim_end_matches('/').parse().map_err(|_| HarnessError::NotFound { what: "address".into(), wanted: format!("of the external listener in {url}") })
    }
}

/// The paper's talkers: priority 1 and 2, and best effort beside them, each alone, in
/// `pod` (or on `node` itself).
pub fn talkers_keep_their_classes(cx: &mut ScenarioContext, pod: Option<&Pod>, node: &Node, to: SocketAddr, transport: Transport) -> Result<Verdict> {
    cx.tsn_qdisc_on(node)?;
    let verdicts = [1, 2, 0].into_iter().map(|p| cx.talker_class_at_nic(pod, node, to, transport, p)).collect::<Result<Vec<_>>>()?;
    Ok(budget::all_of(verdicts))
}
