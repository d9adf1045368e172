//! What a run is made of, and who is under test: the plugins or CNI a profile names, and
//! the parts the harness itself provides (the lab's reference egress gateway, nginx Gateway,
//! Service balancing and node agent). Every report lists them, and a scenario's features
//! are attributed to the component that provides them, so a lab run never credits the
//! plugins with what the harness did.

use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::cni::{CniProfile, Feature};

/// Whose a component is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// What the run certifies: the CNI's plugins or agents, the Gateway implementation.
    UnderTest,
    /// Part of the harness, there to prove the suites (a reference implementation).
    HarnessReference,
    /// Infrastructure the run stands on (kind, MetalLB, Gateway API CRDs).
    Infrastructure,
}

impl Role {
    pub fn label(self) -> &'static str {
        match self {
            Role::UnderTest => "under test",
            Role::HarnessReference => "harness reference",
            Role::Infrastructure => "infrastructure",
        }
    }
}

/// One part of the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    pub role: Role,
    pub name: String,
    pub version: String,
    /// Where it came from: a binary's path, a release manifest, a Debian package.
    pub origin: String,
    /// The scenario features this component provides in this run.
    #[serde(default)]
    pub provides: Vec<Feature>,
}

impl Component {
    pub fn describe(&self) -> String {
        let provides = match self.provides.is_empty() {
            true => String::new(),
            false => format!("; provides {}", self.provides.iter().map(|f| f.name()).collect::<Vec<_>>().join(", ")),
        };
        format!("{}: {} {} ({}{provides})", self.role.label(), self.name, self.version, self.origin)
    }
}

pub use crate::install::Purpose;

/// The harness components that provide `features` in a run made of `components`.
pub fn harness_parts_for<'c>(components: &'c [Component], features: &[Feature]) -> Vec<&'c Component> {
    components.iter().filter(|c| c.role == Role::HarnessReference && c.provides.iter().any(|f| features.contains(f))).collect()
}

/// A plugin binary as the lab runs it: its `VERSION` answer and its own about line (the
/// Debian package's version where the binary is Debian's and does not know its own).
/// What an upgrade replaces the CNI with, named as such: a lab profile's plugins (looked up
/// in its plugin directories, `{harness-binaries}` being `harness_binaries`), or the
/// profile itself for a CNI installed on a cluster.
pub fn upgraded_to(to: &CniProfile, harness_binaries: &Path) -> Vec<Component> {
    let after = |mut component: Component| {
        component.name = format!("{} (after the upgrade to {})", component.name, to.name);
        component
    };
    match &to.installation {
        crate::install::Installation::Lab { conflist, plugin_dirs, .. } => {
            let Ok(list) = crate::cni::runtime::NetworkConfigList::load(conflist) else { return Vec::new() };
            let dirs: Vec<std::path::PathBuf> = plugin_dirs.iter().map(|d| crate::cni::resolve_plugin_dir(d, harness_binaries)).collect();
            list.plugin_types()
                .filter_map(|plugin| dirs.iter().map(|d| d.join(plugin)).find(|p| p.is_file()).map(|path| after(plugin_component(plugin, &path))))
                .collect()
        }
        _ => vec![after(Component {
            role: Role::UnderTest,
            name: to.name.clone(),
            version: to.version.clone(),
            origin: format!("the profile {}", to.source.display()),
            provides: Vec::new(),
        })],
    }
}

pub fn plugin_component(plugin: &str, path: &Path) -> Component {
    // The answer is JSON on stdout alone; what a plugin logs on stderr is not part of it.
    let spec_versions = run_plugin(path, Some("VERSION"), r#"{"cniVersion":"1.0.0"}"#)
        .and_then(|(stdout, _)| serde_json::from_str::<serde_json::Value>(&stdout).ok())
        .and_then(|v| v["supportedVersions"].as_array().map(|a| a.iter().filter_map(|s| s.as_str()).collect::<Vec<_>>().join(", ")))
        .unwrap_or_else(|| "no VERSION answer".into());
    // skel prints its about line on stderr; other plugins may use stdout.
    let about =
        run_plugin(path, None, "").and_then(|(stdout, stderr)| format!("{stdout}{stderr}").trim().lines().next().map(str::to_owned)).unwrap_or_default();
    let version = match debian_package_version(path) {
        Some(package) if path.starts_with(super::host::unstable_plugins_root()) && (about.is_empty() || about.contains("version unknown")) => {
            format!("{package} (Debian unstable containernetworking-plugins)")
        }
        Some(package) if about.is_empty() || about.contains("version unknown") => format!("{package} (Debian containernetworking-plugins)"),
        _ if !about.is_empty() => about,
        _ => "unknown".into(),
    };
    Component {
        role: Role::UnderTest,
        name: plugin.to_owned(),
        version: format!("{version}; CNI spec {spec_versions}"),
        origin: path.display().to_string(),
        provides: vec![],
    }
}

/// Runs a plugin binary with `command` (none: it prints its about text) and returns what it
/// printed on stdout and on stderr; bounded like every plugin call, since a vendor's plugin
/// need not answer an empty command at all.
fn run_plugin(path: &Path, command: Option<&str>, stdin: &str) -> Option<(String, String)> {
    let mut process = Command::new(path);
    process.env_clear();
    if let Some(command) = command {
        process.env("CNI_COMMAND", command).env("CNI_PATH", path.parent().unwrap_or(Path::new("/")));
    }
    let what = format!("{} of {}", command.unwrap_or("its about text"), path.display());
    let budget = crate::cni::runtime::plugin_budget().min(std::time::Duration::from_secs(5));
    let (output, _) = crate::cni::runtime::run_bounded(process, stdin.as_bytes(), budget, None, &what).ok()?;
    (output.hung_after.is_none()).then_some((output.stdout, output.stderr))
}

/// The version of Debian's containernetworking-plugins, when `path` is one of its binaries:
/// the machine's package's, or Debian unstable's as `cargo xtask deps` unpacked it.
fn debian_package_version(path: &Path) -> Option<String> {
    if path.starts_with(super::host::unstable_plugins_root()) {
        return super::host::unstable_plugins().ok().map(|unstable| unstable.version);
    }
    if !path.starts_with(crate::cni::runtime::DEBIAN_PLUGIN_DIR) {
        return None;
    }
    super::host::debian_package_version(super::host::REFERENCE_PLUGINS_PACKAGE)
}

/// The parts of the lab that the harness provides, with the features each carries.
pub fn lab_reference_parts(cni: &CniProfile) -> Vec<Component> {
    let harness = format!("cni-harness {}", env!("CARGO_PKG_VERSION"));
    let mut parts = vec![
        Component {
            role: Role::HarnessReference,
            name: "lab container runtime".into(),
            version: harness.clone(),
            origin: format!(
                "runs the profile's conflist as containerd does: ADD to start a pod, DEL to remove it, never CHECK (kubelet does not gate a pod on it; `cni_spec` judges CHECK); each plugin call bounded by {} s",
                crate::cni::runtime::plugin_budget().as_secs()
            ),
            provides: vec![],
        },
        Component {
            role: Role::HarnessReference,
            name: "lab node agent".into(),
            version: harness.clone(),
            origin: "masquerades pod traffic leaving the cluster and routes between nodes, as kindnet does on kind".into(),
            provides: vec![],
        },
        Component {
            role: Role::HarnessReference,
            name: "lab reference egress gateway".into(),
            version: harness.clone(),
            origin: "policy routing over VXLAN to the gateway node and SNAT to the egress IP there, excluded destinations kept on the main table; failover to the next node of the pool when health checks from the control plane miss, announced by gratuitous ARP".into(),
            provides: vec![Feature::EgressGateway, Feature::EgressFailover, Feature::EgressExcludedCidrs],
        },
        Component {
            role: Role::HarnessReference,
            name: "lab reference Service balancing".into(),
            version: tool_version("iptables", &["--version"]).unwrap_or_else(|| "iptables".into()),
            origin: "iptables statistic rules per endpoint on a LoadBalancer VIP, as kube-proxy does".into(),
            provides: vec![Feature::LoadBalancerService],
        },
    ];
    if let Some(gateway) = cni.gateway.as_ref().filter(|g| g.name == crate::gateway::lab_reference_nginx().name) {
        parts.push(Component {
            role: Role::HarnessReference,
            name: gateway.name.into(),
            version: tool_version("nginx", &["-v"]).unwrap_or_else(|| "nginx (version unknown)".into()),
            origin: "Debian nginx-light, configured from HTTPRoutes as NGINX Gateway Fabric translates them".into(),
            provides: gateway.features.to_vec(),
        });
    }
    parts
}

/// The components of a cluster installed by a profile (kind, existing).
pub fn cluster_parts(cni: &CniProfile, version: &str, origin: &str) -> Vec<Component> {
    let mut parts = vec![Component {
        role: Role::UnderTest,
        name: cni.name.clone(),
        version: version.to_owned(),
        origin: origin.to_owned(),
        provides: cni.features.clone(),
    }];
    if let Some(gateway) = &cni.gateway {
        parts.push(Component {
            role: Role::UnderTest,
            name: format!("Gateway API implementation {}", gateway.name),
            version: gateway.version.into(),
            origin: match gateway.installation {
                Some(_) => "installed by the run beside the CNI".into(),
                None => format!("part of {}", cni.name),
            },
            provides: gateway.features.to_vec(),
        });
    }
    parts
}

/// Where a profile's CNI comes from, as a person reads it.
pub fn installation_origin(cni: &CniProfile) -> String {
    match &cni.installation {
        crate::cni::Installation::Lab { conflist, .. } => format!("conflist {}", conflist.display()),
        crate::cni::Installation::Manifests { manifests } => manifests
            .iter()
            .map(|m| match &m.source {
                crate::cni::ManifestSource::Url(url) => url.replace("{version}", &cni.version),
                crate::cni::ManifestSource::File(file) => file.display().to_string(),
            })
            .collect::<Vec<_>>()
            .join(", "),
        crate::cni::Installation::Helm { repo_url, chart, .. } => format!("Helm chart {chart} {repo_url}").trim().to_owned(),
    }
}

/// The first line a tool prints about its version.
fn tool_version(tool: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(tool).args(args).output().ok()?;
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    text.lines().next().map(|l| l.trim().to_owned()).filter(|l| !l.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_plugins_are_under_test_with_their_package_version_and_spec_versions() {
        let bridge = Path::new(crate::cni::runtime::DEBIAN_PLUGIN_DIR).join("bridge");
        assert!(bridge.exists(), "Debian's containernetworking-plugins are missing: `cargo xtask deps` installs them");
        let component = plugin_component("bridge", &bridge);
        assert_eq!(component.role, Role::UnderTest);
        assert!(component.version.contains("Debian containernetworking-plugins") && component.version.contains("CNI spec 0.1.0"), "{component:?}");
    }

    /// A plugin that logs on stderr while it answers VERSION still has its versions read
    /// (from stdout alone), and one that never answers an empty command is not waited for.
    #[test]
    fn a_vendor_plugin_s_versions_are_read_from_stdout_and_a_silent_one_is_not_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let plugin = dir.path().join("chatty");
        std::fs::write(
            &plugin,
            "#!/bin/sh\ncat > /dev/null\nif [ \"$CNI_COMMAND\" = VERSION ]; then echo 'reading config' >&2; echo '{\"cniVersion\":\"1.0.0\",\"supportedVersions\":[\"0.4.0\",\"1.0.0\"]}'; exit 0; fi\nsleep 60\n",
        )
        .unwrap();
        std::fs::set_permissions(&plugin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let started = std::time::Instant::now();
        let component = plugin_component("chatty", &plugin);
        assert!(component.version.ends_with("CNI spec 0.4.0, 1.0.0"), "{component:?}");
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "{:?}", started.elapsed());
    }

    #[test]
    fn an_upgrade_names_what_it_upgrades_to_with_its_origin() {
        let to = crate::cni::load_profile("reference-1.9.1").unwrap();
        let components = upgraded_to(&to, Path::new("/nonexistent"));
        match crate::provider::host::unstable_plugins() {
            Ok(unstable) => {
                assert_eq!(components.len(), 2, "bridge and tuning: {components:?}");
                let bridge = &components[0];
                assert_eq!((bridge.role, bridge.name.as_str()), (Role::UnderTest, "bridge (after the upgrade to reference-1.9.1)"));
                assert!(bridge.version.starts_with(&format!("{} (Debian unstable containernetworking-plugins)", unstable.version)), "{bridge:?}");
            }
            // Without `cargo xtask deps` there is nothing to name, and the lab says why.
            Err(_) => assert!(components.is_empty()),
        }
        let kind = crate::cni::load_profile("antrea").unwrap();
        assert_eq!(upgraded_to(&kind, Path::new("/")).iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["antrea (after the upgrade to antrea)"]);
    }

    #[test]
    fn the_labs_own_parts_carry_the_features_a_reference_profile_claims() {
        let parts = lab_reference_parts(&crate::cni::reference());
        assert!(parts.iter().all(|p| p.role == Role::HarnessReference));
        let egress = harness_parts_for(&parts, &[Feature::EgressGateway]);
        assert_eq!(egress.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["lab reference egress gateway"]);
        assert_eq!(
            harness_parts_for(&parts, &[Feature::EgressFailover])[0].name,
            "lab reference egress gateway",
            "failover is the harness's, not the plugins'"
        );
        assert_eq!(harness_parts_for(&parts, &[Feature::RequestMirror])[0].name, "lab-reference-nginx");
        assert!(harness_parts_for(&parts, &[]).is_empty(), "a scenario needing nothing is the plugins' own");
    }
}
