//! Every object the kind and existing providers render, validated against the upstream
//! schema of the version the kind plan installs (`../shared/upstream/`): the CRDs of Antrea,
//! Cilium, Gateway API and MetalLB, and Kubernetes' own types for core objects. A
//! structural schema prunes unknown fields silently, so here an unknown field is an error.
//! Without the reference data the checks are ignored with that reason, never passed.
//! What no schema here checks: CEL rules (`x-kubernetes-validations`) and admission webhooks.

use std::path::{Path, PathBuf};

use harness::cni::{self, egress::EgressDialect};
use harness::model::{labels, NamespaceSpec, PodSpec};
use harness::provider::{kind, kubernetes};
use libtest_mimic::{Arguments, Completion, Failed, Trial};
use serde_json::{json, Value};

fn upstream() -> PathBuf {
    harness::workspace_root().join("../shared/upstream")
}

/// Multi-document YAML as JSON values.
fn documents(path: &Path) -> Result<Vec<Value>, Failed> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let documents: Vec<Value> = serde_saphyr::from_multiple(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(documents.into_iter().filter(|d| !d.is_null()).collect())
}

/// The served version `version` of the CRD for `kind` among `crds`, as a strict JSON Schema.
fn crd_schema(crds: &[Value], kind: &str, version: &str) -> Result<Value, Failed> {
    let crd =
        crds.iter().find(|d| d["kind"] == "CustomResourceDefinition" && d["spec"]["names"]["kind"] == kind).ok_or_else(|| format!("no CRD of kind {kind}"))?;
    let served = crd["spec"]["versions"]
        .as_array()
        .and_then(|versions| versions.iter().find(|v| v["name"] == version && v["served"] == true))
        .ok_or_else(|| format!("CRD {kind} serves no version {version}"))?;
    let mut schema = strict(&served["schema"]["openAPIV3Schema"]);
    // The API server always accepts these at the root, listed or not.
    for (field, kind) in [("apiVersion", "string"), ("kind", "string"), ("metadata", "object")] {
        if schema["properties"].get(field).is_none() {
            schema["properties"][field] = json!({"type": kind});
        }
    }
    Ok(schema)
}

/// A structural schema as JSON Schema in which fields the schema does not name are errors.
fn strict(schema: &Value) -> Value {
    let Value::Object(map) = schema else { return schema.clone() };
    let mut out = serde_json::Map::new();
    for (key, value) in map {
        let value = match key.as_str() {
            "properties" | "patternProperties" => {
                Value::Object(value.as_object().map(|p| p.iter().map(|(k, v)| (k.clone(), strict(v))).collect()).unwrap_or_default())
            }
            "items" | "additionalProperties" | "not" => strict(value),
            "allOf" | "anyOf" | "oneOf" => Value::Array(value.as_array().map(|a| a.iter().map(strict).collect()).unwrap_or_default()),
            _ => value.clone(),
        };
        out.insert(key.clone(), value);
    }
    let preserves = map.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    if map.contains_key("properties") && !map.contains_key("additionalProperties") && !preserves {
        out.insert("additionalProperties".into(), Value::Bool(false));
    }
    if map.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        out.remove("type");
        out.insert("anyOf".into(), json!([{"type": "integer"}, {"type": "string"}]));
    }
    Value::Object(out)
}

fn validate(schema: &Value, object: &Value, what: &str) -> Result<(), Failed> {
    // The API server checks the formats it knows (ipv4, ipv6, date-time, ...); so do we.
    let validator = jsonschema::options().should_validate_formats(true).build(schema).map_err(|e| format!("{what}: the schema does not compile: {e}"))?;
    let errors: Vec<String> = validator.iter_errors(object).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    match errors.is_empty() {
        true => Ok(()),
        false => Err(format!("{what} does not pass its upstream schema:\n  {}\n{}", errors.join("\n  "), serde_json::to_string_pretty(object).unwrap()).into()),
    }
}

/// Validates `objects` of CRD kinds against the CRDs in `files` (under the upstream dir).
fn against(files: &[&str], objects: &[Value]) -> Result<(), Failed> {
    let mut crds = Vec::new();
    for file in files {
        crds.extend(documents(&upstream().join(file))?);
    }
    for object in objects {
        let kind = object["kind"].as_str().unwrap_or_default();
        let version = object["apiVersion"].as_str().and_then(|v| v.rsplit('/').next()).unwrap_or_default();
        validate(&crd_schema(&crds, kind, version)?, object, &format!("{kind} {}", object["metadata"]["name"]))?;
    }
    Ok(())
}

fn seed_policy() -> harness::model::EgressPolicy {
    let mut policy = harness::fixtures::load_antrea_egress(&harness::fixtures::fixture_path("egress/prod-web.antrea.yaml")).unwrap();
    policy.name = "egress-prod-web-t3-0a1b2c".into();
    policy.egress_ip = "172.18.0.200".parse().unwrap();
    policy.namespace_selector.match_labels.insert("kubernetes.io/metadata.name".into(), "prod-t3-0a1b2c".into());
    policy
}

fn gateway_api_dir() -> String {
    format!("gateway-api-{}", kind::GATEWAY_API_VERSION)
}

fn routes() -> Vec<Value> {
    let mut objects = Vec::new();
    for (fixture, namespace) in [("canary/current-weather-route.yaml", "weather-t1-0a1b2c"), ("canary/weather-mirror-route.yaml", "paid-t9-0a1b2c")] {
        let mut route = harness::fixtures::load_http_route(&harness::fixtures::fixture_path(fixture)).unwrap();
        route.name = format!("{}-t1-0a1b2c", route.name);
        route.path_prefix = format!("/t1-0a1b2c{}", route.path_prefix);
        route.generation = 2;
        objects.extend(kubernetes::route_objects(namespace, &route));
    }
    objects
}

/// A core object survives a round trip through Kubernetes' own types unchanged: a field
/// those types do not have would be dropped (as the API server drops it).
fn round_trips<T: serde::de::DeserializeOwned + serde::Serialize>(object: &Value) -> Result<(), Failed> {
    let typed: T = serde_json::from_value(object.clone()).map_err(|e| format!("{}: {e}", object["kind"]))?;
    let back = serde_json::to_value(typed)?;
    match &back == object {
        true => Ok(()),
        false => Err(format!("{} loses fields through the Kubernetes types:\nrendered {object}\nkept     {back}", object["kind"]).into()),
    }
}

fn checks() -> Vec<(&'static str, fn() -> Result<(), Failed>)> {
    vec![
        ("antrea_egress_and_external_ip_pool_pass_antrea_2_2_0", || {
            against(&["antrea-v2.2.0/egress.yaml", "antrea-v2.2.0/externalippool.yaml"], &EgressDialect::Antrea.render(&seed_policy()))
        }),
        ("cilium_egress_gateway_policy_passes_cilium_1_16", || {
            let mut policy = seed_policy();
            policy.excluded_cidrs = vec!["172.18.0.7/32".parse().unwrap()];
            against(&["cilium-v1.16/ciliumegressgatewaypolicies.yaml"], &EgressDialect::Cilium.render(&policy))
        }),
        ("gateways_of_both_implementations_pass_the_installed_gateway_api", || {
            let dir = gateway_api_dir();
            let gateways: Vec<Value> = [cni::antrea(), cni::cilium()].iter().map(|c| kubernetes::gateway_object(c.gateway.as_ref().unwrap().class)).collect();
            against(&[&format!("{dir}/standard-gateway.networking.k8s.io_gateways.yaml")], &gateways)
        }),
        ("canary_and_mirror_httproutes_pass_the_installed_gateway_api", || {
            let dir = gateway_api_dir();
            let routes: Vec<Value> = routes().into_iter().filter(|o| o["kind"] == "HTTPRoute").collect();
            assert!(routes.len() == 2);
            against(&[&format!("{dir}/standard-gateway.networking.k8s.io_httproutes.yaml")], &routes)
        }),
        ("metallb_pool_and_l2_advertisement_pass_metallb", || {
            against(&[&format!("metallb-{}/metallb-native.yaml", kind::METALLB_VERSION)], &kind::address_pool_objects("172.18.0.0/16".parse().unwrap()))
        }),
        ("pods_services_and_namespaces_keep_every_field_in_kubernetes_types", || {
            use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
            let pod = PodSpec {
                name: "web".into(),
                namespace: "prod-t3-0a1b2c".into(),
                labels: labels([("role", "web")]),
                node: "cniconf-0a1b2c-worker".into(),
                host_ports: vec![],
            };
            round_trips::<Pod>(&kubernetes::pod_object(&pod, kind::PROBE_IMAGE, None))?;
            let reached = PodSpec { host_ports: vec![harness::model::HostPort { host: 18090, container: 8090 }], ..pod.clone() };
            round_trips::<Pod>(&kubernetes::pod_object(&reached, kind::PROBE_IMAGE, None))?;
            round_trips::<Pod>(&kubernetes::pod_object(&pod, kind::PROBE_IMAGE, Some(kind::IPERF3_IMAGE)))?;
            round_trips::<Namespace>(&kubernetes::namespace_object(
                &NamespaceSpec { name: "prod-t3-0a1b2c".into(), labels: labels([("env", "prod")]) },
                "0a1b2c",
            ))?;
            for service in routes().into_iter().filter(|o| o["kind"] == "Service") {
                round_trips::<Service>(&service)?;
            }
            round_trips::<Service>(&kubernetes::service_object("replicas-t8-0a1b2c", "web", 80, 8080, &labels([("app", "web")]), true))
        }),
        ("the_tsn_proxy_daemonset_keeps_every_field_in_kubernetes_types", || {
            round_trips::<k8s_openapi::api::apps::v1::DaemonSet>(&kind::TsnProxyDeployment::default().daemonset())
        }),
        ("the_tlsroute_crd_cilium_needs_is_the_experimental_one_of_the_installed_release", || {
            let gateway = cni::cilium().gateway.unwrap();
            let url = gateway.extra_crds[0].url.replace("{gateway_api}", kind::GATEWAY_API_VERSION);
            let file = url.rsplit('/').next().unwrap();
            assert!(url.contains(&format!("/{}/config/crd/experimental/", kind::GATEWAY_API_VERSION)), "{url}");
            let crds = documents(&upstream().join(gateway_api_dir()).join(format!("experimental-{file}")))?;
            // Cilium 1.16 watches TLSRoute v1alpha2.
            crd_schema(&crds, "TLSRoute", "v1alpha2").map(drop)
        }),
        ("a_field_the_schema_lacks_is_caught", || {
            // The check itself can fail: a misspelt field must not pass as it would on a cluster.
            let mut objects = EgressDialect::Cilium.render(&seed_policy());
            objects[0]["spec"]["egressGateway"]["egressIp"] = json!("172.18.0.200");
            match against(&["cilium-v1.16/ciliumegressgatewaypolicies.yaml"], &objects) {
                Err(e) if e.message().is_some_and(|m| m.contains("egressIp")) => {}
                other => return Err(format!("a misspelt field was not reported: {other:?}").into()),
            }
            let mut antrea = EgressDialect::Antrea.render(&seed_policy());
            antrea[1]["spec"]["egressIP"] = json!("172.18.0.300");
            match against(&["antrea-v2.2.0/egress.yaml", "antrea-v2.2.0/externalippool.yaml"], &antrea) {
                Err(e) if e.message().is_some_and(|m| m.contains("egressIP")) => {}
                other => return Err(format!("an address that is not one was not reported: {other:?}").into()),
            }
            let mut pod = kubernetes::pod_object(
                &PodSpec { name: "w".into(), namespace: "n".into(), labels: labels([]), node: "x".into(), host_ports: vec![] },
                "i",
                None,
            );
            pod["spec"]["nodname"] = json!("x");
            match round_trips::<k8s_openapi::api::core::v1::Pod>(&pod) {
                Err(_) => Ok(()),
                Ok(()) => Err("a misspelt Pod field was not reported".into()),
            }
        }),
    ]
}

fn main() -> std::process::ExitCode {
    let args = Arguments::from_args();
    let present = upstream().is_dir();
    let trials = checks()
        .into_iter()
        .map(|(name, check)| {
            Trial::ignorable_test(name, move || {
                if !present {
                    return Ok(Completion::ignored_with(format!(
                        "the upstream reference data is not at {} (the shared/ directory beside the repository)",
                        upstream().display()
                    )));
                }
                check().map(|()| Completion::Completed)
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit_code()
}
