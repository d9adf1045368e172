//! Profile files: `fixtures/cni/<name>/profile.yaml` read into a [`CniProfile`], every
//! error naming the file and the field; `CNICONF_CNI` picks one by name or path.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{egress::EgressDialect, CniProfile, Feature, Installation, Workload};
use crate::error::{HarnessError, Result};

/// Names the CNI profile a suite runs against instead of its default: a directory name
/// under `fixtures/cni/`, or the path of a profile file.
pub const CNI_VARIABLE: &str = "CNICONF_CNI";

/// A profile file as written.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ProfileFile {
    /// The profile's name: what `--cni`, `CNICONF_CNI` and the reports call it.
    name: String,
    /// The CNI's version: filled into `{version}` of manifest URLs, named in every report.
    version: String,
    /// How the CNI is installed: exactly one of `manifests`, `helm` (on kind or an existing
    /// cluster) or `lab` (a conflist and plugin binaries on the lab).
    install: InstallFile,
    /// What must roll out before the CNI is ready (`{kind, namespace, name, createdLater,
    /// renderedWhen}`): `createdLater` for what an operator creates, `renderedWhen: {value,
    /// default, atLeast}` for what the chart renders only when a value is at least a version.
    #[serde(default)]
    readiness: Vec<Workload>,
    /// What the CNI offers (`egress-gateway`, `egress-failover`, `egress-excluded-cidrs`,
    /// `load-balancer-service`, `tsn-priority-map`, `host-port`, ...): a scenario that needs
    /// one the profile lacks is ignored, with the reason.
    #[serde(default)]
    features: Vec<Feature>,
    /// The CNI replaces kube-proxy: its agents are told the API server's address.
    #[serde(default)]
    replaces_kube_proxy: bool,
    /// Reference plugins the run puts on every node first.
    #[serde(default)]
    node_plugins: Option<super::NodePlugins>,
    /// How the neutral egress policy becomes the CNI's objects: `antrea`, `cilium`,
    /// `lab-reference`; absent when the CNI has no egress policy.
    #[serde(default)]
    egress: Option<EgressDialect>,
    /// The Gateway API implementation HTTPRoutes go through by default.
    #[serde(default)]
    gateway: Option<String>,
    /// The profile proves the suites (the reference plugins), it certifies nothing.
    #[serde(default)]
    self_test: bool,
    /// The kind node image, pinned by digest: `kindest/node:v1.31.9@sha256:...`.
    #[serde(default)]
    kind_node_image: Option<String>,
    /// Kernel modules every node must have loaded before the CNI installs (`br_netfilter`).
    #[serde(default)]
    node_kernel_modules: Vec<String>,
    /// `per-node` (default) or `shared`: the BPF filesystem the plugins see.
    #[serde(default)]
    bpffs: super::BpfFilesystem,
    /// What a failed trial's bundle collects beside the harness's own collectors.
    #[serde(default)]
    diagnostics: DiagnosticsFile,
    /// How a cluster running another version is upgraded to this one.
    #[serde(default)]
    upgrade: UpgradeFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UpgradeFile {
    /// Manifests: what is applied and rolled out before the rest.
    #[serde(default)]
    first: Option<UpgradeFirstFile>,
    /// Helm: a pre-flight release of the same chart, installed and awaited first.
    #[serde(default)]
    preflight: Option<PreflightFile>,
    /// Helm: values for the upgrade only, `key=value`.
    #[serde(default)]
    set: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UpgradeFirstFile {
    /// The label selector of the objects applied first (Antrea: `component!=antrea-agent`).
    selector: String,
    /// What must roll out before the rest is applied.
    #[serde(default)]
    readiness: Vec<Workload>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PreflightFile {
    /// The pre-flight check's Helm release name (removed once it passed).
    release: String,
    /// Its values, `key=value`.
    #[serde(default)]
    set: Vec<String>,
    /// What must be ready before the upgrade goes on (Cilium: the pre-flight DaemonSet and
    /// Deployment).
    #[serde(default)]
    readiness: Vec<Workload>,
}

/// `key=value` pairs as `helm --set` takes them; a pair without `=` is named by `field[i]`.
fn helm_values(pairs: &[String], field: &str, malformed: &dyn Fn(String) -> HarnessError) -> Result<Vec<(String, String)>> {
    pairs
        .iter()
        .enumerate()
        .map(|(i, pair)| {
            pair.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| malformed(format!("{field}[{i}]: expected `key=value`, got `{pair}`")))
        })
        .collect()
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DiagnosticsFile {
    /// Commands run on every node of a failed trial, each saved as `nodes/<node>/<name>.txt`.
    #[serde(default)]
    node: Vec<crate::model::DiagnosticCommand>,
    /// Commands run in the CNI agent's pods on the trial's nodes (a cluster's CNI status
    /// tools), each saved as `agents/<pod>/<name>.txt`.
    #[serde(default)]
    agent: Vec<crate::model::DiagnosticCommand>,
    /// The CNI's own flow tracer, asked about the flow a failed trial's bundle traces.
    #[serde(default)]
    flow_trace: Option<crate::model::FlowTracer>,
    /// The plugins' log files on a node (absolute paths, as the plugins write them): a
    /// failed ADD names their last lines, and every bundle of a trial holds them.
    #[serde(default)]
    logs: Vec<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
enum InstallFile {
    /// Release manifests applied in order.
    Manifests(Vec<ManifestFile>),
    /// A Helm chart, installed (and upgraded) as one release.
    Helm(HelmFile),
    /// On the lab: a conflist and the directory of its plugin binaries.
    Lab(LabFile),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ManifestFile {
    /// A release URL (`{version}` is filled in), or
    #[serde(default)]
    url: Option<String>,
    /// a file beside the profile (`{podSubnet}` is filled in).
    #[serde(default)]
    file: Option<PathBuf>,
    /// CRDs that must be Established before this manifest is applied (an operator's).
    #[serde(default)]
    wait_for_crds: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HelmFile {
    /// The chart repository; empty or absent when `chart` is an OCI reference.
    #[serde(default)]
    repo: String,
    /// The chart's name in `repo`, or an OCI reference.
    chart: String,
    /// The release name.
    release: String,
    /// The namespace the release is installed in.
    namespace: String,
    /// Values as `helm --set` takes them: `key=value`.
    #[serde(default)]
    set: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LabFile {
    /// Relative to the profile's directory.
    conflist: PathBuf,
    /// Where the plugin binaries are, relative to the profile's directory or absolute.
    #[serde(default)]
    plugin_dir: Option<PathBuf>,
    /// Several directories, searched in order (a vendor's own binaries, then Debian's).
    /// `{harness-binaries}` stands for where this build's own binaries are (the
    /// reference TSN metadata proxy), `{debian-unstable-plugins}` for Debian unstable's
    /// reference plugins as `cargo xtask deps` unpacks them.
    #[serde(default)]
    plugin_dirs: Vec<PathBuf>,
    /// A program run on each node when the lab installs or replaces this CNI there (as a
    /// DaemonSet's install container runs), relative to the profile's directory.
    #[serde(default)]
    on_install: Option<PathBuf>,
    /// What a DaemonSet would install on each node: files or directories (`from`, relative
    /// to the profile's directory) copied into the node's own directories (`to`, absolute:
    /// under `/opt` usually) before its first plugin call, executable where they were.
    #[serde(default)]
    node_files: Vec<NodeFileEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeFileEntry {
    /// A file or directory, relative to the profile's directory.
    from: PathBuf,
    /// Where it goes on each node: an absolute path in one of the node's own directories.
    to: PathBuf,
}

/// Where the shipped profiles live.
pub fn profiles_dir() -> PathBuf {
    crate::fixtures::fixture_path("cni")
}

/// Names of the profiles under `fixtures/cni/` of every fixtures directory (the project's
/// and the shipped ones).
pub fn known_profiles() -> Vec<String> {
    let mut names: Vec<String> = crate::fixtures::fixture_dirs()
        .iter()
        .flat_map(|dir| std::fs::read_dir(dir.join("cni")).into_iter().flatten().filter_map(|e| e.ok()))
        .filter(|e| e.path().join("profile.yaml").is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The profile named `name_or_path`: a directory under `fixtures/cni/`, or a file's path.
pub fn load_profile(name_or_path: &str) -> Result<CniProfile> {
    let as_path = Path::new(name_or_path);
    let path = if name_or_path.contains('/') || name_or_path.ends_with(".yaml") {
        as_path.to_owned()
    } else {
        let path = crate::fixtures::fixture_path(&format!("cni/{name_or_path}/profile.yaml"));
        if !path.is_file() {
            return Err(HarnessError::UnknownName {
                what: "CNI profile".into(),
                name: name_or_path.into(),
                variable: CNI_VARIABLE.into(),
                expected: format!("{} (directories of {}), or the path of a profile file", known_profiles().join(", "), profiles_dir().display()),
            });
        }
        path
    };
    read_profile(&path)
}

/// The profile named by `CNICONF_CNI`, else `default`.
pub fn profile_from_env(default: &str) -> Result<CniProfile> {
    match std::env::var(CNI_VARIABLE).ok().filter(|v| !v.is_empty()) {
        Some(chosen) => load_profile(&chosen),
        None => load_profile(default),
    }
}

/// Reads and checks one profile file.
pub fn read_profile(path: &Path) -> Result<CniProfile> {
    let malformed = |detail: String| HarnessError::FixtureMalformed { path: path.to_owned(), detail };
    let text = std::fs::read_to_string(path).map_err(|source| HarnessError::FixtureUnreadable { path: path.to_owned(), source })?;
    let file: ProfileFile =
        serde_saphyr::from_str_with_options(&text, serde_saphyr::options! { strict_booleans: true }).map_err(|e| malformed(e.to_string()))?;
    let directory = path.parent().map(Path::to_owned).unwrap_or_default();
    if let Some(feature) = file.features.iter().find(|f| f.is_gateway_feature()) {
        return Err(malformed(format!(
            "features: `{}` belongs to the Gateway API implementation; name one in `gateway:` instead",
            serde_json::to_value(feature).unwrap_or_default().as_str().unwrap_or_default()
        )));
    }
    let installation = match file.install {
        InstallFile::Manifests(manifests) if manifests.is_empty() => return Err(malformed("install.manifests: expected at least one manifest URL".into())),
        InstallFile::Manifests(manifests) => Installation::Manifests {
            manifests: manifests
                .into_iter()
                .enumerate()
                .map(|(i, m)| {
                    let source = match (m.url, m.file) {
                        (Some(url), None) => super::ManifestSource::Url(url),
                        (None, Some(file)) if directory.join(&file).is_file() => super::ManifestSource::File(directory.join(file)),
                        (None, Some(file)) => return Err(malformed(format!("install.manifests[{i}].file: {} is not a file", directory.join(file).display()))),
                        _ => return Err(malformed(format!("install.manifests[{i}]: expected either url or file"))),
                    };
                    Ok(super::Manifest { source, wait_for_crds: m.wait_for_crds })
                })
                .collect::<Result<Vec<_>>>()?,
        },
        InstallFile::Helm(helm) => {
            let values = helm_values(&helm.set, "install.helm.set", &malformed)?;
            Installation::Helm { repo_url: helm.repo, chart: helm.chart, release: helm.release, namespace: helm.namespace, values }
        }
        InstallFile::Lab(lab) => {
            let conflist = directory.join(&lab.conflist);
            if !conflist.is_file() {
                return Err(malformed(format!("install.lab.conflist: {} is not a file", conflist.display())));
            }
            // Read once here, so a malformed conflist stops a run before any lab exists.
            crate::cni::runtime::NetworkConfigList::load(&conflist)?;
            let plugin_dirs: Vec<PathBuf> = lab
                .plugin_dir
                .into_iter()
                .chain(lab.plugin_dirs)
                .map(|d| if crate::cni::is_plugin_dir_placeholder(&d) { d } else { directory.join(d) })
                .collect();
            if plugin_dirs.is_empty() {
                return Err(malformed("install.lab: expected pluginDir (or pluginDirs), where the conflist's plugin binaries are".into()));
            }
            let on_install = lab.on_install.map(|p| directory.join(p));
            if let Some(program) = on_install.as_ref().filter(|p| !p.is_file()) {
                return Err(malformed(format!(
                    "install.lab.onInstall: {} is not a file (a program the lab runs on each node when it installs this CNI)",
                    program.display()
                )));
            }
            let node_files = lab
                .node_files
                .into_iter()
                .enumerate()
                .map(|(i, file)| {
                    let from = directory.join(&file.from);
                    if !from.exists() {
                        return Err(malformed(format!("install.lab.nodeFiles[{i}].from: {} does not exist (a file or directory beside the profile, copied onto each node)", from.display())));
                    }
                    let own = crate::cni::runtime::NODE_DIRECTORIES.iter().map(|(_, seen_as)| *seen_as).collect::<Vec<_>>();
                    if !file.to.is_absolute() || !own.iter().any(|dir| file.to.starts_with(dir) && file.to != Path::new(dir)) {
                        return Err(malformed(format!("install.lab.nodeFiles[{i}].to: expected an absolute path under one of a lab node's own directories ({}), e.g. /opt/cni/bin/my-cni/, not `{}`", own.join(", "), file.to.display())));
                    }
                    Ok(crate::cni::NodeFile { from, to: file.to })
                })
                .collect::<Result<Vec<_>>>()?;
            Installation::Lab { conflist, plugin_dirs, on_install, node_files }
        }
    };
    let runs_on_the_lab = matches!(installation, Installation::Lab { .. });
    let upgrade = upgrade_procedure(file.upgrade, &installation, &malformed)?;
    let egress = file.egress.unwrap_or(EgressDialect::None);
    if egress == EgressDialect::LabReference && !runs_on_the_lab {
        return Err(malformed("egress: `lab-reference` is the lab's own gateway; a CNI installed on a cluster names its own dialect (antrea, cilium)".into()));
    }
    let gateway = match file.gateway {
        Some(name) => Some(crate::gateway::for_profile(&name, &file.name, runs_on_the_lab).map_err(|e| malformed(format!("gateway: {e}")))?),
        None => None,
    };
    if let Some(image) = &file.kind_node_image {
        if !pinned_by_digest(image) {
            return Err(malformed(format!("kindNodeImage: expected an image pinned by digest, `<repository>:<tag>@sha256:<64 hex digits>` as kind's release notes list them, not `{image}`")));
        }
    }
    Ok(CniProfile {
        name: file.name,
        version: file.version,
        features: file.features,
        installation,
        readiness: file.readiness,
        replaces_kube_proxy: file.replaces_kube_proxy,
        node_plugins: file.node_plugins,
        egress,
        gateway,
        source: path.to_owned(),
        self_test: file.self_test,
        kind_node_image: file.kind_node_image,
        node_kernel_modules: file.node_kernel_modules,
        bpffs: file.bpffs,
        plugin_logs: {
            if let Some((i, log)) = file.diagnostics.logs.iter().enumerate().find(|(_, log)| !log.is_absolute()) {
                return Err(malformed(format!("diagnostics.logs[{i}]: expected the absolute path of a log file on the node, as the plugin writes it (e.g. /var/log/my-cni/cni.log), not `{}`", log.display())));
            }
            file.diagnostics.logs.clone()
        },
        node_collectors: {
            for (i, collector) in file.diagnostics.node.iter().enumerate() {
                collector.check().map_err(|e| malformed(format!("diagnostics.node[{i}]: {e}")))?;
            }
            file.diagnostics.node
        },
        agent_collectors: {
            for (i, collector) in file.diagnostics.agent.iter().enumerate() {
                collector.check().map_err(|e| malformed(format!("diagnostics.agent[{i}]: {e}")))?;
            }
            file.diagnostics.agent
        },
        flow_tracer: file.diagnostics.flow_trace,
        upgrade,
    })
}

/// The profile's `upgrade:` section, each part checked against how the CNI installs.
fn upgrade_procedure(file: UpgradeFile, installation: &Installation, malformed: &dyn Fn(String) -> HarnessError) -> Result<super::UpgradeProcedure> {
    let helm = matches!(installation, Installation::Helm { .. });
    let manifests = matches!(installation, Installation::Manifests { .. });
    if file.first.is_some() && !manifests {
        return Err(malformed("upgrade.first: a label selector of manifest objects applied first; this profile installs no manifests".into()));
    }
    if (file.preflight.is_some() || !file.set.is_empty()) && !helm {
        let field = if file.preflight.is_some() { "upgrade.preflight" } else { "upgrade.set" };
        return Err(malformed(format!("{field}: Helm values for the upgrade; this profile installs no Helm chart")));
    }
    let (first_selector, first_readiness) = match file.first {
        Some(first) if first.selector.trim().is_empty() => {
            return Err(malformed("upgrade.first.selector: expected a label selector (`component!=antrea-agent`)".into()))
        }
        Some(first) => (Some(first.selector), first.readiness),
        None => (None, Vec::new()),
    };
    let preflight = match file.preflight {
        Some(preflight) => Some(super::HelmPreflight {
            values: helm_values(&preflight.set, "upgrade.preflight.set", malformed)?,
            release: preflight.release,
            readiness: preflight.readiness,
        }),
        None => None,
    };
    Ok(super::UpgradeProcedure { first_selector, first_readiness, preflight, values: helm_values(&file.set, "upgrade.set", malformed)? })
}

/// Whether `image` names one image for good: a tag and a sha256 digest.
fn pinned_by_digest(image: &str) -> bool {
    let Some((reference, digest)) = image.split_once("@sha256:") else { return false };
    let tagged = reference.rsplit_once(':').is_some_and(|(repository, tag)| !repository.is_empty() && !tag.is_empty() && !tag.contains('/'));
    tagged && digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("profile.yaml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn every_shipped_profile_loads() {
        let names = known_profiles();
        assert!(["antrea", "cilium", "reference"].iter().all(|n| names.contains(&n.to_string())), "{names:?}");
        for name in names {
            let profile = load_profile(&name).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(profile.name, name);
        }
    }

    #[test]
    fn a_diagnostics_command_is_named_as_a_file_and_has_a_program() {
        let dir = tempfile::tempdir().unwrap();
        let base = "name: x\nversion: \"1\"\ninstall:\n  manifests:\n    - url: https://example.org/x-{version}.yaml\n";
        let shipped = load_profile("cilium").unwrap();
        assert_eq!(
            shipped.agent_collectors.iter().map(|c| (c.name.as_str(), c.container.as_deref())).collect::<Vec<_>>(),
            [("status", Some("cilium-agent")), ("bpf-egress", Some("cilium-agent")), ("hubble-flows", Some("cilium-agent"))]
        );
        let bad_name = write(dir.path(), &format!("{base}diagnostics:\n  node:\n    - {{name: ../routes, run: [ip, route]}}\n"));
        let error = read_profile(&bad_name).unwrap_err().to_string();
        assert!(
            error.contains("diagnostics.node[0]: name: expected a file name")
                && error.contains("`../routes`")
                && error.contains(&bad_name.display().to_string()),
            "{error}"
        );
        let no_program = write(dir.path(), &format!("{base}diagnostics:\n  agent:\n    - {{name: status, run: []}}\n"));
        assert!(read_profile(&no_program).unwrap_err().to_string().contains("diagnostics.agent[0]: run: expected the program and its arguments for `status`"));
    }

    /// Hubble's flows are read per trial namespace (`{namespace}`), one file each, so a
    /// failed trial's bundle holds its own flows, not the node's last few thousand; a
    /// command without the placeholder runs once.
    #[test]
    fn an_agent_command_naming_the_namespace_runs_once_per_trial_namespace() {
        let shipped = load_profile("cilium").unwrap();
        let hubble = shipped.agent_collectors.iter().find(|c| c.name == "hubble-flows").unwrap();
        let namespaces = ["prod-t3-0a1b2c".to_owned(), "staging-t3-0a1b2c".to_owned()];
        let runs = hubble.runs_for(&namespaces);
        assert_eq!(runs.iter().map(|(file, _)| file.as_str()).collect::<Vec<_>>(), ["hubble-flows.prod-t3-0a1b2c", "hubble-flows.staging-t3-0a1b2c"]);
        assert_eq!(runs[0].1.join(" "), "hubble observe --last 2000 --namespace prod-t3-0a1b2c --output compact");
        let status = &shipped.agent_collectors[0];
        assert_eq!(status.runs_for(&namespaces), [("status".to_owned(), status.run.clone())]);
    }

    #[test]
    fn an_upgrade_procedure_must_fit_how_the_cni_installs() {
        let dir = tempfile::tempdir().unwrap();
        let manifests = "name: x\nversion: \"1.2.3\"\ninstall:\n  manifests: [{url: u}]\n";
        let helm = "name: x\nversion: \"1.2.3\"\ninstall:\n  helm: {chart: c, release: r, namespace: n}\n";
        let cases = [
            (
                format!("{helm}upgrade:\n  first: {{selector: app=x}}\n"),
                "upgrade.first: a label selector of manifest objects applied first; this profile installs no manifests",
            ),
            (
                format!("{manifests}upgrade:\n  preflight: {{release: p}}\n"),
                "upgrade.preflight: Helm values for the upgrade; this profile installs no Helm chart",
            ),
            (format!("{manifests}upgrade:\n  set: [a=b]\n"), "upgrade.set: Helm values for the upgrade"),
            (format!("{helm}upgrade:\n  set: [novalue]\n"), "upgrade.set[0]: expected `key=value`, got `novalue`"),
            (format!("{helm}upgrade:\n  preflight: {{release: p, set: [a=b, bad]}}\n"), "upgrade.preflight.set[1]: expected `key=value`"),
            (format!("{manifests}upgrade:\n  first: {{selector: \" \"}}\n"), "upgrade.first.selector: expected a label selector"),
            (format!("{manifests}upgrade:\n  firstly: {{selector: a=b}}\n"), "firstly"),
        ];
        for (text, expected) in cases {
            let path = write(dir.path(), &text);
            let error = read_profile(&path).unwrap_err().to_string();
            assert!(error.contains(expected) && error.contains(&path.display().to_string()), "{text}: {error}");
        }
        let antrea = load_profile("antrea").unwrap();
        assert_eq!((antrea.upgrade.first_selector.as_deref(), antrea.upgrade.first_readiness.len()), (Some("component!=antrea-agent"), 1));
        let cilium = load_profile("cilium").unwrap();
        assert_eq!(cilium.upgrade.preflight.as_ref().map(|p| p.release.as_str()), Some("cilium-preflight"));
        assert!(cilium.upgrade.values.contains(&("upgradeCompatibility".into(), "{initialMinor}".into())));
    }

    #[test]
    fn an_unknown_name_lists_the_known_ones() {
        let error = load_profile("calico-typo").unwrap_err().to_string();
        assert!(
            error.contains(
                "unknown CNI profile `calico-typo` in CNICONF_CNI; expected one of: antrea, antrea-2.1, calico, cilium, cilium-1.15, flannel, reference"
            ),
            "{error}"
        );
    }

    #[test]
    fn a_malformed_profile_names_the_file_and_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("name: x\nversion: 1\ninstall:\n  helm: {chart: c, release: r, namespace: n, set: [novalue]}\n", "install.helm.set[0]: expected `key=value`"),
            ("name: x\nversion: 1\ninstall:\n  manifests: [{url: u}]\nfeatures: [egress-gateway, teleport]\n", "teleport"),
            (
                "name: x\nversion: 1\ninstall:\n  manifests: [{url: u}]\nfeatures: [request-mirror]\n",
                "features: `request-mirror` belongs to the Gateway API implementation",
            ),
            ("name: x\nversion: 1\ninstall:\n  manifests: [{url: u}]\nreadines: []\n", "readines"),
            ("name: x\nversion: 1\ninstall:\n  lab: {conflist: missing.conflist, pluginDir: /usr/lib/cni}\n", "install.lab.conflist"),
            (
                &format!(
                    "name: x\nversion: 1\ninstall:\n  lab: {{conflist: {}, pluginDir: /usr/lib/cni, onInstall: missing.sh}}\n",
                    profiles_dir().join("reference/10-lab.conflist").display()
                ),
                "install.lab.onInstall: ",
            ),
            ("name: x\nversion: 1\ninstall:\n  manifests: [{url: u}]\ngateway: envoy\n", "gateway: unknown Gateway API implementation `envoy`"),
            ("name: x\nversion: 1\ninstall:\n  manifests: [{url: u}]\negress: lab-reference\n", "egress: `lab-reference` is the lab's own gateway"),
            (
                "name: x\nversion: 1\ninstall:\n  manifests: [{url: u}]\nkindNodeImage: kindest/node:v1.31.9\n",
                "kindNodeImage: expected an image pinned by digest",
            ),
        ];
        for (text, expected) in cases {
            let path = write(dir.path(), text);
            let error = load_profile(&path.display().to_string()).unwrap_err().to_string();
            assert!(error.contains(&path.display().to_string()) && error.contains(expected), "expected `{expected}` in: {error}");
        }
    }

    #[test]
    fn a_lab_profile_finds_its_conflist_and_plugins_beside_it() {
        let profile = load_profile("reference").unwrap();
        let Installation::Lab { conflist, plugin_dirs, .. } = &profile.installation else { panic!("{profile:?}") };
        assert!(conflist.ends_with("cni/reference/10-lab.conflist") && conflist.is_file());
        assert_eq!(plugin_dirs, &[PathBuf::from("/usr/lib/cni")]);
    }
}
