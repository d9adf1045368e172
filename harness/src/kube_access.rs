//! Kubernetes access with kube-rs, for providers with a real API server (kind, existing):
//! server-side apply of multi-document fixtures (discovery per kind, waiting for a CRD to
//! be established before its objects), readiness waits that always carry a named budget,
//! exec into pods, and logs. The API is blocking; a private tokio runtime drives kube.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{AttachParams, DeleteParams, DynamicObject, LogParams, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{self, Scope};
use kube::{Api, Client};
use serde_json::Value;

use crate::error::{HarnessError, Result};

/// The field manager of every server-side apply the harness makes.
pub const FIELD_MANAGER: &str = "cni-conformance";

/// A blocking handle on one cluster's API server.
#[derive(Clone)]
pub struct KubeAccess {
    client: Client,
    runtime: Arc<tokio::runtime::Runtime>,
}

fn api_error(what: impl Into<String>) -> impl FnOnce(kube::Error) -> HarnessError {
    let what = what.into();
    move |e| HarnessError::Command { command: what, detail: e.to_string() }
}

impl KubeAccess {
    /// Connects with kubeconfig files and a context (the run's private file, or the user's
    /// files: several are merged as kubectl merges `KUBECONFIG`, the first to set a value wins).
    pub fn connect(runtime: Arc<tokio::runtime::Runtime>, kubeconfigs: &[std::path::PathBuf], context: Option<&str>) -> Result<Self> {
        let what = format!("connecting with kubeconfig {}", kubeconfigs.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":"));
        let client = runtime.block_on(async {
            let config = merged_kubeconfig(kubeconfigs).map_err(|e| HarnessError::Command { command: what.clone(), detail: e.to_string() })?;
            let options = kube::config::KubeConfigOptions { context: context.map(str::to_owned), ..Default::default() };
            let config = kube::Config::from_custom_kubeconfig(config, &options)
                .await
                .map_err(|e| HarnessError::Command { command: what.clone(), detail: e.to_string() })?;
            Client::try_from(config).map_err(api_error(what.clone()))
        })?;
        Ok(Self { client, runtime })
    }

    /// Wraps an existing client (tests use a `tower_test` mock).
    pub fn with_client(client: Client, runtime: Arc<tokio::runtime::Runtime>) -> Self {
        Self { client, runtime }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// Server-side applies `objects` in order. Before the first object of a custom kind,
    /// waits (within `crd_budget`) for its CRD to be established.
    pub fn apply(&self, objects: &[Value], crd_budget: Duration) -> Result<()> {
        let crd_budget = crate::deadline::budget(crd_budget, "KubeTimeouts::crd_established");
        self.block_on(async {
            for object in objects {
                apply_one(&self.client, object, &crd_budget).await?;
            }
            Ok(())
        })
    }

    /// Creates `object` (never adopting one of the same name: that is
    /// [`HarnessError::AlreadyExists`]) and returns its UID, the proof of ownership that
    /// [`delete_owned`](Self::delete_owned) checks. Waits for a custom kind's CRD as `apply` does.
    pub fn create(&self, object: &Value, crd_budget: Duration) -> Result<String> {
        let crd_budget = crate::deadline::budget(crd_budget, "KubeTimeouts::crd_established");
        self.block_on(async {
            let (api, _) = served_api(&self.client, object, &crd_budget).await?;
            let dynamic: DynamicObject =
                serde_json::from_value(object.clone()).map_err(|e| HarnessError::FixtureMalformed { path: describe(object).into(), detail: e.to_string() })?;
            let params = kube::api::PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
            match api.create(&params, &dynamic).await {
                Ok(created) => created.metadata.uid.ok_or_else(|| HarnessError::Command {
                    command: format!("creating {}", describe(object)),
                    detail: "the API server returned no uid".into(),
                }),
                Err(kube::Error::Api(status)) if status.code == 409 => Err(HarnessError::AlreadyExists { object: describe(object) }),
                Err(e) => Err(api_error(format!("creating {}", describe(object)))(e)),
            }
        })
    }

    /// Deletes an object this run created, only if it is still the one with `uid` (a
    /// precondition the API server checks); absent, or replaced by someone else's, is left be.
    pub fn delete_owned(&self, object: &Value, uid: &str) -> Result<()> {
        self.block_on(async {
            let (api, name) = dynamic_api(&self.client, object).await?;
            let params =
                DeleteParams { preconditions: Some(kube::api::Preconditions { uid: Some(uid.to_owned()), resource_version: None }), ..Default::default() };
            match api.delete(&name, &params).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(status)) if status.is_not_found() || status.code == 409 => Ok(()),
                Err(e) => Err(api_error(format!("deleting {}", describe(object)))(e)),
            }
        })
    }

    /// Deletes an object like those given to [`apply`](Self::apply); absent is fine.
    pub fn delete(&self, object: &Value) -> Result<()> {
        self.block_on(async {
            let (api, name) = dynamic_api(&self.client, object).await?;
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(status)) if status.is_not_found() => Ok(()),
                Err(e) => Err(api_error(format!("deleting {}", describe(object)))(e)),
            }
        })
    }

    /// Reads an object's current state, or `None` if it does not exist.
    pub fn get(&self, object: &Value) -> Result<Option<Value>> {
        self.block_on(async {
            let (api, name) = dynamic_api(&self.client, object).await?;
            let found = api.get_opt(&name).await.map_err(api_error(format!("reading {}", describe(object))))?;
            Ok(found.map(|o| serde_json::to_value(o).expect("objects serialize")))
        })
    }

    /// The pods of `namespace` carrying every label of `selector`.
    pub fn pods_labelled(&self, namespace: &str, selector: &std::collections::BTreeMap<String, String>) -> Result<Vec<Pod>> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let labels = selector.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
        let listed = self.block_on(pods.list(&kube::api::ListParams::default().labels(&labels)));
        listed.map(|list| list.items).map_err(api_error(format!("listing pods labelled {labels} in namespace {namespace}")))
    }

    /// Every pod of the cluster with an address of the pod network (host-network pods, which
    /// share their node's, are left out), as the harness names pods.
    pub fn pod_network_pods(&self) -> Result<Vec<crate::model::Pod>> {
        let pods: Api<Pod> = Api::all(self.client.clone());
        let listed = self.block_on(pods.list(&kube::api::ListParams::default())).map_err(api_error("listing the cluster's pods".to_owned()))?;
        Ok(listed
            .items
            .into_iter()
            .filter(|pod| !pod.spec.as_ref().and_then(|s| s.host_network).unwrap_or(false))
            .filter_map(|pod| {
                let address = pod.status.as_ref()?.pod_ip.as_ref()?.parse().ok()?;
                Some(crate::model::Pod {
                    name: pod.metadata.name.clone()?,
                    namespace: pod.metadata.namespace.clone()?,
                    labels: pod.metadata.labels.clone().unwrap_or_default(),
                    node: pod.spec.as_ref()?.node_name.clone().unwrap_or_default(),
                    address,
                })
            })
            .collect())
    }

    /// Waits until the pod is Ready, within `budget` (named in the error as `budget_name`),
    /// or less when the trial ends sooner.
    pub fn wait_pod_ready(&self, namespace: &str, name: &str, budget: Duration, budget_name: &str) -> Result<Pod> {
        let budget = crate::deadline::budget(budget, budget_name);
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        // The timer must be made inside the runtime, so the whole wait is one async block.
        let waited = self.block_on(async { tokio::time::timeout(budget.duration, kube::runtime::wait::await_condition(pods, name, is_pod_ready)).await });
        match waited {
            Ok(Ok(Some(pod))) => Ok(pod),
            Ok(Ok(None)) => Err(HarnessError::NotReady { what: format!("pod {namespace}/{name}"), detail: "it was deleted while waiting".into() }),
            Ok(Err(e)) => Err(HarnessError::NotReady { what: format!("pod {namespace}/{name}"), detail: e.to_string() }),
            Err(_) => Err(budget.timed_out(&format!("pod {namespace}/{name} to be Ready"))),
        }
    }

    /// Runs `command` in a pod's container; returns what it printed on stdout and stderr and
    /// how it exited (from the exec stream's final status).
    pub fn exec(&self, namespace: &str, pod: &str, container: Option<&str>, command: &[&str]) -> Result<crate::model::ExecOutput> {
        self.block_on(self.exec_async(namespace, pod, container, command))
    }

    /// [`exec`](Self::exec) within `budget`: past it, the exec is dropped and the error
    /// names the budget.
    pub fn exec_within(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
        command: &[&str],
        budget: &crate::deadline::Budget,
    ) -> Result<crate::model::ExecOutput> {
        let what = format!("`{}` in pod {namespace}/{pod} to end", command.join(" "));
        self.block_on(async { tokio::time::timeout(budget.duration, self.exec_async(namespace, pod, container, command)).await })
            .map_err(|_| budget.timed_out(&what))?
    }

    async fn exec_async(&self, namespace: &str, pod: &str, container: Option<&str>, command: &[&str]) -> Result<crate::model::ExecOutput> {
        let what = format!("exec `{}` in pod {namespace}/{pod}", command.join(" "));
        {
            use tokio::io::AsyncReadExt;
            let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
            let mut params = AttachParams::default().stdout(true).stderr(true);
            if let Some(container) = container {
                params = params.container(container);
            }
            let mut process = pods.exec(pod, command.to_vec(), &params).await.map_err(api_error(what.clone()))?;
            let status = process.take_status();
            let read = |reader: Option<tokio::io::ReadHalf<tokio::io::SimplexStream>>| async move {
                let mut text = String::new();
                if let Some(mut reader) = reader {
                    reader.read_to_string(&mut text).await?;
                }
                Ok::<_, std::io::Error>(text)
            };
            let (stdout, stderr) = tokio::try_join!(read(process.stdout()), read(process.stderr()))
                .map_err(|e| HarnessError::Command { command: what.clone(), detail: e.to_string() })?;
            let status = match status {
                Some(status) => status.await,
                None => None,
            };
            let _ = process.join().await;
            Ok(crate::model::ExecOutput { stdout, stderr, exit: exit_of(status.as_ref()) })
        }
    }

    /// What a failed trial left in the API, as files for its diagnostics bundle: for each
    /// of its namespaces (their names end in `-<trial>`) the pods with their status, the
    /// events, and the HTTPRoutes with their status; the shared Gateway's namespace's
    /// Gateways; the logs of `agent`'s pods (a DaemonSet: namespace, name) on the nodes
    /// its pods ran on, the previous container's too, and what `agent_commands` print in
    /// them (the CNI's status tools). A request that fails is written
    /// into `api/errors.txt`, never raised.
    pub fn trial_records(
        &self,
        trial: &str,
        agent: Option<(&str, &str)>,
        agent_commands: &[crate::model::DiagnosticCommand],
        gateway_namespace: &str,
    ) -> Vec<(String, String)> {
        use k8s_openapi::api::core::v1::{Event, Namespace};
        use kube::api::ListParams;
        let suffix = format!("-{trial}");
        let mut records: Vec<(String, String)> = Vec::new();
        let mut errors: Vec<String> = Vec::new();
        fn pretty<T: serde::Serialize>(value: &T) -> String {
            serde_json::to_string_pretty(value).unwrap_or_default()
        }
        let found = self.block_on(async {
            let client = self.client.clone();
            let namespaces: Vec<String> = match Api::<Namespace>::all(client.clone()).list(&ListParams::default()).await {
                Ok(list) => list.items.into_iter().filter_map(|n| n.metadata.name).filter(|n| n.ends_with(&suffix)).collect(),
                Err(e) => {
                    errors.push(format!("listing namespaces: {e}"));
                    Vec::new()
                }
            };
            let mut nodes = std::collections::BTreeSet::new();
            for namespace in &namespaces {
                match Api::<Pod>::namespaced(client.clone(), namespace).list(&ListParams::default()).await {
                    Ok(list) => {
                        nodes.extend(list.items.iter().filter_map(|p| p.spec.as_ref()?.node_name.clone()));
                        records.push((format!("api/{namespace}/pods.json"), pretty(&list.items)));
                    }
                    Err(e) => errors.push(format!("listing pods in {namespace}: {e}")),
                }
                match Api::<Event>::namespaced(client.clone(), namespace).list(&ListParams::default()).await {
                    Ok(list) => {
                        let lines: String = list
                            .items
                            .iter()
                            .map(|e| {
                                let at = e.last_timestamp.as_ref().map(|t| t.0.to_string()).unwrap_or_default();
                                let object =
                                    format!("{}/{}", e.involved_object.kind.clone().unwrap_or_default(), e.involved_object.name.clone().unwrap_or_default());
                                format!(
                                    "{at} {} {} {object}: {}\n",
                                    e.type_.clone().unwrap_or_default(),
                                    e.reason.clone().unwrap_or_default(),
                                    e.message.clone().unwrap_or_default()
                                )
                            })
                            .collect();
                        records.push((format!("api/{namespace}/events.txt"), lines));
                    }
                    Err(e) => errors.push(format!("listing events in {namespace}: {e}")),
                }
            }
            // Gateway API objects with their status: the trial's routes, the shared Gateway.
            let resource = |kind: &str, plural: &str| {
                kube::api::ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", kind), plural)
            };
            for (namespace, kind, plural) in
                namespaces.iter().map(|n| (n.as_str(), "HTTPRoute", "httproutes")).chain([(gateway_namespace, "Gateway", "gateways")])
            {
                match Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &resource(kind, plural)).list(&ListParams::default()).await {
                    Ok(list) => records.push((format!("api/{namespace}/{plural}.json"), pretty(&list.items))),
                    Err(kube::Error::Api(status)) if status.code == 404 => {}
                    Err(e) => errors.push(format!("listing {plural} in {namespace}: {e}")),
                }
            }
            let mut agent_pods = Vec::new();
            if let Some((agent_namespace, agent_name)) = agent {
                let pods = Api::<Pod>::namespaced(client.clone(), agent_namespace);
                match pods.list(&ListParams::default()).await {
                    Ok(list) => {
                        let ours = list
                            .items
                            .into_iter()
                            .filter(|p| p.metadata.owner_references.iter().flatten().any(|o| o.kind == "DaemonSet" && o.name == agent_name));
                        for pod in ours.filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some_and(|n| nodes.contains(n))) {
                            let name = pod.metadata.name.clone().unwrap_or_default();
                            agent_pods.push(name.clone());
                            let containers: Vec<String> = pod.spec.iter().flat_map(|s| s.containers.iter().map(|c| c.name.clone())).collect();
                            // The kubelet has a previous container's log only for a container
                            // whose last state is terminated (`validateContainerLogStatus`,
                            // pkg/kubelet/kubelet_pods.go: else "previous terminated container
                            // ... not found", a 400): asked only then.
                            let restarted = |container: &str| {
                                pod.status.iter().flat_map(|s| s.container_statuses.iter().flatten()).any(|c| {
                                    c.name == container
                                        && c.last_state
                                            .as_ref()
                                            .and_then(|l| l.terminated.as_ref())
                                            .is_some_and(|t| t.container_id.as_ref().is_some_and(|id| !id.is_empty()))
                                })
                            };
                            for container in containers {
                                let logs: &[(bool, &str)] = if restarted(&container) { &[(false, "log"), (true, "previous.log")] } else { &[(false, "log")] };
                                for &(previous, file) in logs {
                                    let params = LogParams { previous, tail_lines: Some(5000), container: Some(container.clone()), ..LogParams::default() };
                                    match pods.logs(&name, &params).await {
                                        Ok(text) => records.push((format!("agents/{name}/{container}.{file}"), text)),
                                        Err(e) => errors.push(format!(
                                            "{} log of {agent_namespace}/{name} container {container}: {e}",
                                            if previous { "the previous container's" } else { "the" }
                                        )),
                                    }
                                }
                            }
                        }
                    }
                    Err(e) => errors.push(format!("listing the pods of {agent_namespace}/{agent_name}: {e}")),
                }
            }
            (namespaces, agent_pods)
        });
        let (namespaces, agent_pods) = found;
        let found = namespaces.len();
        if let Some((agent_namespace, _)) = agent {
            for pod in &agent_pods {
                for command in agent_commands {
                    for (file, run) in command.runs_for(&namespaces) {
                        let args: Vec<&str> = run.iter().map(String::as_str).collect();
                        // Within the bundle's time (its deadline on this thread) and as long
                        // as it gives one node command.
                        let budget = crate::deadline::budget(AGENT_COMMAND_BUDGET, "AGENT_COMMAND_BUDGET");
                        if budget.duration.is_zero() {
                            records.push((format!("agents/{pod}/{file}.txt"), format!("$ {}\n# skipped: no time left ({})\n", run.join(" "), budget.name)));
                            continue;
                        }
                        let text = match self.exec_within(agent_namespace, pod, command.container.as_deref(), &args, &budget) {
                            Ok(output) => format!("$ {}\n# in pod {agent_namespace}/{pod}: {}\n{}{}", run.join(" "), output.exit, output.stdout, output.stderr),
                            Err(e) => {
                                errors.push(format!("`{}` in pod {agent_namespace}/{pod}: {e}", run.join(" ")));
                                format!("$ {}\n# could not be run: {e}\n", run.join(" "))
                            }
                        };
                        records.push((format!("agents/{pod}/{file}.txt"), text));
                    }
                }
            }
        }
        if found == 0 {
            errors.push(format!("no namespace whose name ends in {suffix}"));
        }
        if !errors.is_empty() {
            records.push(("api/errors.txt".into(), errors.iter().map(|e| format!("{e}\n")).collect()));
        }
        records
    }

    /// A pod's log, for failure messages.
    pub fn logs(&self, namespace: &str, pod: &str) -> Result<String> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        self.block_on(pods.logs(pod, &LogParams::default())).map_err(api_error(format!("reading logs of pod {namespace}/{pod}")))
    }
}

/// The kubeconfig files merged in order, each error naming its file.
fn merged_kubeconfig(paths: &[std::path::PathBuf]) -> std::result::Result<kube::config::Kubeconfig, String> {
    let mut merged: Option<kube::config::Kubeconfig> = None;
    for path in paths {
        let next = kube::config::Kubeconfig::read_from(path).map_err(|e| format!("{}: {e}", path.display()))?;
        merged = Some(match merged {
            Some(merged) => merged.merge(next).map_err(|e| format!("{}: {e}", path.display()))?,
            None => next,
        });
    }
    merged.ok_or_else(|| "no kubeconfig file given".to_owned())
}

/// How long one agent command of a bundle may run: as long as the bundle gives one node
/// command (`diagnostics::LIMITS.per_command`, which a test holds equal), and never past the
/// bundle's own deadline.
pub const AGENT_COMMAND_BUDGET: Duration = Duration::from_secs(5);

/// How an exec ended, from the status the API server sends at the end of its stream:
/// `Success`, or `NonZeroExitCode` with the code among the causes.
pub fn exit_of(status: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Status>) -> String {
    let Some(status) = status else { return "exit status unknown (the exec stream ended without a status)".into() };
    if status.status.as_deref() == Some("Success") {
        return "exit status 0".into();
    }
    let code = status
        .details
        .as_ref()
        .and_then(|d| d.causes.as_ref())
        .and_then(|causes| causes.iter().find(|c| c.reason.as_deref() == Some("ExitCode")))
        .and_then(|c| c.message.clone());
    match code {
        Some(code) => format!("exit status {code}"),
        None => format!("failed: {}", status.message.as_deref().unwrap_or("no message")),
    }
}

/// The Ready condition, which `is_pod_running` does not mean.
pub fn is_pod_ready(pod: Option<&Pod>) -> bool {
    pod.and_then(|p| p.status.as_ref())
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn describe(object: &Value) -> String {
    format!("{} {}", object["kind"].as_str().unwrap_or("object"), object["metadata"]["name"].as_str().unwrap_or("(unnamed)"))
}

fn group_version_kind(object: &Value) -> Result<GroupVersionKind> {
    let malformed = |detail: &str| HarnessError::FixtureMalformed { path: describe(object).into(), detail: detail.into() };
    let api_version = object["apiVersion"].as_str().ok_or_else(|| malformed("apiVersion: expected a string"))?;
    let kind = object["kind"].as_str().ok_or_else(|| malformed("kind: expected a string"))?;
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    Ok(GroupVersionKind::gvk(group, version, kind))
}

/// The dynamic API for an object, found by discovery, and its name.
async fn dynamic_api(client: &Client, object: &Value) -> Result<(Api<DynamicObject>, String)> {
    let gvk = group_version_kind(object)?;
    let name = object["metadata"]["name"]
        .as_str()
        .ok_or_else(|| HarnessError::FixtureMalformed { path: describe(object).into(), detail: "metadata.name: expected a name".into() })?
        .to_owned();
    let (resource, capabilities) =
        discovery::pinned_kind(client, &gvk).await.map_err(api_error(format!("discovering {}/{} {}", gvk.group, gvk.version, gvk.kind)))?;
    let api = match (capabilities.scope, object["metadata"]["namespace"].as_str()) {
        (Scope::Namespaced, Some(namespace)) => Api::namespaced_with(client.clone(), namespace, &resource),
        (Scope::Namespaced, None) => Api::default_namespaced_with(client.clone(), &resource),
        (Scope::Cluster, _) => Api::all_with(client.clone(), &resource),
    };
    Ok((api, name))
}

/// The object's API; a kind the server does not serve yet is waited for as a CRD.
async fn served_api(client: &Client, object: &Value, crd_budget: &crate::deadline::Budget) -> Result<(Api<DynamicObject>, String)> {
    match dynamic_api(client, object).await {
        Ok(found) => Ok(found),
        Err(not_served) => {
            let gvk = group_version_kind(object)?;
            await_crd_established(client, &gvk, crd_budget, &not_served.to_string()).await?;
            dynamic_api(client, object).await
        }
    }
}

async fn apply_one(client: &Client, object: &Value, crd_budget: &crate::deadline::Budget) -> Result<()> {
    let (api, name) = served_api(client, object, crd_budget).await?;
    api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(object)).await.map_err(api_error(format!("applying {}", describe(object))))?;
    Ok(())
}

/// Waits for the CRD that serves `gvk` (found by group and kind) to be Established.
async fn await_crd_established(client: &Client, gvk: &GroupVersionKind, budget: &crate::deadline::Budget, not_served: &str) -> Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let established = |crd: &CustomResourceDefinition| {
        crd.spec.group == gvk.group
            && crd.spec.names.kind == gvk.kind
            && crd.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|c| c.iter().any(|c| c.type_ == "Established" && c.status == "True"))
    };
    let wait = async {
        loop {
            let listed = crds.list(&Default::default()).await.map_err(api_error("listing CustomResourceDefinitions"))?;
            if listed.items.iter().any(established) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    tokio::time::timeout(budget.duration, wait).await.unwrap_or_else(|_| {
        Err(budget.timed_out(&format!(
            "the CRD of {}/{} {} to be established (discovery: {not_served}; is the CNI installed with this feature?)",
            gvk.group, gvk.version, gvk.kind
        )))
    })
}

/// A scripted API server for tests: `tower_test` underneath, no cluster contacted.
#[cfg(test)]
pub(crate) mod mock {
    use std::sync::{Arc, Mutex};

    use http::{Request, Response, StatusCode};
    use kube::client::Body;
    use kube::Client;
    use serde_json::{json, Value};

    use super::KubeAccess;

    /// One request as the server saw it.
    #[derive(Debug, Clone)]
    pub struct Seen {
        pub method: String,
        /// Path and query.
        pub uri: String,
        pub body: Value,
    }

    /// Answers each request with `answer(method, path, body)`; records every request.
    pub fn api_server(
        answer: impl Fn(&str, &str, &Value) -> (StatusCode, Value) + Send + 'static,
    ) -> (KubeAccess, Arc<Mutex<Vec<Seen>>>, Arc<tokio::runtime::Runtime>) {
        let runtime = Arc::new(tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap());
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = runtime.block_on(async { Client::new(service, "default") });
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        runtime.spawn(async move {
            while let Some((request, send)) = handle.next_request().await {
                let (parts, body) = request.into_parts();
                let bytes = http_body_util::BodyExt::collect(body).await.map(|b| b.to_bytes()).unwrap_or_default();
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let uri = parts.uri.path_and_query().map(|p| p.to_string()).unwrap_or_default();
                let (status, reply) = answer(parts.method.as_str(), parts.uri.path(), &body);
                log.lock().unwrap().push(Seen { method: parts.method.to_string(), uri, body });
                send.send_response(Response::builder().status(status).body(Body::from(serde_json::to_vec(&reply).unwrap())).unwrap());
            }
        });
        (KubeAccess::with_client(client, Arc::clone(&runtime)), seen, runtime)
    }

    /// A Kubernetes `Status` failure.
    pub fn status(code: u16, reason: &str, message: &str) -> (StatusCode, Value) {
        (
            StatusCode::from_u16(code).unwrap(),
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": code, "message": message}),
        )
    }

    /// Discovery of the core group's v1 resources used here.
    pub fn core_v1_resources() -> Value {
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1", "resources": [
            {"name": "namespaces", "singularName": "namespace", "namespaced": false, "kind": "Namespace", "verbs": ["create", "get", "list", "delete", "patch"]},
            {"name": "pods", "singularName": "pod", "namespaced": true, "kind": "Pod", "verbs": ["create", "get", "list", "delete", "patch"]},
            {"name": "services", "singularName": "service", "namespaced": true, "kind": "Service", "verbs": ["create", "get", "list", "delete", "patch"]},
            {"name": "nodes", "singularName": "node", "namespaced": false, "kind": "Node", "verbs": ["get", "list"]}
        ]})
    }

    /// An empty list of `kind`.
    pub fn empty_list(kind: &str) -> Value {
        json!({"apiVersion": "v1", "kind": format!("{kind}List"), "metadata": {"resourceVersion": "1"}, "items": []})
    }
}

#[cfg(test)]
mod tests {
    //! Against `tower_test` mocks: no cluster is contacted. Each test scripts the API
    //! server's side of the conversation and checks what the client asked for.

    use super::*;
    use http::{Request, Response, StatusCode};
    use kube::client::Body;
    use serde_json::json;

    type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

    fn mocked() -> (KubeAccess, Handle, Arc<tokio::runtime::Runtime>) {
        let runtime = Arc::new(tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap());
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = runtime.block_on(async { Client::new(service, "default") });
        (KubeAccess::with_client(client, Arc::clone(&runtime)), handle, runtime)
    }

    fn respond(send: tower_test::mock::SendResponse<Response<Body>>, status: StatusCode, body: Value) {
        send.send_response(Response::builder().status(status).body(Body::from(serde_json::to_vec(&body).unwrap())).unwrap());
    }

    fn egress_resources() -> Value {
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "crd.antrea.io/v1beta1", "resources": [
            {"name": "egresses", "singularName": "egress", "namespaced": false, "kind": "Egress", "verbs": ["get", "list", "patch", "delete"]}
        ]})
    }

    fn egress() -> Value {
        json!({"apiVersion": "crd.antrea.io/v1beta1", "kind": "Egress", "metadata": {"name": "egress-prod-web"}, "spec": {"egressIP": "172.18.0.200"}})
    }

    /// Answers the discovery of crd.antrea.io/v1beta1 with the Egress resource.
    async fn answer_egress_discovery(handle: &mut Handle) {
        let (request, send) = handle.next_request().await.expect("a discovery request");
        assert_eq!(request.uri().path(), "/apis/crd.antrea.io/v1beta1");
        respond(send, StatusCode::OK, egress_resources());
    }

    /// Answers the server-side apply PATCH of the Egress, checking its form.
    async fn expect_apply(handle: &mut Handle) {
        let (request, send) = handle.next_request().await.expect("the apply request");
        assert_eq!(request.method(), "PATCH");
        assert_eq!(request.uri().path(), "/apis/crd.antrea.io/v1beta1/egresses/egress-prod-web");
        let query = request.uri().query().unwrap_or_default().to_owned();
        assert!(query.contains("fieldManager=cni-conformance") && query.contains("force=true"), "{query}");
        assert_eq!(request.headers()["content-type"], "application/apply-patch+yaml");
        respond(send, StatusCode::OK, egress());
    }

    #[test]
    fn apply_discovers_the_kind_and_applies_server_side() {
        let (access, mut handle, runtime) = mocked();
        let server = runtime.spawn(async move {
            answer_egress_discovery(&mut handle).await;
            expect_apply(&mut handle).await;
        });
        access.apply(&[egress()], Duration::from_secs(5)).unwrap();
        runtime.block_on(server).unwrap();
    }

    #[test]
    fn apply_waits_for_a_crd_that_is_not_served_yet() {
        let (access, mut handle, runtime) = mocked();
        let server = runtime.spawn(async move {
            let (_, send) = handle.next_request().await.unwrap();
            respond(
                send,
                StatusCode::NOT_FOUND,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}),
            );
            let (request, send) = handle.next_request().await.unwrap();
            assert_eq!(request.uri().path(), "/apis/apiextensions.k8s.io/v1/customresourcedefinitions");
            respond(
                send,
                StatusCode::OK,
                json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinitionList", "metadata": {}, "items": [{
                    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "egresses.crd.antrea.io"},
                    "spec": {"group": "crd.antrea.io", "scope": "Cluster", "names": {"kind": "Egress", "plural": "egresses"}, "versions": []},
                    "status": {"conditions": [{"type": "Established", "status": "True"}]}
                }]}),
            );
            answer_egress_discovery(&mut handle).await;
            expect_apply(&mut handle).await;
        });
        access.apply(&[egress()], Duration::from_secs(5)).unwrap();
        runtime.block_on(server).unwrap();
    }

    #[test]
    fn a_crd_that_never_comes_times_out_naming_the_kind() {
        let (access, mut handle, runtime) = mocked();
        runtime.spawn(async move {
            while let Some((request, send)) = handle.next_request().await {
                if request.uri().path().contains("customresourcedefinitions") {
                    respond(
                        send,
                        StatusCode::OK,
                        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinitionList", "metadata": {}, "items": []}),
                    );
                } else {
                    respond(
                        send,
                        StatusCode::NOT_FOUND,
                        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404, "message": "not found"}),
                    );
                }
            }
        });
        let error = access.apply(&[egress()], Duration::from_millis(800)).unwrap_err().to_string();
        assert!(error.contains("timed out after 0.8s") && error.contains("the CRD of crd.antrea.io/v1beta1 Egress to be established"), "{error}");
    }

    fn pod_list(ready: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "1"}, "items": [{
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "prod", "resourceVersion": "1"},
            "status": {"podIP": "10.244.1.5", "conditions": [{"type": "Ready", "status": ready}]}
        }]})
    }

    #[test]
    fn a_ready_pod_is_returned() {
        let (access, mut handle, runtime) = mocked();
        runtime.spawn(async move {
            let (request, send) = handle.next_request().await.unwrap();
            assert_eq!(request.uri().path(), "/api/v1/namespaces/prod/pods");
            assert!(request.uri().query().unwrap().contains("metadata.name%3Dweb"), "{:?}", request.uri());
            respond(send, StatusCode::OK, pod_list("True"));
            // Keep answering the watch that may follow, with nothing.
            while let Some((_, send)) = handle.next_request().await {
                drop(send);
            }
        });
        let pod = access.wait_pod_ready("prod", "web", Duration::from_secs(5), "Timeouts::pod_ready").unwrap();
        assert_eq!(pod.status.unwrap().pod_ip.as_deref(), Some("10.244.1.5"));
    }

    /// An API server on which pod prod/web never gets Ready: listed unready, and the
    /// watch that follows never answers.
    fn a_pod_never_ready() -> KubeAccess {
        let (access, mut handle, runtime) = mocked();
        runtime.spawn(async move {
            let (_, send) = handle.next_request().await.unwrap();
            respond(send, StatusCode::OK, pod_list("False"));
            let _pending = handle.next_request().await;
            std::future::pending::<()>().await;
        });
        access
    }

    #[test]
    fn a_pod_that_never_gets_ready_times_out_naming_the_budget() {
        let access = a_pod_never_ready();
        let error = access.wait_pod_ready("prod", "web", Duration::from_millis(300), "Timeouts::pod_ready").unwrap_err().to_string();
        assert!(error.contains("pod prod/web to be Ready (Timeouts::pod_ready)") && error.contains("0.3s"), "{error}");
    }

    #[test]
    fn a_pod_wait_inside_a_trial_ends_with_the_trial_and_names_both_budgets() {
        let access = a_pod_never_ready();
        let _trial = crate::deadline::enter(crate::deadline::TrialClock::starting_now(Duration::from_millis(300)), "Timeouts::trial");
        let started = std::time::Instant::now();
        let error = access.wait_pod_ready("prod", "web", Duration::from_secs(180), "KubeTimeouts::pod_ready").unwrap_err().to_string();
        assert!(started.elapsed() < Duration::from_secs(3), "not the pod's 180 s");
        assert!(error.contains("pod prod/web to be Ready (KubeTimeouts::pod_ready, cut to the") && error.contains("left of Timeouts::trial"), "{error}");
    }

    #[test]
    fn antrea_realization_is_read_from_the_egress_status() {
        use crate::cni::egress::EgressDialect;
        let (access, mut handle, runtime) = mocked();
        runtime.spawn(async move {
            answer_egress_discovery(&mut handle).await;
            let (request, send) = handle.next_request().await.unwrap();
            assert_eq!((request.method().as_str(), request.uri().path()), ("GET", "/apis/crd.antrea.io/v1beta1/egresses/egress-prod-web"));
            let mut realized = egress();
            realized["status"] = json!({"egressNode": "c-worker2", "egressIP": "172.18.0.200"});
            respond(send, StatusCode::OK, realized);
        });
        let mut policy = crate::fixtures::load_antrea_egress(&crate::fixtures::fixture_path("egress/prod-web.antrea.yaml")).unwrap();
        policy.egress_ip = "172.18.0.200".parse().unwrap();
        let status = EgressDialect::Antrea.realized(&access, &policy, &[], &[]).unwrap().expect("realized");
        assert_eq!(status.egress_node, "c-worker2");
    }

    #[test]
    fn a_broken_kubeconfig_is_named() {
        let runtime = Arc::new(tokio::runtime::Runtime::new().unwrap());
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "apiVersion: v1\nclusters: [\n").unwrap();
        let error = KubeAccess::connect(runtime, &[file.path().to_owned()], None).err().expect("a broken kubeconfig fails").to_string();
        assert!(error.contains(&file.path().display().to_string()), "{error}");
    }

    #[test]
    fn an_exec_status_becomes_an_exit_status() {
        let status = |value: Value| serde_json::from_value::<k8s_openapi::apimachinery::pkg::apis::meta::v1::Status>(value).unwrap();
        assert_eq!(exit_of(Some(&status(json!({"status": "Success"})))), "exit status 0");
        let failed = status(
            json!({"status": "Failure", "reason": "NonZeroExitCode", "message": "command terminated with non-zero exit code: error executing command [/cni-probe get], exit code 127",
            "details": {"causes": [{"reason": "ExitCode", "message": "127"}]}}),
        );
        assert_eq!(exit_of(Some(&failed)), "exit status 127");
        assert!(exit_of(None).contains("unknown"));
    }

    #[test]
    fn a_broken_probe_says_how_it_exited_and_what_it_printed_on_stderr() {
        let output =
            crate::model::ExecOutput { stdout: String::new(), stderr: "exec /cni-probe: no such file or directory".into(), exit: "exit status 127".into() };
        let error = crate::provider::probe_output::<cni_probe::Observation>(&output, || "cni-probe get http://192.0.2.10:8080/ in pod prod-t1/web".into())
            .unwrap_err()
            .to_string();
        assert!(error.contains("exit status 127") && error.contains("no such file or directory") && error.contains("pod prod-t1/web"), "{error}");
    }

    fn kubeconfig(dir: &std::path::Path, name: &str, context: &str, server: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, format!("apiVersion: v1\nkind: Config\nclusters:\n- name: {context}\n  cluster:\n    server: {server}\nusers:\n- name: {context}\n  user:\n    token: t\ncontexts:\n- name: {context}\n  context:\n    cluster: {context}\n    user: {context}\ncurrent-context: {context}\n")).unwrap();
        path
    }

    #[test]
    fn every_file_of_kubeconfig_is_read_as_kubectl_does() {
        let dir = tempfile::tempdir().unwrap();
        let files = [kubeconfig(dir.path(), "laptop", "kind-dev", "https://127.0.0.1:6443"), kubeconfig(dir.path(), "cloud", "gke-prod", "https://192.0.2.1")];
        let merged = merged_kubeconfig(&files).unwrap();
        assert_eq!(merged.current_context.as_deref(), Some("kind-dev"), "the first file's current context wins");
        assert!(merged.contexts.iter().any(|c| c.name == "gke-prod"), "a context only in the second file is found");
        let runtime = Arc::new(tokio::runtime::Runtime::new().unwrap());
        assert!(KubeAccess::connect(runtime, &files, Some("gke-prod")).is_ok());
        let missing = merged_kubeconfig(&[dir.path().join("absent")]).unwrap_err();
        assert!(missing.contains("absent"), "{missing}");
    }

    #[test]
    fn readiness_is_the_ready_condition_not_running() {
        let pod: Pod =
            serde_json::from_value(json!({"metadata": {"name": "p"}, "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]}}))
                .unwrap();
        assert!(!is_pod_ready(Some(&pod)));
        assert!(!is_pod_ready(None));
    }
}
