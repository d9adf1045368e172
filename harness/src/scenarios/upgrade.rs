//! Upgrade gating: a CNI replaced in place under running pods (the suite's pair: the
//! cluster's profile, then the one it upgrades to) must CHECK, DEL and reach what the
//! previous version made, and hand out no address twice; after a rollback, the same the
//! other way round.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cni_probe::hold::HOLD_PORT;

use crate::cni::Feature;
use crate::error::Result;
use crate::model::{labels, Node, Pod};
use crate::scenario::{Scenario, ScenarioContext};
use crate::verdict::{upgrade, Verdict};

/// How long each connection is held: the upgrade starts half a second in.
const HELD_FOR: Duration = Duration::from_secs(3);
const BUDGETS: &str = "budgets/upgrade.yaml";

pub fn all() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "long_lived_connections_stay_open_through_the_upgrade",
            sentence: "TCP connections opened before the CNI is upgraded in place (pod to pod on one node, pod to pod across nodes, pod to the external host) stay open through it: none reset, none without an echo for longer than the budget.",
            requires: &[Feature::InPlaceUpgrade],
            disruptive: true,
            body: long_lived_connections_stay_open,
        },
        Scenario {
            name: "check_by_the_new_version_passes_on_every_pod_the_old_version_made",
            sentence: "After the CNI is upgraded in place, CNI CHECK by the new version succeeds on every pod the old version made, on each node.",
            requires: &[Feature::InPlaceUpgrade],
            disruptive: true,
            body: check_by_the_new_version_passes_on_old_pods,
        },
        Scenario {
            name: "del_by_the_new_version_leaves_nothing_of_a_pod_the_old_version_made",
            sentence: "After the upgrade, deleting a pod the old version made (CNI DEL by the new version) succeeds and leaves its node as before the pod: links, addresses, routes, rules, iptables and nft, qdiscs, IPAM files and BPF pins.",
            requires: &[Feature::InPlaceUpgrade],
            disruptive: true,
            body: del_by_the_new_version_leaves_nothing,
        },
        Scenario {
            name: "old_and_new_pods_reach_each_other_with_addresses_of_their_own",
            sentence: "After the upgrade, pods the new version makes and pods the old version made reach each other both ways, on one node and across nodes, and no new pod is handed an address another pod of the cluster holds.",
            requires: &[Feature::InPlaceUpgrade],
            disruptive: true,
            body: old_and_new_pods_reach_each_other,
        },
        Scenario {
            name: "after_a_rollback_the_old_version_checks_deletes_and_reaches_the_new_version_s_pods",
            sentence: "After an upgrade and a rollback, CNI CHECK by the old version succeeds on the pods the new version made, they reach the pods made before the upgrade both ways with addresses of their own, and DEL by the old version of one of them leaves its node as before it.",
            requires: &[Feature::InPlaceUpgrade],
            disruptive: true,
            body: after_a_rollback,
        },
    ]
}

fn long_lived_connections_stay_open(cx: &mut ScenarioContext) -> Result<Verdict> {
    let budget = Duration::from_secs_f64(crate::fixtures::load_upgrade_budgets(&crate::fixtures::fixture_path(BUDGETS))?.longest_gap_seconds);
    let namespace = cx.namespace("upgrade", labels([]))?;
    let node = cx.a_worker()?;
    let other = cx.a_node_other_than(&node)?;
    let client = cx.pod(&namespace, "client", labels([("app", "client")]), &node)?;
    let beside = cx.pod(&namespace, "beside", labels([("app", "server")]), &node)?;
    let across = cx.pod(&namespace, "across", labels([("app", "server")]), &other)?;
    let external = cx.external_listener()?.ip();
    let hold = |address| SocketAddr::new(address, HOLD_PORT);
    let holds = [("pod-to-pod-on-one-node", &client, hold(beside.address)), ("pod-to-pod-across-nodes", &client, hold(across.address)), ("pod-to-the-external-host", &client, hold(external))];
    let (held, pair) = cx.hold_connections_while(&holds, HELD_FOR, |cx| cx.upgrade_cni())?;
    Ok(upgrade::connections_held(&pair.to.name, &pair.from.name, &held, budget))
}

fn check_by_the_new_version_passes_on_old_pods(cx: &mut ScenarioContext) -> Result<Verdict> {
    let (namespace, node, other) = on_two_nodes(cx)?;
    let old = two_pods(cx, &namespace, "old", &node, &other)?;
    let pair = cx.upgrade_cni()?;
    Ok(upgrade::every_pod_checks(&pair.to.name, &pair.from.name, &checks_of(cx, &old)))
}

fn del_by_the_new_version_leaves_nothing(cx: &mut ScenarioContext) -> Result<Verdict> {
    let namespace = cx.namespace("upgrade", labels([]))?;
    let node = cx.a_worker()?;
    // What the node's first pod makes for every pod (a bridge) is there before the count.
    cx.pod(&namespace, "already-there", labels([("app", "old")]), &node)?;
    let before = cx.cluster().node_state(&node)?;
    let old = cx.pod(&namespace, "old", labels([("app", "old")]), &node)?;
    let pair = cx.upgrade_cni()?;
    let deleted = cx.cluster().delete_pod(&old).err().map(|e| e.to_string());
    let leftovers = settled_node_changes(cx, &node, &before)?;
    Ok(upgrade::del_leaves_nothing(&pod_name(&old), &node.name, &pair.to.name, &pair.from.name, deleted.as_deref(), &leftovers))
}

fn old_and_new_pods_reach_each_other(cx: &mut ScenarioContext) -> Result<Verdict> {
    let (namespace, node, other) = on_two_nodes(cx)?;
    let old = two_pods(cx, &namespace, "old", &node, &other)?;
    let pair = cx.upgrade_cni()?;
    let new = two_pods(cx, &namespace, "new", &node, &other)?;
    reach_both_ways(cx, &pair.to.name, &pair.from.name, &old, &new)
}

fn after_a_rollback(cx: &mut ScenarioContext) -> Result<Verdict> {
    let (namespace, node, other) = on_two_nodes(cx)?;
    let old = two_pods(cx, &namespace, "old", &node, &other)?;
    let pair = cx.upgrade_cni()?;
    let new = two_pods(cx, &namespace, "new", &node, &other)?;
    let before = cx.cluster().node_state(&node)?;
    let spare = cx.pod(&namespace, "new-3", labels([("app", "new")]), &node)?;
    cx.roll_back_cni()?;
    let checked = upgrade::every_pod_checks(&pair.from.name, &pair.to.name, &checks_of(cx, &new));
    let reached = reach_both_ways(cx, &pair.to.name, &pair.from.name, &old, &new)?;
    let deleted = cx.cluster().delete_pod(&spare).err().map(|e| e.to_string());
    let leftovers = settled_node_changes(cx, &node, &before)?;
    let deletion = upgrade::del_leaves_nothing(&pod_name(&spare), &node.name, &pair.from.name, &pair.to.name, deleted.as_deref(), &leftovers);
    Ok(crate::verdict::budget::all_of([checked, reached, deletion]))
}

/// A namespace of the trial's, a worker and another node.
fn on_two_nodes(cx: &mut ScenarioContext) -> Result<(String, Node, Node)> {
    let namespace = cx.namespace("upgrade", labels([]))?;
    let node = cx.a_worker()?;
    let other = cx.a_node_other_than(&node)?;
    Ok((namespace, node, other))
}

/// Pods `<role>-1` on `node` and `<role>-2` on `other`, labelled `app: <role>`.
fn two_pods(cx: &mut ScenarioContext, namespace: &str, role: &str, node: &Node, other: &Node) -> Result<[Pod; 2]> {
    Ok([cx.pod(namespace, &format!("{role}-1"), labels([("app", role)]), node)?, cx.pod(namespace, &format!("{role}-2"), labels([("app", role)]), other)?])
}

fn checks_of(cx: &ScenarioContext, pods: &[Pod]) -> Vec<(String, Option<String>)> {
    pods.iter().map(|pod| (pod_name(pod), cx.cluster().check_pod_network(pod).err().map(|e| e.to_string()))).collect()
}

/// Requests between `old` pods (made by `old_version`) and `new` ones (by `new_version`),
/// both ways, and the new pods' addresses against every other pod's.
fn reach_both_ways(cx: &ScenarioContext, new_version: &str, old_version: &str, old: &[Pod], new: &[Pod]) -> Result<Verdict> {
    let mut requests = Vec::new();
    for o in old {
        for n in new {
            requests.push((pod_name(o), pod_name(n), cx.request_pod(o, n)?));
            requests.push((pod_name(n), pod_name(o), cx.request_pod(n, o)?));
        }
    }
    // The new pods' addresses against every pod's, not only this trial's: an IPAM that
    // forgot the old version's reservations hands out the oldest first.
    let mut addresses: Vec<_> = cx.cluster().pods()?.iter().filter(|pod| !new.contains(pod)).map(|pod| (pod_name(pod), pod.address)).collect();
    addresses.extend(new.iter().map(|pod| (pod_name(pod), pod.address)));
    Ok(upgrade::versions_reach_each_other(new_version, old_version, &requests, &addresses))
}

fn pod_name(pod: &Pod) -> String {
    format!("{}/{}", pod.namespace, pod.name)
}

/// How long a node may take to show a deleted pod gone (the lab deletes its links at once;
/// a cluster's agents may take a moment): the node is read until it matches or this ran out.
const NODE_SETTLES: Duration = Duration::from_secs(3);

/// What `node` gained or lost since `before`, once it matches or [`NODE_SETTLES`] ran out
/// (then said in the last line).
fn settled_node_changes(cx: &ScenarioContext, node: &Node, before: &BTreeSet<String>) -> Result<Vec<String>> {
    let deadline = Instant::now() + NODE_SETTLES;
    loop {
        let changes = crate::spec::rules::changes(before, &cx.cluster().node_state(node)?);
        if changes.is_empty() || Instant::now() >= deadline {
            let mut changes = changes;
            if !changes.is_empty() {
                changes.push(format!("still so after {} s", NODE_SETTLES.as_secs()));
            }
            return Ok(changes);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
