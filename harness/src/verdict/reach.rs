//! Reachability verdicts: an answer where one is expected, a refusal where one is expected.

use cni_probe::Observation;

use super::{Evidence, FailureReason, Verdict};
use crate::model::Pod;

/// Evidence and failure reason for an observation that is not an answer.
pub fn unanswered(observation: &Observation) -> (Evidence, Option<FailureReason>) {
    let (reason, detail) = match observation {
        Observation::Answered { reply } => return (Evidence::new("answered", format!("answered by {}", reply.server)), None),
        Observation::BadReply { status, body } => (FailureReason::BadReply, format!("HTTP {status}: {body}")),
        Observation::Refused { detail } => (FailureReason::Refused, detail.clone()),
        Observation::TimedOut { detail } => (FailureReason::TimedOut, detail.clone()),
        Observation::Unreachable { detail } => (FailureReason::Unreachable, detail.clone()),
        Observation::Failed { detail } => (FailureReason::ProbeFailed, detail.clone()),
    };
    (Evidence::new(observation.kind().replace(' ', "-"), detail), Some(reason))
}

/// Where to look first: a request that got no answer at all (a timeout, no route, the probe
/// failing) most often means the pod's own network is not there, before any NAT, Gateway or
/// path; an answer that is wrong points at `otherwise` alone.
pub fn look_at(client: &Pod, observation: &Observation, otherwise: &str) -> String {
    match observation {
        Observation::TimedOut { .. } | Observation::Unreachable { .. } | Observation::Failed { .. } => format!(
            "first pod {}/{}'s own network on node {} (its interface, address and default route in the pod, and the CNI's ADD result for it), then {otherwise}",
            client.namespace, client.name, client.node
        ),
        _ => otherwise.to_owned(),
    }
}

/// A negative check that passes only for the stated reason: the connection was *refused*.
/// A timeout or an answer fails it, and says which.
pub fn refused(target: &str, client: &Pod, observation: &Observation) -> Verdict {
    let (observed, reason) = match observation {
        Observation::Refused { detail } => (Evidence::new("refused", detail.clone()), None),
        Observation::Answered { reply } => {
            (Evidence::new("answered", format!("answered by {} seeing {}", reply.server, reply.client)), Some(FailureReason::Answered))
        }
        other => unanswered(other),
    };
    Verdict {
        statistics: Vec::new(),
        counters: Vec::new(),
        figures: Vec::new(),
        check: format!("connection to {target}"),
        subject: format!("pod {}/{}", client.namespace, client.name),
        passed: reason.is_none(),
        expected: Evidence::new("refused", "an immediate refusal (TCP RST)"),
        observed,
        reason,
        look_at: look_at(client, observation, "the path to the external host: a refusal needs a round trip, a timeout means packets were dropped"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::labels;

    fn client() -> Pod {
        Pod { name: "c".into(), namespace: "n".into(), labels: labels([]), node: "w".into(), address: "10.244.1.2".parse().unwrap() }
    }

    #[test]
    fn only_a_refusal_passes_a_refusal_check() {
        assert!(refused("x", &client(), &Observation::Refused { detail: "rst".into() }).passed);
        let timed_out = refused("x", &client(), &Observation::TimedOut { detail: "3s".into() });
        assert_eq!(timed_out.reason, Some(FailureReason::TimedOut));
        assert!(timed_out.message().contains("expected refused") && timed_out.message().contains("observed timed-out"), "{}", timed_out.message());
        let unreachable = refused("x", &client(), &Observation::Unreachable { detail: "no route".into() });
        assert_eq!(unreachable.reason, Some(FailureReason::Unreachable));
        assert!(timed_out.look_at.starts_with("first pod ") && timed_out.look_at.contains("own network"), "{}", timed_out.look_at);
    }
}
