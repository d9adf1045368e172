//! What a flow moved in iptables: each rule's packet counter from `iptables-save -c`, and
//! the rules whose counters a known flow grew. Performance budgets count the rules a flow
//! traverses; a failed trial's path trace lists the rules its replayed request moved.

use std::collections::BTreeMap;

/// Every rule of `iptables-save -c` output with its packet counter, keyed by table, rule
/// text and its occurrence (chain policies are not rules).
pub fn rule_counters(saved: &str) -> BTreeMap<String, u64> {
    let mut table = "";
    let mut seen = BTreeMap::<String, usize>::new();
    let mut rules = BTreeMap::new();
    for line in saved.lines() {
        if let Some(name) = line.strip_prefix('*') {
            table = name;
        } else if let Some(rest) = line.strip_prefix('[') {
            let Some((counters, rule)) = rest.split_once("] ") else { continue };
            let packets = counters.split(':').next().and_then(|p| p.parse().ok()).unwrap_or(0);
            let key = format!("{table} {rule}");
            let occurrence = seen.entry(key.clone()).or_default();
            *occurrence += 1;
            rules.insert(format!("{key} #{occurrence}"), packets);
        }
    }
    rules
}

/// The rules a flow of `packets` datagrams (one connection) moved between two readings:
/// those whose counter grew by all of them, and the `nat` table's, which see only a
/// connection's first packet, when they grew at all.
pub fn moved_rules(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>, packets: u64) -> Vec<String> {
    after
        .iter()
        .filter(|(rule, count)| {
            let was = before.get(*rule).copied().unwrap_or(0);
            let needed = if rule.starts_with("nat ") { 1 } else { packets };
            count.saturating_sub(was) >= needed
        })
        .map(|(rule, _)| rule.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_counts_as_traversed_only_when_the_whole_flow_moved_it() {
        let before = rule_counters("*filter\n:FORWARD ACCEPT [9:9]\n[10:800] -A FORWARD -j ACCEPT\n[0:0] -A FORWARD\n[0:0] -A FORWARD\nCOMMIT\n*nat\n[3:180] -A POSTROUTING -s 10.244.1.0/24 -j MASQUERADE\nCOMMIT\n");
        let after = rule_counters("*filter\n:FORWARD ACCEPT [500:9]\n[210:800] -A FORWARD -j ACCEPT\n[200:0] -A FORWARD\n[150:0] -A FORWARD\nCOMMIT\n*nat\n[4:240] -A POSTROUTING -s 10.244.1.0/24 -j MASQUERADE\nCOMMIT\n");
        assert_eq!(
            moved_rules(&before, &after, 200),
            vec!["filter -A FORWARD #1", "filter -A FORWARD -j ACCEPT #1", "nat -A POSTROUTING -s 10.244.1.0/24 -j MASQUERADE #1"]
        );
    }
}
