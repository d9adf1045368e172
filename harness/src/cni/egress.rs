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
    /// Cilium `CiliumEgressGatewayPolicy`; realized when the gateway node's agent lists
    /// the policy in its BPF egress map. Cilium does not assign the egress IP: it must
    /// already be on the gateway node's interface.
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
                    "destinationCIDRs": ["0.0.0.0/0"],
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
    /// for Cilium, an entry for each selected pod with the policy's egress IP in the BPF
    /// egress map of the gateway node's agent and of the agent on the pod's own node (the
    /// source node redirects, the gateway SNATs: both must be programmed).
    pub fn realized(self, access: &KubeAccess, policy: &EgressPolicy, nodes: &[Node], selected: &[Pod]) -> Result<Option<EgressStatus>> {
        match self {
            EgressDialect::None => Err(HarnessError::NotFound { what: "egress policy dialect".into(), wanted: "for a CNI whose profile names none (egress:)".into() }),
            EgressDialect::LabReference => Err(HarnessError::NotFound { what: "API object".into(), wanted: "the lab realizes its own policies".into() }),
            EgressDialect::Antrea => {
                let egress = self.render(policy).pop().expect("the Egress is rendered last");
                let status = access.get(&egress)?.map(|o| o["status"].clone()).unwrap_or(Value::Null);
                Ok(antrea_status(&status, policy.egress_ip))
            }
            EgressDialect::Cilium => {
                let gateway = self.gateway_node(policy, nodes)?;
                let mut listed_on = std::collections::BTreeMap::new();
                for node in std::iter::once(gateway.name.as_str()).chain(selected.iter().map(|p| p.node.as_str())) {
                    if !listed_on.contains_key(node) {
                        let agent = cilium_agent_on(access, node)?;
                        let listed = access
                            .exec("kube-system", &agent, Some("cilium-agent"), &["cilium-dbg", "bpf", "egress", "list"])?
                            .stdout_of_success(&format!("cilium-dbg bpf egress list in pod kube-system/{agent}"))?;
                        listed_on.insert(node.to_owned(), listed);
                    }
                }
                let programmed = cilium_programmed(&listed_on, &gateway.name, selected, policy.egress_ip);
                Ok(programmed.then(|| EgressStatus { egress_node: gateway.name.clone(), egress_ip: policy.egress_ip }))
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

/// Whether `cilium-dbg bpf egress list` output has an entry SNATing to `egress_ip`, from
/// `source` when given (columns: source IP, destination CIDR, egress IP, gateway IP).
fn cilium_lists_egress_ip(listed: &str, egress_ip: IpAddr, source: Option<IpAddr>) -> bool {
    let (wanted, source) = (egress_ip.to_string(), source.map(|s| s.to_string()));
    listed.lines().skip(1).any(|line| {
        let columns: Vec<&str> = line.split_whitespace().collect();
        columns.get(2) == Some(&wanted.as_str()) && source.as_deref().is_none_or(|s| columns.first() == Some(&s))
    })
}

/// Whether the maps listed per node hold the policy: the gateway's lists the egress IP, and
/// each selected pod's own node has the pod's entry.
fn cilium_programmed(listed_on: &std::collections::BTreeMap<String, String>, gateway: &str, selected: &[Pod], egress_ip: IpAddr) -> bool {
    let on = |node: &str| listed_on.get(node).map(String::as_str).unwrap_or_default();
    cilium_lists_egress_ip(on(gateway), egress_ip, None) && selected.iter().all(|pod| cilium_lists_egress_ip(on(&pod.node), egress_ip, Some(pod.address)))
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

    #[test]
    fn cilium_is_realized_when_its_map_snats_to_the_egress_ip() {
        let listed = "Source IP    Destination CIDR   Egress IP      Gateway IP\n10.244.1.5   0.0.0.0/0          172.18.0.200   172.18.0.4\n";
        assert!(cilium_lists_egress_ip(listed, "172.18.0.200".parse().unwrap(), None));
        assert!(!cilium_lists_egress_ip(listed, "172.18.0.4".parse().unwrap(), None), "the gateway IP column is not the egress IP");
        assert!(!cilium_lists_egress_ip("Source IP    Destination CIDR   Egress IP      Gateway IP\n", "172.18.0.200".parse().unwrap(), None));
    }

    #[test]
    fn cilium_is_realized_only_when_the_source_node_has_the_pods_entry_too() {
        let header = "Source IP    Destination CIDR   Egress IP      Gateway IP\n";
        let entry = format!("{header}10.244.1.5   0.0.0.0/0          172.18.0.200   172.18.0.4\n");
        let pod = Pod { name: "web".into(), namespace: "prod-t1-0a1b2c".into(), labels: Default::default(), node: "c-worker".into(), address: "10.244.1.5".parse().unwrap() };
        let egress_ip = "172.18.0.200".parse().unwrap();
        let maps = |source_node: &str| std::collections::BTreeMap::from([("c-worker2".to_owned(), entry.clone()), ("c-worker".to_owned(), source_node.to_owned())]);
        assert!(!cilium_programmed(&maps(header), "c-worker2", std::slice::from_ref(&pod), egress_ip), "the gateway knows the policy, the pod's node not yet");
        assert!(cilium_programmed(&maps(&entry), "c-worker2", std::slice::from_ref(&pod), egress_ip));
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
