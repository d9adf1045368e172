//! The CNI specification's rules as pure functions: from what a plugin printed and what
//! the node and container hold, the list of violations, each naming the rule.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::cni::runtime::PluginOutput;
use crate::verdict::{Evidence, FailureReason, Verdict};

/// How strongly the specification asks for a rule (RFC 2119, as SPEC.md says it uses the
/// words): only a MUST not met "violates" it; a SHOULD not met is a lesser outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyword {
    Must,
    Should,
}

impl Keyword {
    pub fn word(self) -> &'static str {
        match self {
            Keyword::Must => "MUST",
            Keyword::Should => "SHOULD",
        }
    }
}

/// One rule of the specification, as a check states it.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub name: &'static str,
    pub sentence: &'static str,
    /// Where SPEC.md (1.0.0 unless said) states it.
    pub section: &'static str,
    /// The keyword of the specification's sentence the check enforces.
    pub keyword: Keyword,
}

/// The verdict of `rule` on `subject`: passed when there are no `problems`; otherwise a
/// violation of a MUST, or a recommendation (SHOULD) not met.
pub fn judged(rule: &Rule, subject: &str, problems: Vec<String>, seen: String) -> Verdict {
    let passed = problems.is_empty();
    let (observed, reason) = match rule.keyword {
        Keyword::Must => ("violation", FailureReason::SpecViolation),
        Keyword::Should => ("recommendation-not-met", FailureReason::RecommendationNotMet),
    };
    Verdict {
        check: format!("CNI specification, {} ({})", rule.section, rule.keyword.word()),
        subject: subject.to_owned(),
        passed,
        expected: Evidence::new(rule.name, rule.sentence),
        observed: Evidence::new(if passed { rule.name } else { observed }, if passed { seen } else { problems.join("; ") }),
        reason: (!passed).then_some(reason),
        look_at: format!("{} of the CNI specification (https://github.com/containernetworking/cni/blob/main/SPEC.md)", rule.section),
        statistics: Vec::new(),
        counters: Vec::new(),
        figures: Vec::new(),
    }
}

pub use crate::cni::result::result_problems;

/// Violations of "what ADD reports is there": every interface in `container_path` exists in
/// the container (with the reported MAC), each of the container's IPs is on its interface,
/// and every interface without a sandbox exists on the node.
pub fn not_really_there(result: &Value, container_path: &str, container: &BTreeSet<String>, node: &BTreeSet<String>) -> Vec<String> {
    let interfaces = result.get("interfaces").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut problems = Vec::new();
    for interface in &interfaces {
        let name = interface.get("name").and_then(Value::as_str).unwrap_or("?");
        let mac = interface.get("mac").and_then(Value::as_str).filter(|m| !m.is_empty()).map(str::to_lowercase);
        match interface.get("sandbox").and_then(Value::as_str).filter(|s| !s.is_empty()) {
            Some(sandbox) if sandbox == container_path => {
                let there =
                    container.iter().any(|line| line.starts_with(&format!("link {name} mac ")) && mac.as_ref().is_none_or(|m| line.ends_with(m.as_str())));
                if !there {
                    problems.push(format!(
                        "interface {name} (mac {}) is not in the container; it has: {}",
                        mac.as_deref().unwrap_or("any"),
                        container.iter().cloned().collect::<Vec<_>>().join(", ")
                    ));
                }
            }
            Some(other) => problems.push(format!("interface {name} names sandbox {other}, not the container's {container_path}")),
            None => {
                if !node.iter().any(|line| line.starts_with(&format!("link {name} ("))) {
                    problems.push(format!("host interface {name} is not on the node"));
                }
            }
        }
    }
    for ip in result.get("ips").and_then(Value::as_array).into_iter().flatten() {
        let (Some(address), Some(index)) = (ip.get("address").and_then(Value::as_str), ip.get("interface").and_then(Value::as_u64)) else { continue };
        let Some(interface) = interfaces.get(index as usize) else { continue };
        if interface.get("sandbox").and_then(Value::as_str) == Some(container_path) {
            let name = interface.get("name").and_then(Value::as_str).unwrap_or("?");
            if !container.contains(&format!("address {address} on {name}")) {
                problems.push(format!("address {address} is not on {name} in the container"));
            }
        }
    }
    problems
}

/// What a check over several items may conclude: `problems` found in the items it judged,
/// or, when it found none but could not judge every item it meant to (`meant`, of which
/// `unjudged` each say why not), why it reaches no verdict. A check over N items passes
/// only if it judged all N: zero judged items never pass.
pub fn over_items(meant: usize, unjudged: &[String], mut problems: Vec<String>) -> std::result::Result<Vec<String>, String> {
    if meant == 0 {
        return Err("there was no item to judge".into());
    }
    if unjudged.is_empty() {
        return Ok(problems);
    }
    let not_judged = format!("{} of {meant} not judged: {}", unjudged.len(), unjudged.join("; "));
    if problems.is_empty() {
        return Err(not_judged);
    }
    problems.push(not_judged);
    Ok(problems)
}

/// The problem [`error_problems`] names for an error output that exited 0.
pub const EXITED_ZERO: &str = "it exited with status 0";

/// Violations of the error contract: a non-zero exit and, on stdout, the error structure
/// (`code`, an integer; `msg`, a string) with one of `codes` (or, where `plugin_codes`,
/// a plugin-specific code of 100 or more).
pub fn error_problems(output: &PluginOutput, codes: &[u64], plugin_codes: bool) -> Vec<String> {
    let mut problems = Vec::new();
    if output.success {
        problems.push(EXITED_ZERO.to_owned());
    }
    match serde_json::from_str::<Value>(&output.stdout) {
        Ok(Value::Object(error)) => {
            match error.get("code").and_then(Value::as_u64) {
                Some(code) if codes.contains(&code) || (plugin_codes && code >= 100) => {}
                Some(code) => problems.push(format!(
                    "error code {code}, expected {}{}",
                    codes.iter().map(u64::to_string).collect::<Vec<_>>().join(" or "),
                    if plugin_codes { " or a plugin code of 100 or more" } else { "" }
                )),
                None => problems.push(format!("the error has no integer code: {}", output.stdout.trim())),
            }
            if error.get("msg").and_then(Value::as_str).is_none() {
                problems.push(format!("the error has no msg: {}", output.stdout.trim()));
            }
        }
        _ => problems.push(format!("stdout is not the specification's JSON error structure: {:?} (stderr {:?})", output.stdout.trim(), output.stderr.trim())),
    }
    problems
}

/// What `after` holds that `before` did not, and what it lost.
pub fn changes(before: &BTreeSet<String>, after: &BTreeSet<String>) -> Vec<String> {
    after.difference(before).map(|l| format!("left behind: {l}")).chain(before.difference(after).map(|l| format!("removed: {l}"))).collect()
}

/// Whether a change of [`crate::spec::sandbox::Sandbox::node_state`] is only an empty
/// table's skeleton: the table, its built-in chains at policy ACCEPT, and nft's base chain
/// and brace lines. `iptables` (legacy or nft) makes them when it first reads or writes a
/// table; they pass every packet, and their rules and a plugin's own chains are lines of
/// their own, judged as such.
pub fn is_an_empty_table_s_skeleton(change: &str) -> bool {
    let line = change.split_once(": ").map_or(change, |(_, l)| l);
    let Some(line) = line
        .strip_prefix("iptables-save: ")
        .or_else(|| line.strip_prefix("ip6tables-save: "))
        .map(|l| ("ipt", l))
        .or_else(|| line.strip_prefix("nft: ").map(|l| ("nft", l)))
    else {
        return false;
    };
    const BUILT_IN: [&str; 5] = ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"];
    match line {
        ("ipt", l) => l.starts_with('*') || l == "COMMIT" || BUILT_IN.iter().any(|chain| l == format!(":{chain} ACCEPT")),
        (_, l) => {
            l == "}"
                || (l.starts_with("table ") && l.ends_with(" {"))
                || BUILT_IN.iter().any(|chain| l == format!("chain {chain} {{"))
                || (l.starts_with("type ") && l.ends_with("policy accept;"))
        }
    }
}

/// Violations of chaining: a plugin's result drops an interface or address of the result it
/// was given as `prevResult`.
pub fn dropped_from_previous(previous: &Value, result: &Value) -> Vec<String> {
    let names = |v: &Value, key: &str, field: &str| -> BTreeSet<String> {
        v.get(key).and_then(Value::as_array).into_iter().flatten().filter_map(|x| x.get(field).and_then(Value::as_str).map(str::to_owned)).collect()
    };
    let mut problems = Vec::new();
    for (key, field) in [("interfaces", "name"), ("ips", "address")] {
        for missing in names(previous, key, field).difference(&names(result, key, field)) {
            problems.push(format!("{key}: {missing} of prevResult is not in its result"));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok() -> Value {
        json!({"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "mac": "c2:11:22:33:44:55", "sandbox": "/run/netns/c"}],
               "ips": [{"address": "10.0.0.2/24", "gateway": "10.0.0.1", "interface": 0}], "routes": [{"dst": "0.0.0.0/0"}], "dns": {}})
    }

    #[test]
    fn an_empty_table_s_skeleton_is_not_a_plugin_s_state_but_its_rules_and_chains_are() {
        // As Debian's ptp 1.1.1 leaves the node after its last DEL (iptables-nft).
        for skeleton in [
            "left behind: iptables-save: *nat",
            "left behind: iptables-save: :POSTROUTING ACCEPT",
            "left behind: ip6tables-save: COMMIT",
            "left behind: nft: table ip nat {",
            "left behind: nft: chain POSTROUTING {",
            "left behind: nft: type nat hook postrouting priority srcnat; policy accept;",
            "left behind: nft: }",
        ] {
            assert!(is_an_empty_table_s_skeleton(skeleton), "{skeleton}");
        }
        // As portmap leaves it: its own chains, the jumps into them, a built-in chain made to drop.
        for state in [
            "left behind: iptables-save: :CNI-HOSTPORT-DNAT -",
            "left behind: iptables-save: -A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT",
            "left behind: iptables-save: :FORWARD DROP",
            "left behind: nft: chain CNI-HOSTPORT-MASQ {",
            "left behind: nft: counter packets 0 bytes 0 jump CNI-HOSTPORT-MASQ",
            "left behind: nft: type filter hook forward priority filter; policy drop;",
            "left behind: link cni0 (bridge)",
        ] {
            assert!(!is_an_empty_table_s_skeleton(state), "{state}");
        }
    }

    #[test]
    fn a_good_result_has_no_problems_and_each_fault_is_named() {
        assert!(result_problems(&ok(), "1.0.0").is_empty());
        let mut bad = ok();
        bad["ips"][0]["interface"] = json!(3);
        assert_eq!(result_problems(&bad, "1.0.0"), vec!["ips[0].interface 3 is not an index into the 1 interfaces of the result"]);
        assert!(result_problems(&ok(), "0.4.0").iter().any(|p| p.contains("ips[0].version")), "0.4.0 needs ips[].version");
        assert!(result_problems(&ok(), "0.3.1").iter().any(|p| p.contains("cniVersion")));
        let mut bad = ok();
        bad["routes"][0]["dst"] = json!("default");
        assert_eq!(result_problems(&bad, "1.0.0").len(), 1);
    }

    #[test]
    fn a_result_before_0_3_0_has_ip4_not_ips() {
        let legacy = json!({"cniVersion": "0.2.0", "ip4": {"ip": "10.0.0.2/24", "gateway": "10.0.0.1", "routes": [{"dst": "0.0.0.0/0"}]}, "dns": {}});
        assert!(result_problems(&legacy, "0.2.0").is_empty());
        // One format: a 0.1.0 config answered with a 0.2.0 result, as libcni up to 0.8 did.
        assert!(result_problems(&legacy, "0.1.0").is_empty());
        let mut newer = legacy.clone();
        newer["cniVersion"] = json!("0.3.1");
        assert!(result_problems(&newer, "0.1.0").iter().any(|p| p.contains("cniVersion")), "only 0.2.0 answers 0.1.0");
        assert!(
            result_problems(&json!({"cniVersion": "0.1.0", "ip4": {"ip": "10.0.0.2/24"}}), "0.2.0").iter().any(|p| p.contains("cniVersion")),
            "not the other way round"
        );
        let mut new_shape = ok();
        new_shape["cniVersion"] = json!("0.2.0");
        assert_eq!(result_problems(&new_shape, "0.2.0"), vec!["ips and interfaces are 0.3.0 fields, not in a 0.1.0 or 0.2.0 result"]);
        assert_eq!(
            result_problems(&json!({"cniVersion": "0.1.0", "ip4": {"ip": "10.0.0.2"}}), "0.1.0"),
            vec!["ip4.ip \"10.0.0.2\" is not an address in CIDR notation"]
        );
    }

    #[test]
    fn errors_must_be_json_with_the_right_code() {
        let output =
            |success, stdout: &str| PluginOutput { success, status: "exit status: 1".into(), stdout: stdout.into(), stderr: String::new(), hung_after: None };
        assert!(error_problems(&output(false, r#"{"code": 4, "msg": "CNI_NETNS missing"}"#), &[4], false).is_empty());
        assert_eq!(error_problems(&output(false, r#"{"code": 7, "msg": "x"}"#), &[4], false), vec!["error code 7, expected 4"]);
        assert!(error_problems(&output(false, r#"{"code": 101, "msg": "x"}"#), &[7], true).is_empty());
        assert!(error_problems(&output(false, "failed: no netns"), &[4], false)[0].contains("not the specification's JSON error structure"));
        assert_eq!(error_problems(&output(true, r#"{"code": 4, "msg": "x"}"#), &[4], false), vec!["it exited with status 0"]);
    }

    #[test]
    fn a_check_over_items_passes_only_if_it_judged_every_one() {
        assert_eq!(over_items(4, &[], vec![]), Ok(vec![]));
        assert!(over_items(0, &[], vec![]).is_err(), "zero items meant: no pass");
        let unjudged = vec!["bridge given a malformed config: exited 0 with no error".to_owned()];
        assert_eq!(over_items(4, &unjudged, vec![]), Err(format!("1 of 4 not judged: {}", unjudged[0])), "one unjudged item: no pass");
        let all_unjudged: Vec<String> = (0..4).map(|i| format!("case {i}")).collect();
        assert!(over_items(4, &all_unjudged, vec![]).is_err(), "none judged: no pass");
        // A problem found stands, with what could not be judged beside it.
        let judged = over_items(4, &unjudged, vec!["error code 999, expected 6".into()]).unwrap();
        assert_eq!(judged.len(), 2);
        assert!(judged[1].starts_with("1 of 4 not judged"));
    }

    #[test]
    fn an_interface_or_address_missing_from_the_container_is_named() {
        let container: BTreeSet<String> = ["link eth0 mac c2:11:22:33:44:55".to_owned()].into();
        let problems = not_really_there(&ok(), "/run/netns/c", &container, &BTreeSet::new());
        assert_eq!(problems, vec!["address 10.0.0.2/24 is not on eth0 in the container"]);
    }
}
