//! Upgrade gating: a CNI replaced in place under running pods (the suite's pair: the
//! cluster's profile, then the one it upgrades to) must CHECK, DEL and reach what the
//! previous version made, and hand out no address twice; after a rollback, the same the
//! other way round.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use cni_probe::hold::HOLD_PORT;

use crate::cni::Feature;
use crate::error::Result;
use crate::model::{labels, HostPort, Node, Pod};
use crate::scenario::{Scenario, ScenarioContext};
use crate::scenarios::egress::PROD_WEB_EGRESS;
use crate::verdict::{upgrade, Verdict};

const BUDGETS: &str = "budgets/upgrade.yaml";

pub fn all() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "long_lived_connections_stay_open_through_the_upgrade",
            sentence: "TCP connections opened before the CNI is upgraded in place (pod to pod on one node, pod to pod across nodes, pod to the external host, and the external host to a pod through a LoadBalancer Service) stay open through it: none reset, none without an echo for longer than the budget.",
            requires: &[Feature::InPlaceUpgrade, Feature::LoadBalancerService],
            disruptive: true,
            body: long_lived_connections_stay_open,
        },
        Scenario {
            name: "a_connection_through_a_host_port_stays_open_through_the_upgrade",
            sentence: "A TCP connection the external host opened to a pod through its node's address and the pod's hostPort before the CNI is upgraded in place stays open through it: not reset, never without an echo for longer than the budget.",
            requires: &[Feature::InPlaceUpgrade, Feature::HostPort],
            disruptive: true,
            body: a_connection_through_a_host_port_stays_open,
        },
        Scenario {
            name: "egress_sources_hold_through_the_upgrade",
            sentence: "While the CNI is upgraded in place, a pod the egress policy selects is seen outside with the egress IP and one beside it that the policy does not select with its node's IP, in every sample before, during and after the switch, and a connection through the egress gateway stays open.",
            requires: &[Feature::InPlaceUpgrade, Feature::EgressGateway],
            disruptive: true,
            body: egress_sources_hold_through_the_upgrade,
        },
        Scenario {
            name: "canary_weights_are_honoured_right_after_the_upgrade",
            sentence: "A canary route at its early stage (25 % to the new version), live before the CNI is upgraded in place, is honoured right after the upgrade, judged as every canary stage is.",
            requires: &[Feature::InPlaceUpgrade, Feature::GatewayWeights],
            disruptive: true,
            body: canary_weights_are_honoured_right_after_the_upgrade,
        },
        Scenario {
            name: "pod_start_up_and_latency_do_not_regress_in_the_upgrade",
            sentence: "A pod's network start-up time and request/response latency between pods on two nodes, measured under the old and the new version in alternating blocks of one run, are not significantly worse under the new version (the regression test of `cargo xtask compare`).",
            requires: &[Feature::InPlaceUpgrade],
            disruptive: true,
            body: pod_start_up_and_latency_do_not_regress,
        },
        Scenario {
            name: "check_by_the_new_version_passes_on_every_pod_the_old_version_made",
            sentence: "After the CNI is upgraded in place, CNI CHECK by the new version succeeds on every pod the old version made, on each node.",
            requires: &[Feature::InPlaceUpgrade, Feature::RuntimeCniCalls],
            disruptive: true,
            body: check_by_the_new_version_passes_on_old_pods,
        },
        Scenario {
            name: "check_by_the_new_version_passes_on_every_pod_with_a_host_port_the_old_version_made",
            sentence: "After the CNI is upgraded in place, CNI CHECK by the new version succeeds on pods with a hostPort that the old version made, on each node: their port mappings as the new version finds them.",
            requires: &[Feature::InPlaceUpgrade, Feature::RuntimeCniCalls, Feature::HostPort],
            disruptive: true,
            body: check_by_the_new_version_passes_on_old_host_ports,
        },
        Scenario {
            name: "del_by_the_new_version_leaves_nothing_of_a_pod_the_old_version_made",
            sentence: "After the upgrade, deleting a pod the old version made (CNI DEL by the new version) succeeds and leaves its node as before the pod: links, addresses, routes, rules, iptables and nft, qdiscs, IPAM files and BPF pins.",
            requires: &[Feature::InPlaceUpgrade, Feature::RuntimeCniCalls],
            disruptive: true,
            body: del_by_the_new_version_leaves_nothing,
        },
        Scenario {
            name: "del_by_the_new_version_removes_the_host_port_of_a_pod_the_old_version_made",
            sentence: "After the upgrade, deleting a pod with a hostPort that the old version made (CNI DEL by the new version) succeeds and leaves its node as before the pod: its port mapping's rules gone with the rest.",
            requires: &[Feature::InPlaceUpgrade, Feature::RuntimeCniCalls, Feature::HostPort],
            disruptive: true,
            body: del_by_the_new_version_removes_an_old_host_port,
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
            requires: &[Feature::InPlaceUpgrade, Feature::RuntimeCniCalls],
            disruptive: true,
            body: after_a_rollback,
        },
    ]
}

fn long_lived_connections_stay_open(cx: &mut ScenarioContext) -> Result<Verdict> {
    let budget = upgrade_budgets()?.longest_gap();
    let namespace = cx.namespace("upgrade", labels([]))?;
    let node = cx.a_worker()?;
    let other = cx.a_node_other_than(&node)?;
    let client = cx.pod(&namespace, "client", labels([("app", "client")]), &node)?;
    let beside = cx.pod(&namespace, "beside", labels([("app", "server")]), &node)?;
    let across = cx.pod(&namespace, "across", labels([("app", "server"), ("held", "behind-a-service")]), &other)?;
    let external = cx.external_listener()?.ip();
    let service = cx.load_balancer_service_to_the_hold_echo(&namespace, "held", labels([("held", "behind-a-service")]))?;
    let hold = |address| SocketAddr::new(address, HOLD_PORT);
    let holds = [
        ("pod-to-pod-on-one-node", Some(&client), hold(beside.address)),
        ("pod-to-pod-across-nodes", Some(&client), hold(across.address)),
        ("pod-to-the-external-host", Some(&client), hold(external)),
        ("external-host-to-a-pod-through-a-load-balancer-service", None, service),
    ];
    held_through_the_upgrade(cx, &holds, budget)
}

/// Holds `holds` as long as the upgrade's hold with nothing upgraded (the control: the path
/// under the old version keeps them), then again while the CNI is upgraded; the verdict
/// across the upgrade, ruled by the control.
fn held_through_the_upgrade(cx: &mut ScenarioContext, holds: &[(&str, Option<&Pod>, SocketAddr)], budget: Duration) -> Result<Verdict> {
    let from = cx.upgrade_pair()?.from.name.clone();
    let (control, ()) = cx.hold_connections_while(holds, cx.timeouts().upgrade_hold, |_| Ok(()))?;
    cx.prepare_upgrade()?;
    let (held, pair) = cx.hold_connections_while(holds, cx.timeouts().upgrade_hold, |cx| cx.upgrade_cni())?;
    let across = upgrade::connections_held(&pair.to.name, &pair.from.name, &held, budget);
    Ok(upgrade::ruled_by_control(across, &from, upgrade::Control::NothingUpgraded, &upgrade::connections_held_with_nothing_upgraded(&from, &control, budget)))
}

/// The hostPort the upgrade scenarios give a pod's hold echo on its node (and the one
/// beside it, for the pod already on the node).
const HOLD_HOST_PORT: u16 = 18090;

fn a_connection_through_a_host_port_stays_open(cx: &mut ScenarioContext) -> Result<Verdict> {
    let budget = upgrade_budgets()?.longest_gap();
    let namespace = cx.namespace("upgrade", labels([]))?;
    let node = cx.a_worker()?;
    let host_port = HostPort { host: HOLD_HOST_PORT, container: HOLD_PORT };
    cx.pod_reached_through(&namespace, "behind-a-host-port", labels([("app", "server")]), &node, &[host_port])?;
    let holds = [("external-host-to-a-pod-through-a-host-port", None, SocketAddr::new(node.address, HOLD_HOST_PORT))];
    held_through_the_upgrade(cx, &holds, budget)
}

fn egress_sources_hold_through_the_upgrade(cx: &mut ScenarioContext) -> Result<Verdict> {
    let budget = upgrade_budgets()?.longest_gap();
    let prod = cx.namespace("prod", labels([("env", "prod")]))?;
    let policy = cx.egress_policy(PROD_WEB_EGRESS, &prod)?;
    let node = cx.worker_outside(&policy.gateway_node_selector)?;
    let web = cx.pod(&prod, "web", labels([("role", "web")]), &node)?;
    let db = cx.pod(&prod, "db", labels([("role", "db")]), &node)?;
    let realized = cx.realize_egress_policy(&policy)?;
    let (egress_ip, node_ip) = (cx.the_egress_ip(&policy, &realized), cx.its_node_ip(&db)?);
    // The controls, under the old version with nothing upgraded: both sources as it has them
    // before anything is sampled, and the connection through the gateway held as long.
    let from = cx.upgrade_pair()?.from.name.clone();
    let programmed =
        crate::verdict::budget::all_of([cx.source_seen_outside_once_programmed(&web, &egress_ip)?, cx.source_seen_outside_once_programmed(&db, &node_ip)?]);
    if !programmed.passed {
        return Ok(upgrade::fails_before_the_upgrade(programmed, &from));
    }
    let through_the_gateway =
        [("selected-pod-to-the-external-host-through-the-egress-gateway", Some(&web), SocketAddr::new(cx.external_listener()?.ip(), HOLD_PORT))];
    // Held a second longer: the sampling runs steady for a moment on both sides of the switch.
    let hold = cx.timeouts().upgrade_hold + Duration::from_secs(1);
    let (control, ()) = cx.hold_connections_while(&through_the_gateway, hold, |_| Ok(()))?;
    cx.prepare_upgrade()?;
    let (held, (sampled, window, pair)) =
        cx.hold_connections_while(&through_the_gateway, hold, |cx| cx.sample_sources_while(&[&web, &db], |cx| cx.upgrade_cni()))?;
    let expected = |pod: &Pod| if pod.name == web.name { egress_ip.clone() } else { node_ip.clone() };
    let sampled: Vec<_> = sampled.into_iter().map(|(pod, samples)| (pod.clone(), expected(&pod), samples)).collect();
    let sources = cx.sources_kept_through_the_upgrade(&pair.to.name, &pair.from.name, &sampled, &window, budget);
    let connection = upgrade::ruled_by_control(
        upgrade::connections_held(&pair.to.name, &pair.from.name, &held, budget),
        &from,
        upgrade::Control::NothingUpgraded,
        &upgrade::connections_held_with_nothing_upgraded(&from, &control, budget),
    );
    // The sources are the point: their verdict is the one shown, the connection's beside it.
    Ok(match connection.passed {
        true => Verdict {
            observed: crate::verdict::Evidence::new(sources.observed.role.clone(), format!("{}; {}", sources.observed.detail, connection.observed.detail)),
            counters: connection.counters,
            ..sources
        },
        false => crate::verdict::budget::all_of([sources, connection]),
    })
}

fn canary_weights_are_honoured_right_after_the_upgrade(cx: &mut ScenarioContext) -> Result<Verdict> {
    let mut upgraded = None;
    let mut verdict = crate::scenarios::canary::stage_judged_after(cx, 25, |cx| {
        upgraded = Some(cx.upgrade_cni()?);
        Ok(())
    })?;
    // The split verdict knows nothing of versions: the subject says which upgrade it judged.
    if let Some(pair) = upgraded {
        verdict.subject = format!("{}, right after {} was upgraded to {}", verdict.subject, pair.from.name, pair.to.name);
    }
    Ok(verdict)
}

/// Blocks per version, alternating old, new, old, new: a drift in the machine's load
/// falls on both versions alike.
const BLOCKS_PER_VERSION: usize = 2;
/// Per block: pods started one at a time, and latency rounds between the version's pods.
const STARTS_PER_BLOCK: usize = 5;
const LATENCY_ROUNDS_PER_BLOCK: usize = 3;

fn pod_start_up_and_latency_do_not_regress(cx: &mut ScenarioContext) -> Result<Verdict> {
    use crate::verdict::figures::{FigureKind, RR_ACROSS_NODES_P50, STARTUP_ONE};
    let budgets = cx.performance_budgets()?;
    let looks = budgets.looks()?;
    let (namespace, node, other) = on_two_nodes(cx)?;
    // Each version's own pair of pods (its datapath) for the latency; [old, new].
    let mut pairs: [Option<(Pod, Pod)>; 2] = [None, None];
    let mut samples = [[Vec::new(), Vec::new()], [Vec::new(), Vec::new()]];
    let mut upgrade = None;
    for block in 0..2 * BLOCKS_PER_VERSION {
        let version = block % 2;
        match version {
            0 if block > 0 => cx.roll_back_cni()?,
            1 => upgrade = Some(cx.upgrade_cni()?),
            _ => {}
        }
        let side = ["old", "new"][version];
        for i in 0..STARTS_PER_BLOCK {
            let took = cx.start_pods_together(&namespace, &format!("{side}-start-{block}-{i}"), &node, 1)?;
            samples[version][0].extend(took);
        }
        if pairs[version].is_none() {
            pairs[version] =
                Some((cx.pod(&namespace, &format!("{side}-client"), labels([]), &node)?, cx.pod(&namespace, &format!("{side}-server"), labels([]), &other)?));
        }
        let (client, server) = pairs[version].clone().expect("made above");
        for _ in 0..LATENCY_ROUNDS_PER_BLOCK {
            samples[version][1].push(cx.http_load_from(&client, &server, budgets.load.request_response_transactions, 1)?.latency_ms.p50 * 1e3);
        }
    }
    let pair = upgrade.expect("a new block ran");
    let figure = |kind: FigureKind, path: String, samples: &[f64]| crate::verdict::performance::judge(&cx.figure_spec(kind, &path), samples, &looks, None);
    let [before, after] = [0, 1].map(|version| {
        let (client, server) = pairs[version].as_ref().expect("made in every version's first block");
        vec![
            figure(STARTUP_ONE, format!("one pod at a time on node {}", node.name), &samples[version][0]),
            figure(RR_ACROSS_NODES_P50, format!("pod {} on {} -> pod {} on {}", client.name, client.node, server.name, server.node), &samples[version][1]),
        ]
    });
    Ok(upgrade::no_figure_regresses(&pair.to.name, &pair.from.name, &before, &after, upgrade_budgets()?.regression_criteria()))
}

fn check_by_the_new_version_passes_on_old_pods(cx: &mut ScenarioContext) -> Result<Verdict> {
    check_by_the_new_version_of_old_pods(cx, &[])
}

fn check_by_the_new_version_passes_on_old_host_ports(cx: &mut ScenarioContext) -> Result<Verdict> {
    check_by_the_new_version_of_old_pods(cx, &[HostPort { host: HOLD_HOST_PORT, container: HOLD_PORT }])
}

/// Two old pods (reached at `host_ports` on their nodes), CHECKed by the new version; the
/// control: two pods the new version made itself, alike, CHECKed by it too.
fn check_by_the_new_version_of_old_pods(cx: &mut ScenarioContext, host_ports: &[HostPort]) -> Result<Verdict> {
    let (namespace, node, other) = on_two_nodes(cx)?;
    let old = two_pods_reached_through(cx, &namespace, "old", &node, &other, host_ports)?;
    let pair = cx.upgrade_cni()?;
    let across = upgrade::every_pod_checks(&pair.to.name, &pair.from.name, &checks_of(cx, &old));
    let control = check_of_its_own_pods(cx, &pair.to.name, &namespace, &node, &other, host_ports)?;
    Ok(upgrade::ruled_by_control(across, &pair.to.name, upgrade::Control::ItsOwnPods, &control))
}

/// The control of a CHECK across versions: two pods the running `version` makes itself, with
/// the same features as the pods it checked (their host ports moved aside, since those are
/// taken), CHECKed by it.
fn check_of_its_own_pods(cx: &mut ScenarioContext, version: &str, namespace: &str, node: &Node, other: &Node, host_ports: &[HostPort]) -> Result<Verdict> {
    let own = two_pods_reached_through(cx, namespace, "control", node, other, &beside(host_ports))?;
    Ok(upgrade::every_pod_checks(version, version, &checks_of(cx, &own)))
}

/// The control of a DEL across versions: a pod the running `version` makes itself on `node`
/// (reached at `host_ports` there), deleted by it and judged as the pod across versions is:
/// what the version's first pod makes for every pod (its IPAM's bookkeeping, its chains) is
/// there before the count, as the pod across versions has its node's first pod beside it.
fn del_of_its_own_pod(cx: &mut ScenarioContext, version: &str, namespace: &str, node: &Node, host_ports: &[HostPort]) -> Result<Verdict> {
    let first: Vec<HostPort> = host_ports.iter().map(|p| HostPort { host: p.host + 1, container: p.container }).collect();
    cx.pod_reached_through(namespace, "control-first", labels([("app", "control")]), node, &first)?;
    let before = cx.cluster().node_state(node)?;
    let own = cx.pod_reached_through(namespace, "control", labels([("app", "control")]), node, host_ports)?;
    let with_pod = cx.cluster().node_state(node)?;
    let deleted = cx.cluster().delete_pod(&own).err().map(|e| e.to_string());
    let leftovers = settled_changes_by_del(cx, node, &before, &with_pod, &with_pod)?;
    Ok(upgrade::del_leaves_nothing(&pod_name(&own), &node.name, version, version, deleted.as_deref(), &leftovers))
}

/// Where a control pod is reached: `host_ports` moved aside by [`CONTROL_HOST_PORT_OFFSET`].
fn beside(host_ports: &[HostPort]) -> Vec<HostPort> {
    host_ports.iter().map(|p| HostPort { host: p.host + CONTROL_HOST_PORT_OFFSET, container: p.container }).collect()
}

/// How far a control pod's host port is from the pod it stands beside (the DEL scenario's
/// first pod takes the next port, the control's first pod the one after the control's).
const CONTROL_HOST_PORT_OFFSET: u16 = 2;

fn del_by_the_new_version_leaves_nothing(cx: &mut ScenarioContext) -> Result<Verdict> {
    del_by_the_new_version_of_an_old_pod(cx, false)
}

fn del_by_the_new_version_removes_an_old_host_port(cx: &mut ScenarioContext) -> Result<Verdict> {
    del_by_the_new_version_of_an_old_pod(cx, true)
}

/// An old pod (with a hostPort when `with_host_port`) deleted by the new version, judged
/// against the node's state before it.
fn del_by_the_new_version_of_an_old_pod(cx: &mut ScenarioContext, with_host_port: bool) -> Result<Verdict> {
    let namespace = cx.namespace("upgrade", labels([]))?;
    let node = cx.a_worker()?;
    let reached_at = |port: u16| with_host_port.then_some(HostPort { host: port, container: HOLD_PORT }).into_iter().collect::<Vec<_>>();
    // What the node's first pod makes for every pod (a bridge; the node's port-mapping
    // chains, when it has a hostPort too) is there before the count.
    cx.pod_reached_through(&namespace, "already-there", labels([("app", "old")]), &node, &reached_at(HOLD_HOST_PORT + 1))?;
    let before = cx.cluster().node_state(&node)?;
    let old = cx.pod_reached_through(&namespace, "old", labels([("app", "old")]), &node, &reached_at(HOLD_HOST_PORT))?;
    let with_pod = cx.cluster().node_state(&node)?;
    let pair = cx.upgrade_cni()?;
    let before_del = cx.cluster().node_state(&node)?;
    let deleted = cx.cluster().delete_pod(&old).err().map(|e| e.to_string());
    let leftovers = settled_changes_by_del(cx, &node, &before, &with_pod, &before_del)?;
    let across = upgrade::del_leaves_nothing(&pod_name(&old), &node.name, &pair.to.name, &pair.from.name, deleted.as_deref(), &leftovers);
    let control = del_of_its_own_pod(cx, &pair.to.name, &namespace, &node, &beside(&reached_at(HOLD_HOST_PORT)))?;
    Ok(upgrade::ruled_by_control(across, &pair.to.name, upgrade::Control::ItsOwnPods, &control))
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
    let with_pod = cx.cluster().node_state(&node)?;
    cx.roll_back_cni()?;
    let checked = upgrade::every_pod_checks(&pair.from.name, &pair.to.name, &checks_of(cx, &new));
    let checked = upgrade::ruled_by_control(
        checked,
        &pair.from.name,
        upgrade::Control::ItsOwnPods,
        &check_of_its_own_pods(cx, &pair.from.name, &namespace, &node, &other, &[])?,
    );
    let reached = reach_both_ways(cx, &pair.to.name, &pair.from.name, &old, &new)?;
    let before_del = cx.cluster().node_state(&node)?;
    let deleted = cx.cluster().delete_pod(&spare).err().map(|e| e.to_string());
    let leftovers = settled_changes_by_del(cx, &node, &before, &with_pod, &before_del)?;
    let deletion = upgrade::del_leaves_nothing(&pod_name(&spare), &node.name, &pair.from.name, &pair.to.name, deleted.as_deref(), &leftovers);
    let deletion =
        upgrade::ruled_by_control(deletion, &pair.from.name, upgrade::Control::ItsOwnPods, &del_of_its_own_pod(cx, &pair.from.name, &namespace, &node, &[])?);
    Ok(upgrade::every_part([("CHECK", checked), ("reach", reached), ("DEL", deletion)]))
}

fn upgrade_budgets() -> Result<crate::fixtures::UpgradeBudgets> {
    crate::fixtures::load_upgrade_budgets(&crate::fixtures::fixture_path(BUDGETS))
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
    two_pods_reached_through(cx, namespace, role, node, other, &[])
}

/// [`two_pods`], each reached also at `host_ports` on its node.
fn two_pods_reached_through(cx: &mut ScenarioContext, namespace: &str, role: &str, node: &Node, other: &Node, host_ports: &[HostPort]) -> Result<[Pod; 2]> {
    let mut on = |name: String, node: &Node| cx.pod_reached_through(namespace, &name, labels([("app", role)]), node, host_ports);
    Ok([on(format!("{role}-1"), node)?, on(format!("{role}-2"), other)?])
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
    let mut addresses: Vec<_> = cx
        .cluster()
        .pods()?
        .iter()
        .filter(|pod| !new.iter().any(|n| (&n.namespace, &n.name) == (&pod.namespace, &pod.name)))
        .map(|pod| (pod_name(pod), pod.address))
        .collect();
    addresses.extend(new.iter().map(|pod| (pod_name(pod), pod.address)));
    Ok(upgrade::versions_reach_each_other(new_version, old_version, &requests, &addresses))
}

fn pod_name(pod: &Pod) -> String {
    format!("{}/{}", pod.namespace, pod.name)
}

/// How long a node may take to show a deleted pod gone (the lab deletes its links at once;
/// a cluster's agents may take a moment): the node is read until it matches or this ran out.
const NODE_SETTLES: Duration = Duration::from_secs(3);

/// What a pod's DEL left or took on its node: of what the pod's ADD added (`with_pod` over
/// `before`), what is still there; of what the node had before the pod and still had just
/// before the DEL (`before_del`), what is gone. What changed between the ADD and the DEL (a
/// version's install step rebuilding the node's chains) is not the DEL's doing.
fn changes_by_del(before: &BTreeSet<String>, with_pod: &BTreeSet<String>, before_del: &BTreeSet<String>, after: &BTreeSet<String>) -> Vec<String> {
    let left = with_pod.difference(before).filter(|line| after.contains(*line)).map(|line| format!("left behind: {line}"));
    let removed = before.intersection(before_del).filter(|line| !after.contains(*line)).map(|line| format!("removed: {line}"));
    left.chain(removed).collect()
}

/// [`changes_by_del`] once the node shows none or [`NODE_SETTLES`] ran out (then said in
/// the last line).
fn settled_changes_by_del(
    cx: &ScenarioContext,
    node: &Node,
    before: &BTreeSet<String>,
    with_pod: &BTreeSet<String>,
    before_del: &BTreeSet<String>,
) -> Result<Vec<String>> {
    let mut backoff = crate::deadline::Backoff::within(NODE_SETTLES);
    loop {
        let mut changes = changes_by_del(before, with_pod, before_del, &cx.cluster().node_state(node)?);
        if changes.is_empty() {
            return Ok(changes);
        }
        if !backoff.pause() {
            changes.push(format!("still so after {} s", NODE_SETTLES.as_secs()));
            return Ok(changes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(lines: &[&str]) -> BTreeSet<String> {
        lines.iter().map(|l| (*l).to_owned()).collect()
    }

    #[test]
    fn del_is_judged_on_what_the_pod_made_and_what_was_there_not_on_what_an_install_changed() {
        let before = state(&["link cni0", "nat: -A POSTROUTING -j LAB-MASQUERADE"]);
        let with_pod = state(&["link cni0", "nat: -A POSTROUTING -j LAB-MASQUERADE", "link veth1", "file /var/lib/cni/networks/lab/10.244.1.5"]);
        // The new version's install flushed the NAT chains between ADD and DEL.
        let before_del = state(&["link cni0", "link veth1", "file /var/lib/cni/networks/lab/10.244.1.5"]);
        assert!(changes_by_del(&before, &with_pod, &before_del, &state(&["link cni0"])).is_empty(), "the flush is not DEL's");
        assert_eq!(
            changes_by_del(&before, &with_pod, &before_del, &state(&["link cni0", "file /var/lib/cni/networks/lab/10.244.1.5"])),
            ["left behind: file /var/lib/cni/networks/lab/10.244.1.5"]
        );
        assert_eq!(
            changes_by_del(&before, &with_pod, &before, &state(&["nat: -A POSTROUTING -j LAB-MASQUERADE"])),
            ["removed: link cni0"],
            "what was there before the pod and is gone after its DEL is the DEL's"
        );
    }
}
