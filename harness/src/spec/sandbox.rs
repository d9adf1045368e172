//! A node of its own for one specification check: a network namespace with an uplink, its
//! own `/var/lib/cni` and BPF filesystem, containers as further namespaces, and a snapshot
//! of everything a plugin could leave behind there.
//!
//! A sandbox is a lab cluster as far as clean-up goes (`cniconf-<id>-...` namespaces and a
//! state directory): dropping it, an interrupt, or `cargo xtask gc` removes it.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::cni::runtime::{Attachment, CniRuntime, NodeView};
use crate::error::Result;
use crate::provider::lab::gc;
use crate::provider::lab::shell::run;
use crate::provider::runs;

/// The node's uplink, a plugin's `master` (macvlan) and default route.
pub const UPLINK: &str = "eth0";
pub use crate::provider::lab::node_state::{node_state, IPAM_FILES};
pub const UPLINK_ADDRESS: &str = "192.168.100.2/24";
pub const UPLINK_GATEWAY: &str = "192.168.100.1";

/// One node and its containers.
pub struct Sandbox {
    cluster: String,
    pub node: String,
    state: PathBuf,
    pub runtime: CniRuntime,
    containers: AtomicUsize,
    /// Containers whose namespace is gone.
    removed: std::sync::Mutex<BTreeSet<String>>,
}

/// A container: its network namespace, by name and path.
#[derive(Debug, Clone)]
pub struct Container {
    pub id: String,
    pub netns: String,
    pub path: PathBuf,
}

impl Sandbox {
    /// A fresh node whose plugins are looked up in `plugin_dirs`, with what `profile`
    /// installs on a node (its node files, its logs) when the subject has one.
    pub fn new(plugin_dirs: &[PathBuf], profile: Option<&crate::cni::CniProfile>) -> Result<Self> {
        let cluster = runs::new_cluster_name();
        gc::claim_removed_on_interrupt(&cluster)?;
        let node = format!("{cluster}-node");
        let state = runs::state_dir(&cluster);
        let mut sandbox = Self {
            runtime: CniRuntime {
                plugin_dirs: plugin_dirs.to_vec(),
                cache_dir: state.join("cache"),
                node: Some(NodeView {
                    netns: node.clone(),
                    bpffs: state.join("bpffs"),
                    own_directories: Some(state.clone()),
                    netns_dir: Some(state.join("netns")),
                    logs: vec![],
                    kept_from_the_host: vec![],
                    files: vec![],
                }),
                records: Default::default(),
                budget: None,
            },
            cluster,
            node,
            state,
            containers: AtomicUsize::new(0),
            removed: std::sync::Mutex::new(BTreeSet::new()),
        };
        crate::cleanup::guard_creation(|| {
            if let Some(view) = sandbox.runtime.node.as_mut() {
                match profile {
                    Some(profile) => view.install(profile, plugin_dirs)?,
                    None => view.prepare(plugin_dirs)?,
                }
            }
            gc::mount_bpffs(&sandbox.state.join("bpffs"))?;
            run("ip", &["netns", "add", &sandbox.node], None)?;
            let lines = [
                "link set lo up".to_owned(),
                // A veth pair stands for the uplink (this kernel has no dummy links).
                format!("link add {UPLINK} type veth peer name {UPLINK}-far"),
                format!("link set {UPLINK}-far up"),
                format!("addr add {UPLINK_ADDRESS} dev {UPLINK}"),
                format!("link set {UPLINK} up"),
                format!("route add default via {UPLINK_GATEWAY} dev {UPLINK} onlink"),
            ];
            crate::provider::lab::shell::ip_batch(Some(&sandbox.node), &lines)
        })?;
        Ok(sandbox)
    }

    /// A new container namespace with its loopback up.
    pub fn container(&self) -> Result<Container> {
        let n = self.containers.fetch_add(1, Ordering::SeqCst) + 1;
        let netns = format!("{}-c{n}", self.cluster);
        let view = self.runtime.node.as_ref().expect("the sandbox has a node view");
        let path = crate::cleanup::guard_creation(|| {
            run("ip", &["netns", "add", &netns], None)?;
            run("ip", &["-n", &netns, "link", "set", "lo", "up"], None)?;
            // As containerd and CRI-O name it, in the node's own /var/run/netns.
            view.expose_netns(&netns)
        })?;
        Ok(Container { id: format!("spec-{n}-{}", &self.cluster[runs::NAME_PREFIX.len()..]), path, netns })
    }

    /// Deletes a container's namespace, as a runtime does when a pod is gone.
    pub fn remove_container(&self, container: &Container) -> Result<()> {
        if let Some(view) = &self.runtime.node {
            view.unexpose_netns(&container.path);
        }
        crate::provider::lab::node_state::remove_netns_now(&container.netns)?;
        // What a runtime leaves is no path at all, never a plain file where the namespace was.
        if container.path.exists() {
            std::fs::remove_file(&container.path)
                .map_err(|e| crate::error::HarnessError::Command { command: format!("rm {}", container.path.display()), detail: e.to_string() })?;
        }
        self.removed.lock().unwrap_or_else(|e| e.into_inner()).insert(container.netns.clone());
        Ok(())
    }

    /// Whether the container's namespace is still there.
    pub fn exists(&self, container: &Container) -> bool {
        !self.removed.lock().unwrap_or_else(|e| e.into_inner()).contains(&container.netns)
    }

    /// An attachment of `container` as interface `eth0`, offering the runtime values every
    /// reference plugin may ask for through its capabilities.
    pub fn attachment(&self, container: &Container) -> Attachment {
        let mut offered = serde_json::Map::new();
        offered.insert("portMappings".into(), serde_json::json!([{ "hostPort": 18080, "containerPort": 8080, "protocol": "tcp" }]));
        offered.insert(
            "bandwidth".into(),
            serde_json::json!({ "ingressRate": 100_000_000, "ingressBurst": 1_000_000, "egressRate": 100_000_000, "egressBurst": 1_000_000 }),
        );
        offered.insert("mac".into(), serde_json::json!("c2:11:22:33:44:55"));
        Attachment {
            container_id: container.id.clone(),
            netns: container.path.clone(),
            ifname: "eth0".into(),
            // As containerd passes them: the pod's names, which plugins may ignore.
            args: vec![("IgnoreUnknown".into(), "1".into()), ("K8S_POD_NAMESPACE".into(), "spec".into()), ("K8S_POD_NAME".into(), container.id.clone())],
            capability_args: offered,
        }
    }

    /// Everything on the node a plugin could leave behind, one line per item.
    pub fn node_state(&self) -> Result<BTreeSet<String>> {
        node_state(&self.node, &self.state, &self.state.join("bpffs"))
    }

    /// The container's links (other than `lo`) with their addresses, one line each.
    pub fn container_state(&self, container: &Container) -> Result<BTreeSet<String>> {
        let links: Vec<serde_json::Value> = serde_json::from_str(&run("ip", &["-j", "-n", &container.netns, "addr", "show"], None)?).unwrap_or_default();
        let mut state = BTreeSet::new();
        for link in links.iter().filter(|l| l["ifname"] != "lo") {
            let name = link["ifname"].as_str().unwrap_or("?");
            state.insert(format!("link {name} mac {}", link["address"].as_str().unwrap_or("?")));
            for address in link["addr_info"].as_array().into_iter().flatten().filter(|a| a["scope"] != "link") {
                state.insert(format!("address {}/{} on {name}", address["local"].as_str().unwrap_or("?"), address["prefixlen"]));
            }
        }
        Ok(state)
    }

    /// Removes the iptables chains `names` from the node, with every rule that jumps to
    /// them, as someone flushing a plugin's rules behind its back would (the node's rules
    /// saved, filtered, restored), in both address families.
    pub fn remove_iptables_chains(&self, names: &[String]) -> Result<()> {
        for (save, restore) in [("iptables-save", "iptables-restore"), ("ip6tables-save", "ip6tables-restore")] {
            let saved = run("ip", &["netns", "exec", &self.node, save], None)?;
            let kept: String = saved.lines().filter(|line| !names.iter().any(|name| names_the_chain(line, name))).map(|line| format!("{line}\n")).collect();
            run("ip", &["netns", "exec", &self.node, restore], Some(&kept))?;
        }
        Ok(())
    }

    /// Runs `ip args` inside the container (to change it behind the plugin's back).
    pub fn in_container(&self, container: &Container, args: &[&str]) -> Result<String> {
        run("ip", &[&["-n", container.netns.as_str()], args].concat(), None)
    }
}

/// Whether an `iptables-save` line declares chain `name`, appends to it, or jumps (or goes)
/// to it.
fn names_the_chain(line: &str, name: &str) -> bool {
    let words: Vec<&str> = line.split_whitespace().collect();
    words.first() == Some(&format!(":{name}").as_str())
        || words.starts_with(&["-A", name])
        || words.windows(2).any(|w| matches!(w[0], "-j" | "-g") && w[1] == name)
}

/// The iptables chains a node state's lines (of [`node_state`]) declare that are not
/// built in: `iptables-save: :CNI-DN-1a2b -`.
pub fn own_chains<'a>(lines: impl IntoIterator<Item = &'a String>) -> BTreeSet<String> {
    lines
        .into_iter()
        .filter_map(|line| line.strip_prefix("iptables-save: :").or_else(|| line.strip_prefix("ip6tables-save: :")))
        .filter_map(|declaration| declaration.split_once(' '))
        .filter(|(_, policy)| *policy == "-")
        .map(|(name, _)| name.to_owned())
        .collect()
}

/// Link kinds the kernel must offer for a plugin to run at all, by plugin type.
const LINK_KINDS: [(&str, &str); 5] =
    [("vrf", "vrf table 10"), ("macvlan", "macvlan mode bridge"), ("ipvlan", "ipvlan"), ("bandwidth", "ifb"), ("vlan", "vlan id 10")];

/// Why `plugin` cannot run on this kernel, if it cannot: a link kind it creates is missing.
pub fn kernel_lacks(plugin: &str) -> Option<String> {
    let (_, kind) = LINK_KINDS.iter().find(|(p, _)| *p == plugin)?;
    let probe = format!("{}probe-{}", runs::NAME_PREFIX, std::process::id());
    run("ip", &["netns", "add", &probe], None).ok()?;
    let master = if kind.starts_with("macvlan") || kind.starts_with("ipvlan") || kind.starts_with("vlan") {
        let _ = run("ip", &["-n", &probe, "link", "add", "up0", "type", "veth", "peer", "name", "up1"], None);
        vec!["link", "up0"]
    } else {
        vec![]
    };
    let mut args = vec!["-n", probe.as_str(), "link", "add"];
    args.extend(master);
    args.extend(["name", "probe0", "type"]);
    args.extend(kind.split(' '));
    let lacks = run("ip", &args, None)
        .err()
        .map(|e| format!("this kernel cannot create {} links ({e}), which the {plugin} plugin needs", kind.split(' ').next().unwrap_or(kind)));
    let _ = run("ip", &["netns", "del", &probe], None);
    lacks
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Err(e) = gc::remove_cluster(&self.cluster) {
            tracing::error!("removing sandbox {}: {e}; run `cargo xtask gc`", self.cluster);
        }
        crate::cleanup::unregister(&self.cluster);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plugin_s_own_chains_and_the_rules_naming_them_are_found() {
        let lines: Vec<String> = [
            "iptables-save: :CNI-DN-1a2b -",
            "iptables-save: :POSTROUTING ACCEPT",
            "ip6tables-save: :CNI-HOSTPORT-DNAT -",
            "iptables-save: -A CNI-DN-1a2b -p tcp -j DNAT",
        ]
        .map(String::from)
        .into();
        assert_eq!(own_chains(&lines), ["CNI-DN-1a2b".to_owned(), "CNI-HOSTPORT-DNAT".to_owned()].into());
        assert!(names_the_chain(":CNI-DN-1a2b - [0:0]", "CNI-DN-1a2b"));
        assert!(names_the_chain("-A CNI-DN-1a2b -p tcp -m tcp --dport 18080 -j DNAT --to-destination 10.0.0.2:8080", "CNI-DN-1a2b"));
        assert!(names_the_chain("-A CNI-HOSTPORT-DNAT -p tcp -j CNI-DN-1a2b", "CNI-DN-1a2b"));
        assert!(!names_the_chain("-A CNI-HOSTPORT-DNAT -p tcp -j CNI-DN-1a2b3", "CNI-DN-1a2b"), "another chain whose name begins alike");
        assert!(!names_the_chain("-A POSTROUTING -j MASQUERADE", "CNI-DN-1a2b"));
    }
}
