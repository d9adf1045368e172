//! The TSN family's check, proven on real packets on the lab before any metadata proxy
//! exists: a talker on the node itself keeps its classes at the NIC's qdisc (the check can
//! pass), and a talker in a pod wired by the reference plugins lands in best effort (the
//! metadata-proxy paper's problem, failed for that reason). UDP and TCP alike.

use std::sync::Arc;

use cni_probe::talk::Transport;
use harness::cni;
use harness::model::labels;
use harness::provider::lab::{Lab, LabOptions};
use harness::provider::Cluster;
use harness::report::TrialOutcome;
use harness::scenario::{run_scenario, Scenario, ScenarioBody};
use harness::scenarios::tsn;
use harness::verdict::FailureReason;
use harness::Timeouts;
use libtest_mimic::{Arguments, Failed, Trial};

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
        TrialOutcome::Failed(verdict) if verdict.reason == Some(FailureReason::WrongClass) && verdict.expected.role == "class-1" && verdict.observed.role == "best-effort" => {
            let message = verdict.message();
            match message.contains("1:1 (class-1): 0") && message.contains(") in 1:1 (class-1), none in another class") {
                true => Ok(()),
                false => Err(format!("the failure should name the expected class and the counts: {message}").into()),
            }
        }
        other => Err(format!("expected the priority-1 talker's packets in best effort: {} ({other:?})", other.message()).into()),
    }
}

fn main() -> std::process::ExitCode {
    let args = Arguments::from_args();
    let trials = vec![
        Trial::test("udp_talkers_on_the_node_itself_keep_their_classes", || on_the_node_the_classes_are_kept(Transport::Udp)),
        Trial::test("tcp_talkers_on_the_node_itself_keep_their_classes", || on_the_node_the_classes_are_kept(Transport::Tcp)),
        Trial::test("udp_talkers_in_a_pod_without_a_metadata_proxy_land_in_best_effort", || in_a_pod_without_a_proxy_everything_is_best_effort(Transport::Udp)),
        Trial::test("tcp_talkers_in_a_pod_without_a_metadata_proxy_land_in_best_effort", || in_a_pod_without_a_proxy_everything_is_best_effort(Transport::Tcp)),
    ];
    libtest_mimic::run(&args, trials).exit_code()
}
