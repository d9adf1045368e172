//! The CNI specification's rules as pure functions: from what a plugin printed and what
//! the node and container hold, the list of violations, each naming the rule.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde_json::Value;

use crate::cni::runtime::PluginOutput;
use crate::verdict::{Evidence, FailureReason, Verdict};

/// One rule of the specification, as a check states it.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub name: &'static str,
    pub sentence: &'static str,
    /// Where SPEC.md (1.0.0 unless said) states it.
    pub section: &'static str,
}

/// The verdict of `rule` on `subject`: passed when there are no `problems`.
pub fn judged(rule: &Rule, subject: &str, problems: Vec<String>, seen: String) -> Verdict {
    let passed = problems.is_empty();
    Verdict {
        check: format!("CNI specification, {}", rule.section),
        subject: subject.to_owned(),
        passed,
        expected: Evidence::new(rule.name, rule.sentence),
        observed: Evidence::new(if passed { rule.name } else { "violation" }, if passed { seen } else { problems.join("; ") }),
        reason: (!passed).then_some(FailureReason::SpecViolation),
        look_at: format!("{} of the CNI specification (https://github.com/containernetworking/cni/blob/main/SPEC.md)", rule.section),
        statistics: Vec::new(),
        counters: Vec::new(),
        figures: Vec::new(),
    }
}

/// Versions whose results carry `ips[].version` ("4" or "6").
fn has_ip_version_field(version: &str) -> bool {
    matches!(version, "0.3.0" | "0.3.1" | "0.4.0")
}

/// Violations of the ADD success result for `version`: its `cniVersion`, each interface's
/// name (and `sandbox`, a path), each IP's CIDR address, gateway, interface index (within
/// `interfaces`) and, before 1.0.0, its `version`; routes' destinations and gateways; DNS.
pub fn result_problems(result: &Value, version: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(object) = result.as_object() else {
        return vec![format!("the result is not a JSON object: {result}")];
    };
    match object.get("cniVersion").and_then(Value::as_str) {
        Some(v) if v == version => {}
        other => problems.push(format!("cniVersion is {other:?}, expected \"{version}\" (the version of the config)")),
    }
    if matches!(version, "0.1.0" | "0.2.0") {
        problems.extend(legacy_result_problems(object));
        return problems;
    }
    let interfaces = object.get("interfaces").map(|i| i.as_array().cloned().unwrap_or_else(|| {
        problems.push(format!("interfaces is not a list: {i}"));
        Vec::new()
    })).unwrap_or_default();
    for (i, interface) in interfaces.iter().enumerate() {
        if interface.get("name").and_then(Value::as_str).is_none_or(str::is_empty) {
            problems.push(format!("interfaces[{i}] has no name"));
        }
        if let Some(mac) = interface.get("mac").and_then(Value::as_str).filter(|m| !m.is_empty()) {
            let octets: Vec<&str> = mac.split(':').collect();
            if octets.len() != 6 || octets.iter().any(|o| o.len() != 2 || u8::from_str_radix(o, 16).is_err()) {
                problems.push(format!("interfaces[{i}].mac {mac:?} is not a MAC address"));
            }
        }
        if let Some(sandbox) = interface.get("sandbox") {
            if sandbox.as_str().is_none() {
                problems.push(format!("interfaces[{i}].sandbox is not a string: {sandbox}"));
            }
        }
    }
    for (i, ip) in object.get("ips").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let address = ip.get("address").and_then(Value::as_str);
        let net = address.and_then(|a| a.parse::<ipnet::IpNet>().ok());
        if net.is_none() {
            problems.push(format!("ips[{i}].address {address:?} is not an address in CIDR notation"));
        }
        if let Some(gateway) = ip.get("gateway") {
            if gateway.as_str().and_then(|g| g.parse::<IpAddr>().ok()).is_none() {
                problems.push(format!("ips[{i}].gateway {gateway} is not an IP address"));
            }
        }
        if let Some(index) = ip.get("interface") {
            match index.as_u64() {
                Some(n) if (n as usize) < interfaces.len() => {}
                _ => problems.push(format!("ips[{i}].interface {index} is not an index into the {} interfaces of the result", interfaces.len())),
            }
        }
        if has_ip_version_field(version) {
            let wanted = match net {
                Some(ipnet::IpNet::V4(_)) => Some("4"),
                Some(ipnet::IpNet::V6(_)) => Some("6"),
                None => None,
            };
            let found = ip.get("version").and_then(Value::as_str);
            if found.is_none() || (wanted.is_some() && found != wanted) {
                problems.push(format!("ips[{i}].version is {found:?}, expected {wanted:?} (required before 1.0.0)"));
            }
        }
    }
    for (i, route) in object.get("routes").and_then(Value::as_array).into_iter().flatten().enumerate() {
        if route.get("dst").and_then(Value::as_str).and_then(|d| d.parse::<ipnet::IpNet>().ok()).is_none() {
            problems.push(format!("routes[{i}].dst {} is not a destination in CIDR notation", route.get("dst").unwrap_or(&Value::Null)));
        }
        if let Some(gw) = route.get("gw") {
            if gw.as_str().and_then(|g| g.parse::<IpAddr>().ok()).is_none() {
                problems.push(format!("routes[{i}].gw {gw} is not an IP address"));
            }
        }
    }
    if let Some(dns) = object.get("dns") {
        match dns.as_object() {
            None => problems.push(format!("dns is not an object: {dns}")),
            Some(dns) => {
                for (i, server) in dns.get("nameservers").and_then(Value::as_array).into_iter().flatten().enumerate() {
                    if server.as_str().and_then(|s| s.parse::<IpAddr>().ok()).is_none() {
                        problems.push(format!("dns.nameservers[{i}] {server} is not an IP address"));
                    }
                }
            }
        }
    }
    problems
}

/// Violations of the 0.1.0 and 0.2.0 result: `ip4` and `ip6`, each with its `ip` in CIDR
/// notation, an optional `gateway` and `routes`.
fn legacy_result_problems(object: &serde_json::Map<String, Value>) -> Vec<String> {
    let mut problems = Vec::new();
    for family in ["ip4", "ip6"] {
        let Some(config) = object.get(family) else { continue };
        if config.get("ip").and_then(Value::as_str).and_then(|a| a.parse::<ipnet::IpNet>().ok()).is_none() {
            problems.push(format!("{family}.ip {} is not an address in CIDR notation", config.get("ip").unwrap_or(&Value::Null)));
        }
        if let Some(gateway) = config.get("gateway") {
            if gateway.as_str().and_then(|g| g.parse::<IpAddr>().ok()).is_none() {
                problems.push(format!("{family}.gateway {gateway} is not an IP address"));
            }
        }
        for (i, route) in config.get("routes").and_then(Value::as_array).into_iter().flatten().enumerate() {
            if route.get("dst").and_then(Value::as_str).and_then(|d| d.parse::<ipnet::IpNet>().ok()).is_none() {
                problems.push(format!("{family}.routes[{i}].dst is not a destination in CIDR notation"));
            }
        }
    }
    if object.contains_key("ips") || object.contains_key("interfaces") {
        problems.push("ips and interfaces are 0.3.0 fields, not in a 0.1.0 or 0.2.0 result".into());
    }
    problems
}

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
                let there = container.iter().any(|line| line.starts_with(&format!("link {name} mac ")) && mac.as_ref().is_none_or(|m| line.ends_with(m.as_str())));
                if !there {
                    problems.push(format!("interface {name} (mac {}) is not in the container; it has: {}", mac.as_deref().unwrap_or("any"), container.iter().cloned().collect::<Vec<_>>().join(", ")));
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

/// Violations of the error contract: a non-zero exit and, on stdout, the error structure
/// (`code`, an integer; `msg`, a string) with one of `codes` (or, where `plugin_codes`,
/// a plugin-specific code of 100 or more).
pub fn error_problems(output: &PluginOutput, codes: &[u64], plugin_codes: bool) -> Vec<String> {
    let mut problems = Vec::new();
    if output.success {
        problems.push("it exited with status 0".to_owned());
    }
    match serde_json::from_str::<Value>(&output.stdout) {
        Ok(Value::Object(error)) => {
            match error.get("code").and_then(Value::as_u64) {
                Some(code) if codes.contains(&code) || (plugin_codes && code >= 100) => {}
                Some(code) => problems.push(format!("error code {code}, expected {}{}", codes.iter().map(u64::to_string).collect::<Vec<_>>().join(" or "), if plugin_codes { " or a plugin code of 100 or more" } else { "" })),
                None => problems.push(format!("the error has no integer code: {}", output.stdout.trim())),
            }
            if error.get("msg").and_then(Value::as_str).is_none() {
                problems.push(format!("the error has no msg: {}", output.stdout.trim()));
            }
        }
        _ => problems.push(format!(
            "stdout is not the specification's JSON error structure: {:?} (stderr {:?})",
            output.stdout.trim(),
            output.stderr.trim()
        )),
    }
    problems
}

/// What `after` holds that `before` did not, and what it lost.
pub fn changes(before: &BTreeSet<String>, after: &BTreeSet<String>) -> Vec<String> {
    after.difference(before).map(|l| format!("left behind: {l}")).chain(before.difference(after).map(|l| format!("removed: {l}"))).collect()
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
        let mut new_shape = ok();
        new_shape["cniVersion"] = json!("0.2.0");
        assert_eq!(result_problems(&new_shape, "0.2.0"), vec!["ips and interfaces are 0.3.0 fields, not in a 0.1.0 or 0.2.0 result"]);
        assert_eq!(result_problems(&json!({"cniVersion": "0.1.0", "ip4": {"ip": "10.0.0.2"}}), "0.1.0"), vec!["ip4.ip \"10.0.0.2\" is not an address in CIDR notation"]);
    }

    #[test]
    fn errors_must_be_json_with_the_right_code() {
        let output = |success, stdout: &str| PluginOutput { success, status: "exit status: 1".into(), stdout: stdout.into(), stderr: String::new() };
        assert!(error_problems(&output(false, r#"{"code": 4, "msg": "CNI_NETNS missing"}"#), &[4], false).is_empty());
        assert_eq!(error_problems(&output(false, r#"{"code": 7, "msg": "x"}"#), &[4], false), vec!["error code 7, expected 4"]);
        assert!(error_problems(&output(false, r#"{"code": 101, "msg": "x"}"#), &[7], true).is_empty());
        assert!(error_problems(&output(false, "failed: no netns"), &[4], false)[0].contains("not the specification's JSON error structure"));
        assert_eq!(error_problems(&output(true, r#"{"code": 4, "msg": "x"}"#), &[4], false), vec!["it exited with status 0"]);
    }

    #[test]
    fn an_interface_or_address_missing_from_the_container_is_named() {
        let container: BTreeSet<String> = ["link eth0 mac c2:11:22:33:44:55".to_owned()].into();
        let problems = not_really_there(&ok(), "/run/netns/c", &container, &BTreeSet::new());
        assert_eq!(problems, vec!["address 10.0.0.2/24 is not on eth0 in the container"]);
    }
}
