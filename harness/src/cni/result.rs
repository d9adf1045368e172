//! What a valid CNI result is, per version of the specification (SPEC section 5, "ADD
//! success"): a pure function both the runtime (which refuses a plugin's invalid result,
//! as a runtime's libcni does when it decodes one) and `cni_spec` (which judges it) use.

use std::net::IpAddr;

use serde_json::Value;

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
        // 0.1.0 and 0.2.0 results have one format; libcni up to 0.8 answered a 0.1.0 config
        // with a 0.2.0 result on purpose (containernetworking/cni `pkg/types/020/types.go`,
        // v0.8.1: `ImplementedSpecVersion = "0.2.0"`, `SupportedVersions` with "0.1.0").
        Some("0.2.0") if version == "0.1.0" => {}
        other => problems.push(format!("cniVersion is {other:?}, expected \"{version}\" (the version of the config)")),
    }
    if matches!(version, "0.1.0" | "0.2.0") {
        problems.extend(legacy_result_problems(object));
        return problems;
    }
    let interfaces = object
        .get("interfaces")
        .map(|i| {
            i.as_array().cloned().unwrap_or_else(|| {
                problems.push(format!("interfaces is not a list: {i}"));
                Vec::new()
            })
        })
        .unwrap_or_default();
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
