//! Canary weights and mirroring through a Gateway API HTTPRoute (thesis ch. 3.2).

use crate::cni::Feature;
use crate::error::Result;
use crate::model::labels;
use crate::scenario::{Scenario, ScenarioContext};
use crate::verdict::Verdict;

/// The thesis's canary route: /getCurrentWeather split between two versions of the app.
const CANARY_ROUTE: &str = "canary/current-weather-route.yaml";
/// The thesis's mirroring route: paid endpoints split 60/40, every request copied to an analyzer.
const MIRROR_ROUTE: &str = "canary/weather-mirror-route.yaml";

const WEIGHTS: &[Feature] = &[Feature::GatewayWeights];

pub use crate::verdict::weights::{SPLIT_JUDGED, SPLIT_VERDICTS};

/// Every canary scenario: each stage of the rollout, a weight change going live, mirroring.
pub fn all() -> Vec<Scenario> {
    vec![
        Scenario { name: "canary_at_0_percent_sends_the_new_version_nothing", sentence: "With the new version at weight 0, every request goes to the stable version.", requires: WEIGHTS, disruptive: false, body: stage_0 },
        Scenario { name: "canary_stage_at_5_percent_is_honoured", sentence: "The canary stage sends 5 % of requests to the new version.", requires: WEIGHTS, disruptive: false, body: stage_5 },
        Scenario { name: "early_stage_at_25_percent_is_honoured", sentence: "The early stage sends 25 % of requests to the new version.", requires: WEIGHTS, disruptive: false, body: stage_25 },
        Scenario { name: "mid_stage_at_50_percent_is_honoured", sentence: "The mid stage sends half of the requests to the new version.", requires: WEIGHTS, disruptive: false, body: stage_50 },
        Scenario { name: "late_stage_at_75_percent_is_honoured", sentence: "The late stage sends 75 % of requests to the new version.", requires: WEIGHTS, disruptive: false, body: stage_75 },
        Scenario { name: "full_stage_at_100_percent_sends_everything_to_the_new_version", sentence: "At the full stage every request goes to the new version.", requires: WEIGHTS, disruptive: false, body: stage_100 },
        Scenario {
            name: "new_weights_are_live_before_they_are_judged",
            sentence: "After the weights change from the canary stage to the mid stage, the new route is seen live within its budget, and then the mid-stage split is honoured.",
            requires: WEIGHTS,
            disruptive: false,
            body: new_weights_are_live_before_they_are_judged,
        },
        Scenario {
            name: "replica_ratio_canary_splits_75_25_at_random",
            sentence: "A LoadBalancer Service over three stable pods and one canary pod sends a quarter of its connections, chosen at random, to the canary.",
            requires: &[Feature::LoadBalancerService],
            disruptive: false,
            body: replica_ratio_canary_splits_75_25_at_random,
        },
        Scenario {
            name: "mirrored_requests_reach_the_analyzer_while_clients_get_the_app",
            sentence: "Every request to the paid endpoints is answered by the app, and a copy of each reaches the traffic analyzer.",
            requires: &[Feature::GatewayWeights, Feature::RequestMirror],
            disruptive: false,
            body: mirrored_requests_reach_the_analyzer_while_clients_get_the_app,
        },
    ]
}

/// The canary route with `percent` of requests for the new version, live, then judged.
fn stage(cx: &mut ScenarioContext, percent: u32) -> Result<Verdict> {
    stage_judged_after(cx, percent, |_| Ok(()))
}

/// As [`stage`], with `meanwhile` run once the route is live and before its split is judged.
pub(crate) fn stage_judged_after(cx: &mut ScenarioContext, percent: u32, meanwhile: impl FnOnce(&mut ScenarioContext) -> Result<()>) -> Result<Verdict> {
    let namespace = cx.namespace("weather", labels([]))?;
    let mut route = cx.http_route(CANARY_ROUTE)?;
    cx.backend_pods(&namespace, &route)?;
    route.set_weights(&[100 - percent, percent]);
    let live = cx.roll_out(&namespace, &mut route)?;
    if !live.passed {
        return Ok(live);
    }
    meanwhile(cx)?;
    cx.split_seen_outside(&route)
}

fn stage_0(cx: &mut ScenarioContext) -> Result<Verdict> {
    stage(cx, 0)
}

fn stage_5(cx: &mut ScenarioContext) -> Result<Verdict> {
    stage(cx, 5)
}

fn stage_25(cx: &mut ScenarioContext) -> Result<Verdict> {
    stage(cx, 25)
}

fn stage_50(cx: &mut ScenarioContext) -> Result<Verdict> {
    stage(cx, 50)
}

fn stage_75(cx: &mut ScenarioContext) -> Result<Verdict> {
    stage(cx, 75)
}

fn stage_100(cx: &mut ScenarioContext) -> Result<Verdict> {
    stage(cx, 100)
}

fn new_weights_are_live_before_they_are_judged(cx: &mut ScenarioContext) -> Result<Verdict> {
    let namespace = cx.namespace("weather", labels([]))?;
    let mut route = cx.http_route(CANARY_ROUTE)?;
    cx.backend_pods(&namespace, &route)?;
    route.set_weights(&[95, 5]);
    let canary = cx.roll_out(&namespace, &mut route)?;
    if !canary.passed {
        return Ok(canary);
    }
    route.set_weights(&[50, 50]);
    let mid = cx.roll_out(&namespace, &mut route)?;
    if !mid.passed {
        return Ok(mid);
    }
    cx.split_seen_outside(&route)
}

fn mirrored_requests_reach_the_analyzer_while_clients_get_the_app(cx: &mut ScenarioContext) -> Result<Verdict> {
    let namespace = cx.namespace("paid", labels([]))?;
    let mut route = cx.http_route(MIRROR_ROUTE)?;
    let pods = cx.backend_pods(&namespace, &route)?;
    let analyzer = pods.last().expect("the mirror's pod comes last").clone();
    let live = cx.roll_out(&namespace, &mut route)?;
    if !live.passed {
        return Ok(live);
    }
    cx.mirroring_seen(&route, &analyzer, 200)
}

fn replica_ratio_canary_splits_75_25_at_random(cx: &mut ScenarioContext) -> Result<Verdict> {
    let namespace = cx.namespace("replicas", labels([]))?;
    let (worker, stable_labels) = (cx.a_worker()?, labels([("app", "web"), ("version", "stable")]));
    let stable = (0..3).map(|i| cx.pod(&namespace, &format!("web-stable-{i}"), stable_labels.clone(), &worker)).collect::<Result<Vec<_>>>()?;
    let canary = vec![cx.pod(&namespace, "web-canary-0", labels([("app", "web"), ("version", "canary")]), &worker)?];
    let url = cx.load_balancer_service(&namespace, "web", labels([("app", "web")]))?;
    cx.split_between_groups_seen_outside(&url, &[("stable", &stable), ("canary", &canary)])
}

#[cfg(test)]
mod tests {
    /// Every scenario that judges a split by chance is counted in the suite's budget, and
    /// each of them states the budget and its share.
    #[test]
    fn the_split_verdicts_sharing_the_suite_budget_are_the_family_s_scenarios() {
        let names: Vec<&str> = super::all().iter().map(|s| s.name).collect();
        assert!(super::SPLIT_JUDGED.iter().all(|n| names.contains(n)), "{names:?}");
        let criteria = crate::fixtures::load_canary_budgets(&crate::fixtures::fixture_path("budgets/canary.yaml")).unwrap().criteria();
        assert!((criteria.false_fail * 6.0 - 0.01).abs() < 1e-12, "{criteria:?}");
        let verdict = criteria.judge(&[("a".into(), 50), ("b".into(), 50)], &[900, 900]).verdict("route r", "the Gateway");
        let parameters = &verdict.statistics[0];
        assert_eq!((parameters.family_false_fail_rate, parameters.family_verdicts), (Some(0.01), Some(6)));
    }
}
