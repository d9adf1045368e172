//! A priority trace of one talker (TSN): its packets sent again while the priority map's
//! classes count them at each hop with a qdisc the harness can read (leaving the pod
//! through its `eth0`, leaving the node through its NIC). The class a packet is counted
//! in is the priority it carried there, so the first hop whose class is not the talker's
//! is where its priority was lost: without the proxy's restore, the packets leave the pod
//! with their priority and reach the NIC with none (best effort).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::Talk;
use crate::error::{HarnessError, Result};
use crate::provider::Cluster;
use crate::tools::NODE_NIC;
use crate::verdict::priority::{self, TrafficClass};

/// A pod's interface, as the CNI names it.
const POD_NIC: &str = "eth0";
/// Time for the replay's last packets to be counted.
const SETTLE: Duration = Duration::from_millis(300);

/// What one hop's classes counted of the replay, or why they could not be read.
#[derive(Debug, Clone)]
pub struct HopClasses {
    /// "pod prod/web eth0 (leaving the pod)", "node worker eth0 (the NIC)".
    pub place: String,
    pub grew: std::result::Result<BTreeMap<String, u64>, String>,
}

/// A talker's trace: its hops in path order, and where its priority was lost.
#[derive(Debug, Clone)]
pub struct PriorityTrace {
    pub talker: String,
    pub priority: u32,
    pub sent: String,
    pub hops: Vec<HopClasses>,
}

/// The priority a class stands for, as a reader says it.
fn priority_of(class: TrafficClass) -> &'static str {
    match class.id {
        "1:1" => "priority 1",
        "1:2" => "priority 2",
        _ => "priority 0 (best effort)",
    }
}

impl PriorityTrace {
    /// Where the priority was lost: the first hop where any packet of the replay was
    /// counted in a talker class other than the talker's (even one of fifty), and the hop
    /// before it where every packet still was; or that every hop kept it.
    pub fn conclusion(&self) -> String {
        let expected = priority::class_of_priority(self.priority);
        let mut kept_at: Option<&str> = None;
        for hop in &self.hops {
            let Ok(grew) = &hop.grew else { continue };
            let count = |class: TrafficClass| grew.get(class.id).copied().unwrap_or(0);
            let elsewhere: Vec<(TrafficClass, u64)> =
                priority::IPV4_CLASSES.into_iter().filter(|class| *class != expected).map(|class| (class, count(class))).filter(|(_, n)| *n > 0).collect();
            if !elsewhere.is_empty() {
                let between = kept_at.map(|before| format!(" between {before} and {}", hop.place)).unwrap_or_default();
                let counted = elsewhere
                    .iter()
                    .map(|(class, n)| format!("{n} packet(s) reached {} as {} ({}, {})", hop.place, class.role, class.id, priority_of(*class)))
                    .collect::<Vec<_>>()
                    .join(" and ");
                let still = match count(expected) {
                    0 => String::new(),
                    n => format!("; {n} still as {}", expected.role),
                };
                // A best-effort talker has no priority to lose: its packets were lifted.
                let changed = match expected == priority::BEST_EFFORT {
                    true => "the packets were lifted out of best effort",
                    false => "the priority was lost",
                };
                return format!("{changed}{between}: {counted}, not {} ({}, {}){still}", expected.role, expected.id, priority_of(expected));
            }
            match count(expected) {
                0 => return format!("no packet of the replay was counted at {}: it never got there", hop.place),
                _ => kept_at = Some(&hop.place),
            }
        }
        match kept_at {
            Some(last) => format!("every hop read counted them as {} ({}): the priority was kept up to {last}", expected.role, priority_of(expected)),
            None => "no hop could be read".to_owned(),
        }
    }

    pub fn render(&self) -> String {
        let mut out = format!(
            "talker: {} with SO_PRIORITY {} ({}), sent again: {}\nclasses of the priority map (1:1 priority 1, 1:2 priority 2, 1:3 best effort, 1:4 not a talker's), counted at each hop in path order:\n",
            self.talker,
            self.priority,
            priority::class_of_priority(self.priority).role,
            self.sent
        );
        for hop in &self.hops {
            match &hop.grew {
                Ok(grew) => {
                    let counted: Vec<String> = grew.iter().filter(|(_, n)| **n > 0).map(|(id, n)| format!("{id} +{n}")).collect();
                    out.push_str(&format!("  {:<48} {}\n", hop.place, if counted.is_empty() { "nothing".to_owned() } else { counted.join(", ") }));
                }
                Err(why) => out.push_str(&format!("  {:<48} not read: {why}\n", hop.place)),
            }
        }
        out.push_str(&format!("\n{}\n", self.conclusion()));
        out
    }
}

/// Sends `talk` again and counts its packets in the priority map's classes leaving the
/// pod (classes put on the pod's `eth0` for the replay, then removed) and at its node's
/// NIC (the classes the trial put there).
pub fn trace(cluster: &Arc<dyn Cluster>, talk: &Talk) -> Result<PriorityTrace> {
    let node = &talk.node;
    let nic_place = format!("node {} {NODE_NIC} (the NIC)", node.name);
    let nic_counters = || -> std::result::Result<BTreeMap<String, u64>, String> {
        let shown = cluster
            .run_on_node(node, "tc", &["-s", "class", "show", "dev", NODE_NIC])
            .and_then(|o| o.stdout_of_success(&format!("tc -s class show dev {NODE_NIC} on node {}", node.name)))
            .map_err(|e| e.to_string())?;
        let counters = priority::parse_class_counters(&shown);
        if counters.is_empty() {
            return Err(format!("no priority classes on {NODE_NIC}: {}", shown.trim()));
        }
        Ok(counters)
    };
    let pod_place = talk.pod.as_ref().map(|pod| format!("pod {}/{} {POD_NIC} (leaving the pod)", pod.namespace, pod.name));
    let pod_counters = |pod: &crate::model::Pod| -> std::result::Result<BTreeMap<String, u64>, String> {
        let shown = cluster
            .run_in_pod(pod, "tc", &["-s", "class", "show", "dev", POD_NIC])
            .and_then(|o| o.stdout_of_success(&format!("tc -s class show dev {POD_NIC} in pod {}/{}", pod.namespace, pod.name)))
            .map_err(|e| e.to_string())?;
        Ok(priority::parse_class_counters(&shown))
    };
    // The pod's own hop: the same classes and classifier on its eth0, for the replay only.
    let pod_ready = talk.pod.as_ref().map(|pod| classes_in_pod(cluster.as_ref(), node, pod).map_err(|e| e.to_string()));
    let pod_before = talk.pod.as_ref().zip(pod_ready.clone()).map(|(pod, ready)| ready.and_then(|()| pod_counters(pod)));
    let nic_before = nic_counters();
    let options = cni_probe::talk::TalkOptions { tag: format!("{}-traced", talk.options.tag), ..talk.options.clone() };
    let args = options.to_args();
    let output = match &talk.pod {
        Some(pod) => cluster.run_probe_in(pod, &args),
        None => cluster.run_on_node(node, crate::tools::PROBE, &args.iter().map(String::as_str).collect::<Vec<_>>()),
    };
    let sent = match output {
        Ok(output) => match serde_json::from_str::<cni_probe::talk::TalkReport>(output.stdout.trim()) {
            Ok(report) => match report.error {
                Some(error) => format!("{} sent, then: {error}", report.sent),
                None => format!("{} {} packet(s) to {}", report.sent, format!("{:?}", options.transport).to_uppercase(), options.to),
            },
            Err(_) => format!("no report: {}; {}", output.exit, output.stderr.trim()),
        },
        Err(e) => format!("not sent: {e}"),
    };
    std::thread::sleep(SETTLE);
    let mut hops = Vec::new();
    if let (Some(pod), Some(place), Some(before)) = (&talk.pod, pod_place, pod_before) {
        let grew = before.and_then(|before| pod_counters(pod).map(|after| priority::growth(&before, &after)));
        hops.push(HopClasses { place, grew });
        if let Err(e) = cluster.run_in_pod(pod, "tc", &["qdisc", "del", "dev", POD_NIC, "root"]) {
            tracing::warn!("the replay's classes stay on pod {}/{} {POD_NIC}: {e}", pod.namespace, pod.name);
        }
    }
    hops.push(HopClasses { place: nic_place, grew: nic_before.and_then(|before| nic_counters().map(|after| priority::growth(&before, &after))) });
    let talker = match &talk.pod {
        Some(pod) => format!("pod {}/{} on node {}", pod.namespace, pod.name, node.name),
        None => format!("node {} itself", node.name),
    };
    Ok(PriorityTrace { talker, priority: options.priority, sent, hops })
}

/// Puts the priority map's classes and classifier on the pod's `eth0`, with the node's
/// `tc` in the pod's network (the lab's pods run the host's; on kind through the node, the
/// classifier's object copied onto the node first).
fn classes_in_pod(cluster: &dyn Cluster, node: &crate::model::Node, pod: &crate::model::Pod) -> Result<()> {
    let classifier = cluster.put_file_on_node(node, &crate::bpf::object("tsn_classify")?)?;
    let (root, classes) = crate::bpf::priority_classes(POD_NIC);
    let filter = crate::bpf::classifier_filter(POD_NIC, &classifier);
    for args in std::iter::once(&root).chain(&classes).chain(std::iter::once(&filter)) {
        let words: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = cluster.run_in_pod(pod, "tc", &words)?;
        if output.exit != "exit status 0" {
            return Err(HarnessError::Command {
                command: format!("tc {} in pod {}/{}", args.join(" "), pod.namespace, pod.name),
                detail: format!("{}; {}", output.exit, output.stderr.trim()),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(place: &str, counts: &[(&str, u64)]) -> HopClasses {
        HopClasses { place: place.into(), grew: Ok(counts.iter().map(|(id, n)| ((*id).to_owned(), *n)).collect()) }
    }

    #[test]
    fn the_first_hop_in_another_class_is_where_the_priority_was_lost() {
        let lost = PriorityTrace {
            talker: "pod tsn/talker".into(),
            priority: 1,
            sent: "50".into(),
            hops: vec![hop("pod tsn/talker eth0 (leaving the pod)", &[("1:1", 50), ("1:4", 2)]), hop("node w1 eth0 (the NIC)", &[("1:3", 50), ("1:4", 9)])],
        };
        assert_eq!(lost.conclusion(), "the priority was lost between pod tsn/talker eth0 (leaving the pod) and node w1 eth0 (the NIC): 50 packet(s) reached node w1 eth0 (the NIC) as best-effort (1:3, priority 0 (best effort)), not class-1 (1:1, priority 1)");
        let kept = PriorityTrace { hops: vec![hop("pod a eth0", &[("1:1", 50)]), hop("node w1 eth0", &[("1:1", 50), ("1:4", 3)])], ..lost.clone() };
        assert!(kept.conclusion().starts_with("every hop read counted them as class-1 (priority 1)"), "{}", kept.conclusion());
        // One packet of fifty in another class is a lost priority, never "kept".
        let one_lost = PriorityTrace { hops: vec![hop("pod a eth0", &[("1:1", 50)]), hop("node w1 eth0", &[("1:1", 49), ("1:3", 1)])], ..lost.clone() };
        assert_eq!(one_lost.conclusion(), "the priority was lost between pod a eth0 and node w1 eth0: 1 packet(s) reached node w1 eth0 as best-effort (1:3, priority 0 (best effort)), not class-1 (1:1, priority 1); 49 still as class-1");
        let unread_pod = PriorityTrace {
            hops: vec![
                HopClasses { place: "pod a eth0".into(), grew: Err("this provider's pods have only the probe".into()) },
                hop("node w1 eth0", &[("1:2", 50)]),
            ],
            ..lost.clone()
        };
        assert!(unread_pod.conclusion().starts_with("the priority was lost: 50 packet(s) reached node w1 eth0 as class-2"), "{}", unread_pod.conclusion());
        assert!(unread_pod.render().contains("not read: this provider's pods have only the probe"));
        // A best-effort talker's packets that reach the NIC in a priority class were lifted.
        let lifted = PriorityTrace {
            priority: 0,
            hops: vec![hop("pod a eth0", &[("1:3", 50), ("1:4", 100)]), hop("node w1 eth0", &[("1:1", 47), ("1:3", 3)])],
            ..lost.clone()
        };
        assert_eq!(lifted.conclusion(), "the packets were lifted out of best effort between pod a eth0 and node w1 eth0: 47 packet(s) reached node w1 eth0 as class-1 (1:1, priority 1), not best-effort (1:3, priority 0 (best effort)); 3 still as best-effort");
        let nowhere = PriorityTrace { hops: vec![hop("pod a eth0", &[("1:4", 3)])], ..lost };
        assert!(nowhere.conclusion().contains("never got there"), "{}", nowhere.conclusion());
    }
}
