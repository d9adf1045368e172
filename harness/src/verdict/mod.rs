//! Verdicts: pure functions from measurements to pass or fail, with the evidence that decided.
//!
//! A verdict never touches the network. It states the check, what was expected and what
//! was observed (each as a deterministic *role* for golden files and a raw detail for
//! people), and, when it fails, why: a wrong source is not a timeout.

pub mod budget;
pub mod figures;
pub mod gates;
pub mod iptables;
pub mod performance;
pub mod priority;
pub mod reach;
pub mod regression;
pub mod rollout;
pub mod sequential;
pub mod snat;
pub mod upgrade;
pub mod weights;

use serde::{Deserialize, Serialize};

/// One side of a comparison: a role that golden files can hold, a detail people can read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// Deterministic: `own-node`, `egress-ip`, `pod`, `refused`, ...
    pub role: String,
    /// Raw and run-specific: addresses, node names, error text (never in golden records).
    pub detail: String,
}

impl Evidence {
    pub fn new(role: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { role: role.into(), detail: detail.into() }
    }
}

/// Why a check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureReason {
    /// The request was answered, with a source address other than the expected one.
    WrongSource,
    /// The connection was refused where an answer was expected.
    Refused,
    /// Nothing came back in time.
    TimedOut,
    /// The network reported no route.
    Unreachable,
    /// The server answered something that is not an echo.
    BadReply,
    /// The request was answered where a refusal was expected.
    Answered,
    /// The probe itself failed.
    ProbeFailed,
    /// A measured time exceeded its budget.
    OverBudget,
    /// Some backend's share of a traffic split is not its weight's.
    SplitDeviates,
    /// An older version of a route is still being served.
    StaleRoute,
    /// Requests were answered with errors or by something other than the route's backends.
    ErrorAnswers,
    /// The mirror did not get exactly one copy per request.
    MirrorMismatch,
    /// Packets reached the qdisc in a traffic class other than their priority's.
    WrongClass,
    /// Packets reached the NIC without the delivery time their talker set, or with another.
    DeliveryTimeChanged,
    /// Datagrams reached the listener outside their class's taprio gate window.
    OutsideGateWindow,
    /// A figure's interval still straddled its budget after the most samples allowed.
    Inconclusive,
    /// A MUST of the specification the check cites is not met.
    SpecViolation,
    /// A SHOULD of the specification the check cites is not met: a lesser outcome.
    RecommendationNotMet,
    /// CNI CHECK failed on a pod whose network was as ADD left it.
    CheckFailed,
    /// CNI DEL failed, or left something of the pod on its node.
    LeftBehind,
    /// One address was held by two pods at once.
    AddressReused,
    /// A long-lived connection was reset or closed.
    ConnectionReset,
    /// A figure is significantly worse than the previous version's, by more than the
    /// smallest regression worth failing for.
    Regressed,
    /// A cross-version check failed, and so did its control (the same version doing the same
    /// on pods it made itself): a fault of that version, not of the upgrade.
    VersionsOwnFault,
}

impl FailureReason {
    pub fn describe(self) -> &'static str {
        match self {
            FailureReason::WrongSource => "wrong source address",
            FailureReason::Refused => "connection refused",
            FailureReason::TimedOut => "timed out",
            FailureReason::Unreachable => "unreachable",
            FailureReason::BadReply => "bad reply",
            FailureReason::Answered => "answered",
            FailureReason::ProbeFailed => "probe failed",
            FailureReason::OverBudget => "over budget",
            FailureReason::SplitDeviates => "split deviates from the weights",
            FailureReason::StaleRoute => "stale route still served",
            FailureReason::ErrorAnswers => "error answers",
            FailureReason::MirrorMismatch => "mirror copies do not match requests",
            FailureReason::WrongClass => "packets in the wrong traffic class",
            FailureReason::DeliveryTimeChanged => "delivery time not as the talker set it",
            FailureReason::OutsideGateWindow => "datagrams outside their class's gate window",
            FailureReason::Inconclusive => "inconclusive at the cap",
            FailureReason::SpecViolation => "violates the CNI specification (a MUST)",
            FailureReason::RecommendationNotMet => "deviates from a recommendation (a SHOULD) of the CNI specification",
            FailureReason::CheckFailed => "CNI CHECK failed on an intact pod",
            FailureReason::LeftBehind => "the pod's DEL failed or left state on its node",
            FailureReason::AddressReused => "an address handed out twice",
            FailureReason::ConnectionReset => "a long-lived connection was reset or closed",
            FailureReason::Regressed => "significantly worse than the previous version",
            FailureReason::VersionsOwnFault => "the version fails the same on pods it made itself: its own fault, not the upgrade's",
        }
    }
}

/// The outcome of one check, with its evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    /// What was checked, as a phrase: "source address seen by the external host".
    pub check: String,
    /// What it was checked on, run-specific: "pod prod-t3/web".
    pub subject: String,
    pub passed: bool,
    pub expected: Evidence,
    pub observed: Evidence,
    /// Set exactly when the check failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<FailureReason>,
    /// Where to look when it fails: the node, object or rule that should have done it.
    pub look_at: String,
    /// The parameters of every statistical test behind it (empty for a deterministic check).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub statistics: Vec<StatisticalParameters>,
    /// The counts it was decided on, where a count is the evidence (packets per traffic
    /// class per talker at a NIC's qdisc); run-specific, never in golden records.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub counters: Vec<Counter>,
    /// The performance figures it was decided on, each with its samples, interval and
    /// budget; run-specific, never in golden records.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub figures: Vec<performance::Figure>,
}

/// One count behind a verdict: `subject`'s `name` counted `value`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counter {
    pub subject: String,
    pub name: String,
    pub value: u64,
}

/// What a statistical verdict promised, stated for reports: the test, its error rates,
/// the deviation it is sized to catch, and the requests it took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatisticalParameters {
    pub test: String,
    /// The chance that a correct implementation fails this verdict (alpha).
    pub false_fail_rate: f64,
    /// The suite-wide budget this verdict's rate is a share of: a correct implementation
    /// fails any of the suite's `family_verdicts` statistical verdicts at most this often.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_false_fail_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_verdicts: Option<u32>,
    /// The chance of catching a deviation of `detectable_deviation`.
    pub power: f64,
    /// The smallest deviation (as a share, 0.05 = 5 points) the power is stated for.
    pub detectable_deviation: f64,
    pub sample_size: u64,
    /// For a sequential verdict: where it stopped and what it can take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequential: Option<Stopping>,
    /// What was estimated, each with its interval: per backend, the share of requests.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub estimates: Vec<Estimate>,
}

/// Where a sequential verdict stopped, and the requests it takes on average and at worst.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stopping {
    /// The look it stopped at (from 1) of `looks`.
    pub look: u32,
    pub looks: u32,
    /// The bound it crossed, in words.
    pub bound: String,
    /// The cap: the most requests it sends.
    pub worst_case_requests: u64,
    /// The exact average of the requests a correct implementation takes, where computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_requests_when_correct: Option<f64>,
}

/// One estimated share against what was expected, with its confidence interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Estimate {
    pub name: String,
    pub expected: f64,
    pub observed: f64,
    pub low: f64,
    pub high: f64,
    pub count: u64,
}

impl Eq for StatisticalParameters {}

impl Verdict {
    /// One line for terminals, JUnit messages and panics: expected, observed, why.
    pub fn message(&self) -> String {
        let status = match self.reason {
            None => "ok".to_owned(),
            Some(reason) => reason.describe().to_owned(),
        };
        let mut message = format!(
            "{} from {}: {status}: expected {} ({}), observed {} ({})",
            self.check, self.subject, self.expected.role, self.expected.detail, self.observed.role, self.observed.detail
        );
        if self.reason.is_some() && !self.look_at.is_empty() {
            message.push_str(&format!("; look at {}", self.look_at));
        }
        message
    }
}
