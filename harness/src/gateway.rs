//! Gateway API implementations: an axis of their own beside the CNI, as Gateway API's
//! `SupportedFeatures` has it. Which HTTPRoute features a run can test is the Gateway
//! implementation's answer, not the CNI's: Antrea with NGINX Gateway Fabric and Cilium
//! with its own Gateway each declare what they support, and what they do not, with why.

use crate::error::{HarnessError, Result};
use crate::install::{Feature, Installation, Workload};

/// Names a Gateway implementation in place of the CNI profile's default.
pub const GATEWAY_VARIABLE: &str = "CNICONF_GATEWAY";

/// Custom resource definitions to install from a URL before the CNI, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraCrds {
    pub url: &'static str,
    pub why: &'static str,
}

/// One implementation of the Gateway API, at a pinned version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayImplementation {
    pub name: &'static str,
    pub version: &'static str,
    /// The GatewayClass the run's Gateway names.
    pub class: &'static str,
    /// HTTPRoute features it supports (Gateway API names them `HTTPRoute...` in conformance reports).
    pub features: &'static [Feature],
    /// Features it does not support, each with where that is stated.
    pub unsupported: &'static [(Feature, &'static str)],
    /// Its own installation; `None` when the CNI (or the lab) provides it.
    pub installation: Option<Installation>,
    /// Values added to the CNI's own Helm install (Cilium's built-in Gateway API).
    pub cni_values: &'static [(&'static str, &'static str)],
    /// CRDs beyond the Gateway API standard channel that the implementation requires.
    pub extra_crds: &'static [ExtraCrds],
    /// What must be ready after its installation.
    pub readiness: Vec<Workload>,
    /// The CNI it is part of, when it cannot run beside another.
    pub part_of_cni: Option<&'static str>,
}

impl GatewayImplementation {
    pub fn supports(&self, feature: Feature) -> bool {
        self.features.contains(&feature)
    }

    /// Why `feature` cannot be tested with this implementation, if it cannot.
    pub fn lacks(&self, feature: Feature) -> Option<String> {
        if self.supports(feature) {
            return None;
        }
        let source = self.unsupported.iter().find(|(f, _)| *f == feature).map(|(_, why)| format!(" ({why})")).unwrap_or_default();
        Some(format!("Gateway API implementation {} {} does not support {}{source}", self.name, self.version, feature.name()))
    }
}

/// NGINX Gateway Fabric 1.6.2, the thesis's Gateway beside Antrea. Its compatibility page
/// lists `requestMirror` as not supported (support arrived in NGF 2.0, which needs the
/// Gateway API v1.3 CRDs and a different data-plane layout), and its graph code marks a rule
/// with an unsupported filter invalid, so the whole rule would answer 500: the mirror
/// scenario is ignored with that reason rather than failed for it.
pub fn nginx_gateway_fabric() -> GatewayImplementation {
    GatewayImplementation {
        name: "nginx-gateway-fabric",
        version: "1.6.2",
        class: "nginx",
        features: &[Feature::GatewayWeights],
        unsupported: &[(Feature::RequestMirror, "its compatibility page: \"requestMirror: Not supported\"; added in NGINX Gateway Fabric 2.0")],
        installation: Some(Installation::Helm {
            repo_url: String::new(),
            chart: "oci://ghcr.io/nginx/charts/nginx-gateway-fabric".into(),
            release: "ngf".into(),
            namespace: "nginx-gateway".into(),
            values: vec![("service.type".into(), "LoadBalancer".into())],
        }),
        cni_values: &[],
        extra_crds: &[],
        readiness: vec![Workload::new("Deployment", "nginx-gateway", "ngf-nginx-gateway-fabric")],
        part_of_cni: None,
    }
}

/// Cilium's own Gateway API (1.16), served by the per-node `cilium-envoy` DaemonSet. Its
/// operator requires the TLSRoute CRD, which only the Gateway API experimental channel
/// carries: without it the operator reports the required Gateway API resources missing
/// and never starts its Gateway controllers, so no Gateway gets an address.
pub fn cilium_gateway() -> GatewayImplementation {
    GatewayImplementation {
        name: "cilium",
        version: "1.16.6",
        class: "cilium",
        // Cilium 1.16's conformance report (Gateway API v1.1.0) lists HTTPRouteRequestMirror.
        features: &[Feature::GatewayWeights, Feature::RequestMirror],
        unsupported: &[],
        installation: None,
        cni_values: &[("gatewayAPI.enabled", "true")],
        extra_crds: &[ExtraCrds {
            url: "https://raw.githubusercontent.com/kubernetes-sigs/gateway-api/{gateway_api}/config/crd/experimental/gateway.networking.k8s.io_tlsroutes.yaml",
            why: "Cilium 1.16's operator starts its Gateway controllers only when the TLSRoute CRD (experimental channel) is installed",
        }],
        readiness: vec![],
        part_of_cni: Some("cilium"),
    }
}

/// The lab's reference Gateway: a real nginx configured from HTTPRoutes as NGINX Gateway
/// Fabric translates them, with `mirror` for RequestMirror. Part of the harness, there to
/// prove the suites, not a subject under test.
pub fn lab_reference_nginx() -> GatewayImplementation {
    GatewayImplementation {
        name: "lab-reference-nginx",
        version: "as installed (Debian nginx-light)",
        class: "lab",
        features: &[Feature::GatewayWeights, Feature::RequestMirror],
        unsupported: &[],
        installation: None,
        cni_values: &[],
        extra_crds: &[],
        readiness: vec![],
        part_of_cni: None,
    }
}

/// Implementations a user can name in [`GATEWAY_VARIABLE`] on a cluster with an API server.
pub fn known() -> Vec<GatewayImplementation> {
    vec![nginx_gateway_fabric(), cilium_gateway()]
}

/// The implementation a profile file names in `gateway:`: one of [`known`], or on the lab
/// the lab's own reference Gateway.
pub fn for_profile(name: &str, cni: &str, on_the_lab: bool) -> Result<GatewayImplementation> {
    let reference = lab_reference_nginx();
    match (name == reference.name, on_the_lab) {
        (true, true) => Ok(reference),
        (true, false) => Err(HarnessError::UnknownName {
            what: "Gateway API implementation for a cluster (the lab's own is only on the lab)".into(),
            name: name.into(),
            variable: "the profile's gateway field".into(),
            expected: known().iter().map(|g| g.name).collect::<Vec<_>>().join(", "),
        }),
        (false, _) => by_name(name, cni),
    }
}

/// The implementation named by [`GATEWAY_VARIABLE`], if set, for a run of `cni`.
pub fn from_env(cni: &str) -> Result<Option<GatewayImplementation>> {
    let Some(name) = std::env::var(GATEWAY_VARIABLE).ok().filter(|v| !v.is_empty()) else { return Ok(None) };
    by_name(&name, cni).map(Some)
}

/// The implementation called `name`, checked against the run's CNI.
pub fn by_name(name: &str, cni: &str) -> Result<GatewayImplementation> {
    let known = known();
    let found = known.iter().find(|g| g.name == name).cloned().ok_or_else(|| HarnessError::UnknownName {
        what: "Gateway API implementation".into(),
        name: name.into(),
        variable: GATEWAY_VARIABLE.into(),
        expected: known.iter().map(|g| g.name).collect::<Vec<_>>().join(", "),
    })?;
    match found.part_of_cni {
        Some(owner) if owner != cni => Err(HarnessError::UnknownName {
            what: format!("Gateway API implementation for CNI {cni} (`{name}` is part of {owner})"),
            name: name.into(),
            variable: GATEWAY_VARIABLE.into(),
            expected: known.iter().filter(|g| g.part_of_cni.is_none_or(|o| o == cni)).map(|g| g.name).collect::<Vec<_>>().join(", "),
        }),
        _ => Ok(found),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_gateway_fabric_1_6_does_not_mirror_and_says_why() {
        let ngf = nginx_gateway_fabric();
        assert!(ngf.supports(Feature::GatewayWeights));
        let reason = ngf.lacks(Feature::RequestMirror).expect("NGF 1.6.2 has no RequestMirror");
        assert!(
            reason.contains("nginx-gateway-fabric 1.6.2 does not support Gateway API request mirroring") && reason.contains("NGINX Gateway Fabric 2.0"),
            "{reason}"
        );
    }

    #[test]
    fn cilium_gateway_mirrors_and_needs_the_tlsroute_crd() {
        let cilium = cilium_gateway();
        assert!(cilium.lacks(Feature::RequestMirror).is_none());
        assert!(cilium.extra_crds.iter().any(|c| c.url.contains("experimental/gateway.networking.k8s.io_tlsroutes.yaml")));
    }

    #[test]
    fn a_gateway_part_of_another_cni_is_refused_by_name() {
        let error = by_name("cilium", "antrea").unwrap_err().to_string();
        assert!(error.contains("is part of cilium") && error.contains("nginx-gateway-fabric"), "{error}");
        let error = by_name("envoy", "antrea").unwrap_err().to_string();
        assert!(error.contains("unknown Gateway API implementation `envoy` in CNICONF_GATEWAY; expected one of: nginx-gateway-fabric, cilium"), "{error}");
        assert_eq!(by_name("nginx-gateway-fabric", "cilium").unwrap().name, "nginx-gateway-fabric");
    }
}
