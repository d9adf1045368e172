//! How each CNI expresses the scenarios' neutral egress policy, and how it says the policy
//! is realized. The objects are the ones in the seeds (thesis ch. 3.1.1).

use std::net::IpAddr;

use serde_json::{json, Value};

use crate::error::{HarnessError, Result};
use crate::kube_access::KubeAccess;
use crate::model::{EgressPolicy, EgressStatus, LabelSelector, Node, Pod};

/// A CNI's way of saying "these pods leave through this IP"; a profile names it as
/// `egress: antrea | cilium | lab-reference` (absent: the CNI has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EgressDialect {
    /// The CNI has no egress policy of its own.
    None,
    /// The lab's reference gateway, realized by the lab itself; no objects.
    LabReference,
    /// Antrea `Egress` + `ExternalIPPool`; realized when `status.egressNode` is set.
    Antrea,
    /// Cilium `CiliumEgressGatewayPolicy`; realized when every selected pod's own node
    /// redirects it to a gateway node and that node's agent SNATs it to the egress IP (see
    /// [`cilium_gateway_of`]). Cilium does not assign the egress IP: it must already be on
    /// the gateway node's interface.
    Cilium,
}

impl EgressDialect {
    /// The Kubernetes objects for `policy`, in apply order.
    pub fn render(self, policy: &EgressPolicy) -> Vec<Value> {
        match self {
            EgressDialect::None | EgressDialect::LabReference => vec![],
            EgressDialect::Antrea => {
                let pool = format!("{}-pool", policy.name);
                vec![
                    json!({
                        "apiVersion": "crd.antrea.io/v1beta1",
                        "kind": "ExternalIPPool",
                        "metadata": { "name": pool },
                        "spec": {
                            "ipRanges": [{ "start": policy.egress_ip.to_string(), "end": policy.egress_ip.to_string() }],
                            "nodeSelector": selector(&policy.gateway_node_selector),
                        },
                    }),
                    json!({
                        "apiVersion": "crd.antrea.io/v1beta1",
                        "kind": "Egress",
                        "metadata": { "name": policy.name },
                        "spec": {
                            "appliedTo": {
                                "namespaceSelector": selector(&policy.namespace_selector),
                                "podSelector": selector(&policy.pod_selector),
                            },
                            "egressIP": policy.egress_ip.to_string(),
                            "externalIPPool": pool,
                        },
                    }),
                ]
            }
            EgressDialect::Cilium => {
                let mut spec = json!({
                    "selectors": [{
                        "namespaceSelector": selector(&policy.namespace_selector),
                        "podSelector": selector(&policy.pod_selector),
                    }],
                    "destinationCIDRs": [CILIUM_DESTINATION_CIDR],
                    "egressGateway": {
                        "nodeSelector": selector(&policy.gateway_node_selector),
                        "egressIP": policy.egress_ip.to_string(),
                    },
                });
                if !policy.excluded_cidrs.is_empty() {
                    spec["excludedCIDRs"] = policy.excluded_cidrs.iter().map(|c| Value::String(c.to_string())).collect();
                }
                vec![json!({
                    "apiVersion": "cilium.io/v2",
                    "kind": "CiliumEgressGatewayPolicy",
                    "metadata": { "name": policy.name },
                    "spec": spec,
                })]
            }
        }
    }

    /// The node that carries the policy's egress IP: the first, by name, its node selector
    /// selects (Cilium's rule; Antrea reports its choice in the status instead).
    pub fn gateway_node<'n>(self, policy: &EgressPolicy, nodes: &'n [Node]) -> Result<&'n Node> {
        let mut selected: Vec<&Node> = nodes.iter().filter(|n| policy.gateway_node_selector.matches(&n.labels)).collect();
        selected.sort_by(|a, b| a.name.cmp(&b.name));
        selected.first().copied().ok_or_else(|| HarnessError::NotFound {
            what: "node".into(),
            wanted: format!("the gateway node selector {:?} of egress policy {}", policy.gateway_node_selector.match_labels, policy.name),
        })
    }

    /// Whether the CNI reports the policy realized, and where: Antrea's `status.egressNode`;
    /// for Cilium, the BPF egress maps of the agents on the selected pods' nodes and on the
    /// nodes the gateway selector selects (the source node redirects, the gateway SNATs:
    /// both must be programmed; see [`cilium_gateway_of`]).
    pub fn realized(self, access: &KubeAccess, policy: &EgressPolicy, nodes: &[Node], selected: &[Pod]) -> Result<Option<EgressStatus>> {
        match self {
            EgressDialect::None => {
                Err(HarnessError::NotFound { what: "egress policy dialect".into(), wanted: "for a CNI whose profile names none (egress:)".into() })
            }
            EgressDialect::LabReference => Err(HarnessError::NotFound { what: "API object".into(), wanted: "the lab realizes its own policies".into() }),
            EgressDialect::Antrea => {
                let egress = self.render(policy).pop().expect("the Egress is rendered last");
                let status = access.get(&egress)?.map(|o| o["status"].clone()).unwrap_or(Value::Null);
                Ok(antrea_status(&status, policy.egress_ip))
            }
            EgressDialect::Cilium => {
                let candidates = nodes.iter().filter(|n| policy.gateway_node_selector.matches(&n.labels)).map(|n| n.name.as_str());
                let mut listed_on = std::collections::BTreeMap::new();
                for node in selected.iter().map(|p| p.node.as_str()).chain(candidates) {
                    if !listed_on.contains_key(node) {
                        let agent = cilium_agent_on(access, node)?;
                        let reading = format!("cilium-dbg bpf egress list -o json in pod kube-system/{agent}");
                        let listed = access
                            .exec("kube-system", &agent, Some("cilium-agent"), &["cilium-dbg", "bpf", "egress", "list", "-o", "json"])?
                            .stdout_of_success(&reading)?;
                        listed_on.insert(node.to_owned(), cilium_egress_entries(&listed).map_err(|detail| HarnessError::Command { command: reading, detail })?);
                    }
                }
                let gateway = cilium_gateway_of(&listed_on, nodes, policy, selected);
                Ok(gateway.map(|node| EgressStatus { egress_node: node.name.clone(), egress_ip: policy.egress_ip }))
            }
        }
    }

    /// Whether the CNI assigns the egress IP to the gateway node itself (Antrea does,
    /// Cilium expects it there already).
    pub fn assigns_egress_ip(self) -> bool {
        !matches!(self, EgressDialect::Cilium)
    }
}

/// An Antrea Egress status as the neutral status: realized once `egressNode` is set.
fn antrea_status(status: &Value, requested: IpAddr) -> Option<EgressStatus> {
    let node = status["egressNode"].as_str().filter(|n| !n.is_empty())?;
    let ip = status["egressIP"].as_str().and_then(|ip| ip.parse().ok()).unwrap_or(requested);
    Some(EgressStatus { egress_node: node.to_owned(), egress_ip: ip })
}

/// The one destination of the Cilium policies the harness renders: everything, but for the
/// policy's `excludedCIDRs`.
const CILIUM_DESTINATION_CIDR: &str = "0.0.0.0/0";

/// One entry of a Cilium agent's BPF egress policy map, as `cilium-dbg bpf egress list -o
/// json` prints it (cilium `cilium-dbg/cmd/bpf_egress_list.go`: the text table's gateway
/// column may read "Not Found" or "Excluded CIDR", so the JSON is read, not the columns).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct CiliumEgressEntry {
    #[serde(rename = "SourceIP")]
    pub source_ip: String,
    #[serde(rename = "DestCIDR")]
    pub destination_cidr: String,
    #[serde(rename = "EgressIP")]
    pub egress_ip: String,
    #[serde(rename = "GatewayIP")]
    pub gateway_ip: String,
}

/// The entries an agent printed; nothing printed (no map yet, or "No entries found." on
/// stderr) is no entries.
pub fn cilium_egress_entries(printed: &str) -> std::result::Result<Vec<CiliumEgressEntry>, String> {
    match printed.trim() {
        "" => Ok(vec![]),
        json => serde_json::from_str(json).map_err(|e| format!("not the JSON list of egress entries Cilium prints ({e}): {json}")),
    }
}

/// The gateway node Cilium programmed for every selected pod, once it has. Cilium's agent
/// writes, for each selected pod, the gateway node's IP in the gateway column on every node,
/// and the egress IP only on the gateway node itself: every other node holds `0.0.0.0`
/// there (cilium `pkg/egressgateway/policy.go`, `regenerateGatewayConfig`; cilium-cli's
/// connectivity test `egressgateway.go` expects the same). So the policy is realized when
/// each selected pod's own node redirects it to one gateway node the selector selects, and
/// that node's map SNATs the pod to the policy's egress IP.
pub fn cilium_gateway_of<'n>(
    listed_on: &std::collections::BTreeMap<String, Vec<CiliumEgressEntry>>,
    nodes: &'n [Node],
    policy: &EgressPolicy,
    selected: &[Pod],
) -> Option<&'n Node> {
    // The pod's entry for the policy's destination: an excluded CIDR is another entry for
    // the same source, more specific, which the LPM map lists first.
    let entry = |node: &str, pod: &Pod| {
        listed_on.get(node)?.iter().find(|e| e.source_ip == pod.address.to_string() && e.destination_cidr == CILIUM_DESTINATION_CIDR).cloned()
    };
    let mut gateway: Option<&Node> = None;
    for pod in selected {
        let redirect = entry(&pod.node, pod)?;
        let to = nodes.iter().find(|n| n.address.to_string() == redirect.gateway_ip && policy.gateway_node_selector.matches(&n.labels))?;
        let egress_ip_here = if to.name == pod.node { policy.egress_ip.to_string() } else { "0.0.0.0".to_owned() };
        if redirect.egress_ip != egress_ip_here || gateway.is_some_and(|g| g.name != to.name) {
            return None;
        }
        if entry(&to.name, pod)?.egress_ip != policy.egress_ip.to_string() {
            return None;
        }
        gateway = Some(to);
    }
    gateway
}

/// The Cilium agent pod on `node`.
fn cilium_agent_on(access: &KubeAccess, node: &str) -> Result<String> {
    use k8s_openapi::api::core::v1::Pod;
    let api: kube::Api<Pod> = kube::Api::namespaced(access.client().clone(), "kube-system");
    let params = kube::api::ListParams::default().labels("k8s-app=cilium").fields(&format!("spec.nodeName={node}"));
    let pods = access
        .block_on(api.list(&params))
        .map_err(|e| HarnessError::Command { command: format!("listing Cilium agents on node {node}"), detail: e.to_string() })?;
    pods.items
        .into_iter()
        .find_map(|p| p.metadata.name)
        .ok_or_else(|| HarnessError::NotFound { what: "Cilium agent pod".into(), wanted: format!("k8s-app=cilium on node {node}") })
}

fn selector(selector: &LabelSelector) -> Value {
    json!({ "matchLabels": selector.match_labels })
}

/// The objects as a multi-document YAML a person can read and `kubectl apply`.
pub fn to_yaml(objects: &[Value]) -> String {
    objects.iter().map(|o| serde_saphyr::to_string(o).expect("JSON values serialize")).collect::<Vec<_>>().join("---\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{fixture_path, load_antrea_egress};

    fn seed_policy() -> EgressPolicy {
        let mut policy = load_antrea_egress(&fixture_path("egress/prod-web.antrea.yaml")).unwrap();
        policy.egress_ip = "172.18.0.200".parse().unwrap();
        policy
    }

    #[test]
    fn antrea_objects_of_the_seed_policy() {
        insta::assert_snapshot!("antrea_egress", to_yaml(&EgressDialect::Antrea.render(&seed_policy())));
    }

    #[test]
    fn cilium_objects_of_the_seed_policy() {
        let mut policy = seed_policy();
        policy.excluded_cidrs = vec!["172.18.0.128/25".parse().unwrap()];
        insta::assert_snapshot!("cilium_egress", to_yaml(&EgressDialect::Cilium.render(&policy)));
    }

    #[test]
    fn antrea_is_realized_once_it_names_an_egress_node() {
        let requested = "172.18.0.200".parse().unwrap();
        assert_eq!(antrea_status(&json!({}), requested), None);
        assert_eq!(antrea_status(&json!({"egressNode": ""}), requested), None);
        let status = antrea_status(&json!({"egressNode": "c-worker2"}), requested).unwrap();
        assert_eq!((status.egress_node.as_str(), status.egress_ip), ("c-worker2", requested));
    }

    fn cilium_listing(entries: &[(&str, &str, &str)]) -> Vec<CiliumEgressEntry> {
        let json = serde_json::Value::Array(
            entries
                .iter()
                .map(|(source, egress, gateway)| json!({"SourceIP": source, "DestCIDR": "0.0.0.0/0", "EgressIP": egress, "GatewayIP": gateway}))
                .collect(),
        );
        cilium_egress_entries(&json.to_string()).unwrap()
    }

    fn kind_nodes() -> Vec<Node> {
        use crate::model::{labels, NodeRole};
        let node = |name: &str, address: &str, gateway: bool| Node {
            name: name.into(),
            role: NodeRole::Worker,
            labels: if gateway { labels([("network-role", "egress-gateway")]) } else { labels([]) },
            address: address.parse().unwrap(),
        };
        vec![node("c-worker", "172.18.0.3", false), node("c-worker2", "172.18.0.4", true)]
    }

    fn web_on(node: &str) -> Pod {
        Pod { name: "web".into(), namespace: "prod-t1-0a1b2c".into(), labels: Default::default(), node: node.into(), address: "10.244.1.5".parse().unwrap() }
    }

    /// What Cilium 1.16's agents write (cilium `pkg/egressgateway/policy.go`): the gateway
    /// node's IP on every node, the egress IP only on the gateway node, `0.0.0.0` elsewhere.
    /// The gateway is read from what the pod's node redirects to.
    #[test]
    fn cilium_is_realized_when_the_pods_node_redirects_to_a_gateway_that_snats_to_the_egress_ip() {
        let (nodes, policy, pod) = (kind_nodes(), seed_policy(), web_on("c-worker"));
        let listed = |source: Vec<CiliumEgressEntry>, gateway: Vec<CiliumEgressEntry>| {
            std::collections::BTreeMap::from([("c-worker".to_owned(), source), ("c-worker2".to_owned(), gateway)])
        };
        let as_cilium_writes =
            listed(cilium_listing(&[("10.244.1.5", "0.0.0.0", "172.18.0.4")]), cilium_listing(&[("10.244.1.5", "172.18.0.200", "172.18.0.4")]));
        assert_eq!(cilium_gateway_of(&as_cilium_writes, &nodes, &policy, std::slice::from_ref(&pod)).map(|n| n.name.as_str()), Some("c-worker2"));
        let egress_ip_on_the_source_node =
            listed(cilium_listing(&[("10.244.1.5", "172.18.0.200", "172.18.0.4")]), cilium_listing(&[("10.244.1.5", "172.18.0.200", "172.18.0.4")]));
        assert!(
            cilium_gateway_of(&egress_ip_on_the_source_node, &nodes, &policy, std::slice::from_ref(&pod)).is_none(),
            "only the gateway node holds the egress IP"
        );
        let gateway_not_programmed =
            listed(cilium_listing(&[("10.244.1.5", "0.0.0.0", "172.18.0.4")]), cilium_listing(&[("10.244.1.5", "0.0.0.0", "172.18.0.4")]));
        assert!(
            cilium_gateway_of(&gateway_not_programmed, &nodes, &policy, std::slice::from_ref(&pod)).is_none(),
            "the gateway has not found the egress IP on its interface yet"
        );
        let not_found = listed(cilium_listing(&[("10.244.1.5", "0.0.0.0", "Not Found")]), cilium_listing(&[("10.244.1.5", "172.18.0.200", "172.18.0.4")]));
        assert!(cilium_gateway_of(&not_found, &nodes, &policy, std::slice::from_ref(&pod)).is_none(), "no gateway node yet");
        let source_node_not_yet = listed(vec![], cilium_listing(&[("10.244.1.5", "172.18.0.200", "172.18.0.4")]));
        assert!(
            cilium_gateway_of(&source_node_not_yet, &nodes, &policy, std::slice::from_ref(&pod)).is_none(),
            "the gateway knows the policy, the pod's node not yet"
        );
        let to_an_unselected_node =
            listed(cilium_listing(&[("10.244.1.5", "0.0.0.0", "172.18.0.3")]), cilium_listing(&[("10.244.1.5", "172.18.0.200", "172.18.0.3")]));
        assert!(cilium_gateway_of(&to_an_unselected_node, &nodes, &policy, std::slice::from_ref(&pod)).is_none());
    }

    /// Cilium 1.16's agent writes a second entry for each excluded CIDR, keyed by the same
    /// source and the excluded prefix, with gateway `0.0.0.1` (`ExcludedCIDRIPv4`,
    /// cilium `pkg/egressgateway/manager.go`; `cilium-dbg/cmd/bpf_egress_list.go` prints it
    /// as "Excluded CIDR" in its table, as the address in its JSON). The map is an LPM trie,
    /// so the more specific excluded entry is listed first: the policy's is its
    /// destination's entry, wherever it is listed.
    #[test]
    fn an_excluded_cidr_s_entry_for_the_same_pod_is_not_the_policy_s() {
        let (nodes, policy, pod) = (kind_nodes(), seed_policy(), web_on("c-worker"));
        let with_exclusion = |egress: &str, gateway: &str| {
            let json = json!([
                {"SourceIP": "10.244.1.5", "DestCIDR": "172.18.0.100/32", "EgressIP": "0.0.0.0", "GatewayIP": "0.0.0.1"},
                {"SourceIP": "10.244.1.5", "DestCIDR": "0.0.0.0/0", "EgressIP": egress, "GatewayIP": gateway},
            ]);
            cilium_egress_entries(&json.to_string()).unwrap()
        };
        let listed = std::collections::BTreeMap::from([
            ("c-worker".to_owned(), with_exclusion("0.0.0.0", "172.18.0.4")),
            ("c-worker2".to_owned(), with_exclusion("172.18.0.200", "172.18.0.4")),
        ]);
        assert_eq!(cilium_gateway_of(&listed, &nodes, &policy, std::slice::from_ref(&pod)).map(|n| n.name.as_str()), Some("c-worker2"));
        let only_the_exclusion = std::collections::BTreeMap::from([("c-worker".to_owned(), with_exclusion("0.0.0.0", "172.18.0.4")[..1].to_vec())]);
        assert!(cilium_gateway_of(&only_the_exclusion, &nodes, &policy, std::slice::from_ref(&pod)).is_none(), "an excluded CIDR's entry realizes no policy");
    }

    #[test]
    fn a_pod_on_the_gateway_node_finds_the_egress_ip_in_its_own_nodes_map() {
        let (nodes, policy, pod) = (kind_nodes(), seed_policy(), web_on("c-worker2"));
        let listed = std::collections::BTreeMap::from([("c-worker2".to_owned(), cilium_listing(&[("10.244.1.5", "172.18.0.200", "172.18.0.4")]))]);
        assert_eq!(cilium_gateway_of(&listed, &nodes, &policy, std::slice::from_ref(&pod)).map(|n| n.name.as_str()), Some("c-worker2"));
    }

    #[test]
    fn cilium_s_listing_is_read_as_json_and_a_bad_one_is_named() {
        assert_eq!(cilium_egress_entries("").unwrap(), vec![], "no map yet prints nothing on stdout");
        assert_eq!(cilium_egress_entries("[]").unwrap(), vec![]);
        let error = cilium_egress_entries("Source IP   Destination CIDR   Egress IP   Gateway IP").unwrap_err();
        assert!(error.contains("not the JSON list of egress entries Cilium prints"), "{error}");
    }

    #[test]
    fn the_gateway_is_the_first_selected_node_by_name() {
        use crate::model::{labels, NodeRole};
        let node = |name: &str, gateway: bool| Node {
            name: name.into(),
            role: NodeRole::Worker,
            labels: if gateway { labels([("network-role", "egress-gateway")]) } else { labels([]) },
            address: "172.18.0.9".parse().unwrap(),
        };
        let nodes = [node("c-worker3", true), node("c-worker", false), node("c-worker2", true)];
        assert_eq!(EgressDialect::Cilium.gateway_node(&seed_policy(), &nodes).unwrap().name, "c-worker2");
    }

    #[test]
    fn the_lab_needs_no_objects() {
        assert!(EgressDialect::LabReference.render(&seed_policy()).is_empty());
    }
}
