//! How each CNI expresses the scenarios' neutral egress policy, and how it says the policy
//! is realized. The objects are the ones in the seeds (thesis ch. 3.1.1).

use serde_json::{json, Value};

use crate::model::{EgressPolicy, LabelSelector};

/// A CNI's way of saying "these pods leave through this IP".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EgressDialect {
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
            EgressDialect::LabReference => vec![],
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

    /// Whether the CNI assigns the egress IP to the gateway node itself (Antrea does,
    /// Cilium expects it there already).
    pub fn assigns_egress_ip(self) -> bool {
        !matches!(self, EgressDialect::Cilium)
    }
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
    fn the_lab_needs_no_objects() {
        assert!(EgressDialect::LabReference.render(&seed_policy()).is_empty());
    }
}
