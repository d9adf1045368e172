//! Egress SNAT: which source address the world outside the cluster sees (thesis ch. 3.1).

use std::time::Duration;

use crate::cni::Feature;
use crate::error::Result;
use crate::fixtures;
use crate::model::labels;
use crate::scenario::{EgressMove, Scenario, ScenarioContext};
use crate::verdict::{budget, Verdict};

/// The seeds' Antrea `Egress`: pods labelled role=web in namespaces labelled env=prod.
pub(crate) const PROD_WEB_EGRESS: &str = "egress/prod-web.antrea.yaml";
/// The same policy with an ExternalIPPool over both workers.
const PROD_WEB_FAILOVER_EGRESS: &str = "egress/prod-web-failover.antrea.yaml";
const EGRESS_BUDGETS: &str = "budgets/egress.yaml";

/// Every egress scenario, in the order a reader would check them.
pub fn all() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "closed_external_port_is_refused_not_dropped",
            sentence:
                "A pod's request to a port nothing listens on at the external host is refused, not dropped, so a wrong source can be told from a lost packet.",
            requires: &[],
            disruptive: false,
            body: closed_external_port_is_refused_not_dropped,
        },
        Scenario {
            name: "pod_without_egress_policy_leaves_with_its_node_ip",
            sentence: "A pod no egress policy selects reaches the external host with its node's IP as source.",
            requires: &[],
            disruptive: false,
            body: pod_without_egress_policy_leaves_with_its_node_ip,
        },
        Scenario {
            name: "selected_pod_leaves_with_the_egress_ip",
            sentence:
                "A pod labelled role=web in a namespace labelled env=prod reaches the external host with the egress IP as source, through the gateway node.",
            requires: &[Feature::EgressGateway],
            disruptive: false,
            body: selected_pod_leaves_with_the_egress_ip,
        },
        Scenario {
            name: "unselected_pod_beside_a_selected_one_keeps_its_node_ip",
            sentence: "A pod the egress policy does not select, on the same node as one it does, keeps its node's IP as source.",
            requires: &[Feature::EgressGateway],
            disruptive: false,
            body: unselected_pod_beside_a_selected_one_keeps_its_node_ip,
        },
    ]
}

/// When the node holding the egress IP fails, another node of the pool takes it over.
pub fn failover() -> Vec<Scenario> {
    vec![Scenario {
        name: "egress_ip_moves_to_another_node_when_its_node_fails",
        sentence:
            "When the node holding the egress IP stops, another node of its pool takes the IP over within the budget, and selected pods still leave with it.",
        requires: &[Feature::EgressGateway, Feature::EgressFailover],
        disruptive: true,
        body: egress_ip_moves_to_another_node_when_its_node_fails,
    }]
}

/// Destinations excluded from a policy are reached without the gateway.
pub fn excluded_destinations() -> Vec<Scenario> {
    vec![Scenario {
        name: "traffic_to_an_excluded_destination_keeps_the_node_ip",
        sentence: "A selected pod's traffic to a destination the policy excludes keeps its node's IP as source.",
        requires: &[Feature::EgressGateway, Feature::EgressExcludedCidrs],
        disruptive: false,
        body: traffic_to_an_excluded_destination_keeps_the_node_ip,
    }]
}

fn closed_external_port_is_refused_not_dropped(cx: &mut ScenarioContext) -> Result<Verdict> {
    let namespace = cx.namespace("probe", labels([]))?;
    let node = cx.a_worker()?;
    let client = cx.pod(&namespace, "client", labels([]), &node)?;
    let seen = cx.request_closed_external_port(&client)?;
    Ok(cx.refused("a closed port of the external host", &client, &seen))
}

fn pod_without_egress_policy_leaves_with_its_node_ip(cx: &mut ScenarioContext) -> Result<Verdict> {
    let namespace = cx.namespace("dev", labels([("env", "dev")]))?;
    let node = cx.a_worker()?;
    let web = cx.pod(&namespace, "web", labels([("role", "web")]), &node)?;
    let seen = cx.request_external_echo(&web)?;
    Ok(cx.source_seen_outside(&web, &cx.its_node_ip(&web)?, &seen))
}

fn selected_pod_leaves_with_the_egress_ip(cx: &mut ScenarioContext) -> Result<Verdict> {
    let prod = cx.namespace("prod", labels([("env", "prod")]))?;
    let policy = cx.egress_policy(PROD_WEB_EGRESS, &prod)?;
    let node = cx.worker_outside(&policy.gateway_node_selector)?;
    let web = cx.pod(&prod, "web", labels([("role", "web")]), &node)?;
    let realized = cx.realize_egress_policy(&policy)?;
    cx.source_seen_outside_once_programmed(&web, &cx.the_egress_ip(&policy, &realized))
}

fn unselected_pod_beside_a_selected_one_keeps_its_node_ip(cx: &mut ScenarioContext) -> Result<Verdict> {
    let prod = cx.namespace("prod", labels([("env", "prod")]))?;
    let policy = cx.egress_policy(PROD_WEB_EGRESS, &prod)?;
    let node = cx.worker_outside(&policy.gateway_node_selector)?;
    cx.pod(&prod, "web", labels([("role", "web")]), &node)?;
    let db = cx.pod(&prod, "db", labels([("role", "db")]), &node)?;
    cx.realize_egress_policy(&policy)?;
    cx.source_seen_outside_once_programmed(&db, &cx.its_node_ip(&db)?)
}

fn egress_ip_moves_to_another_node_when_its_node_fails(cx: &mut ScenarioContext) -> Result<Verdict> {
    let budget = Duration::from_secs_f64(fixtures::load_egress_budgets(&fixtures::fixture_path(EGRESS_BUDGETS))?.failover_seconds);
    let prod = cx.namespace("prod", labels([("env", "prod")]))?;
    let policy = cx.egress_policy(PROD_WEB_FAILOVER_EGRESS, &prod)?;
    // On the control plane, the pod outlives whichever worker fails.
    let web = cx.pod(&prod, "web", labels([("role", "web")]), &cx.control_plane()?)?;
    let before = cx.realize_egress_policy(&policy)?;
    let failed_at = cx.fail_node(&before.egress_node)?;
    let (check, subject, look_at) =
        ("egress IP failover time", format!("egress policy {}", policy.name), "the CNI's egress controller and its node health checks");
    Ok(match cx.await_egress_moved(&policy, &before.egress_node, failed_at, budget)? {
        EgressMove::Moved { status, took } => budget::all_of([
            cx.source_seen_outside_once_programmed(&web, &cx.the_egress_ip(&policy, &status))?,
            budget::within(check, &subject, budget, took, look_at),
        ]),
        EgressMove::Stayed { waited, wait } => {
            budget::never_within(check, &subject, budget, waited, &format!("still on node {}", before.egress_node), &wait, look_at)
        }
    })
}

fn traffic_to_an_excluded_destination_keeps_the_node_ip(cx: &mut ScenarioContext) -> Result<Verdict> {
    let prod = cx.namespace("prod", labels([("env", "prod")]))?;
    let mut policy = cx.egress_policy(PROD_WEB_EGRESS, &prod)?;
    cx.exclude_external_host(&mut policy)?;
    let node = cx.worker_outside(&policy.gateway_node_selector)?;
    let web = cx.pod(&prod, "web", labels([("role", "web")]), &node)?;
    cx.realize_egress_policy(&policy)?;
    cx.source_seen_outside_once_programmed(&web, &cx.its_node_ip(&web)?)
}
