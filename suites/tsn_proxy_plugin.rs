//! The reference TSN metadata proxy as a CNI plugin, run as a runtime runs it, on a node
//! made of two network namespaces: ADD attaches and pins, CHECK verifies (and notices a
//! missing attachment), DEL removes exactly what ADD made, the shared restorer with the
//! node's last pod, and errors name the field. Needs root (network namespaces, BPF).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tsn_proxy::datapath::{PIN_DIRECTORY, RESTORER, SAVER};

const PROXY: &str = env!("CARGO_BIN_EXE_tsn-metadata-proxy");

/// A node namespace with a NIC (eth0) and pods wired to it by veth pairs, and a bpffs.
struct Node {
    name: String,
    pods: Vec<String>,
    bpffs: tempfile::TempDir,
}

fn ip(args: &[&str]) {
    let output = Command::new("ip").args(args).output().unwrap();
    assert!(output.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr));
}

impl Node {
    fn new(tag: &str, pods: usize) -> Node {
        let name = format!("tsnplug-{tag}-{}", std::process::id());
        ip(&["netns", "add", &name]);
        ip(&["-n", &name, "link", "add", "eth0", "type", "veth", "peer", "name", "uplink"]);
        ip(&["-n", &name, "link", "set", "eth0", "up"]);
        let pods = (0..pods)
            .map(|i| {
                let pod = format!("{name}-p{i}");
                ip(&["netns", "add", &pod]);
                ip(&["-n", &name, "link", "add", &format!("veth{i}"), "type", "veth", "peer", "name", "eth0", "netns", &pod]);
                ip(&["-n", &name, "link", "set", &format!("veth{i}"), "up"]);
                ip(&["-n", &pod, "link", "set", "eth0", "up"]);
                pod
            })
            .collect();
        let bpffs = tempfile::tempdir().unwrap();
        nix::mount::mount(Some("bpf"), bpffs.path(), Some("bpf"), nix::mount::MsFlags::empty(), None::<&str>).unwrap();
        Node { name, pods, bpffs }
    }

    fn config(&self, pod: usize, extra: serde_json::Value) -> String {
        let mut config = serde_json::json!({
            "cniVersion": "1.0.0", "name": "k8s", "type": "tsn-metadata-proxy", "nic": "eth0", "bpffs": self.bpffs.path(),
            "prevResult": { "cniVersion": "1.0.0", "interfaces": [{ "name": format!("veth{pod}") }, { "name": "eth0", "sandbox": format!("/run/netns/{}", self.pods[pod]) }], "ips": [] }
        });
        config.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        config.to_string()
    }

    /// Runs the proxy for `command` on pod `pod` inside the node's namespace.
    fn cni(&self, command: &str, pod: usize, extra: serde_json::Value) -> (bool, String) {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.name, PROXY])
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", format!("c{pod}"))
            .env("CNI_NETNS", format!("/run/netns/{}", self.pods[pod]))
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", "/usr/lib/cni")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), self.config(pod, extra).as_bytes()).unwrap();
        let output = child.wait_with_output().unwrap();
        (output.status.success(), format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)))
    }

    /// The proxy's pins on the node, but for its loaded programs ([`Node::programs`]).
    fn pins(&self) -> Vec<String> {
        self.all_pins().into_iter().filter(|p| !p.starts_with("programs")).collect()
    }

    /// The programs the proxy loaded and pinned on the node, `<build>/<program>`.
    fn programs(&self) -> Vec<String> {
        self.all_pins().into_iter().filter_map(|p| p.strip_prefix("programs/").map(str::to_owned)).filter(|p| p.contains('/')).collect()
    }

    fn all_pins(&self) -> Vec<String> {
        let dir = self.bpffs.path().join(PIN_DIRECTORY);
        let mut found: Vec<String> = walk(&dir).into_iter().map(|p| p.strip_prefix(&dir).unwrap().display().to_string()).collect();
        found.sort();
        found
    }

    /// The ids of the programs tcx runs on `interface` of `netns` in `direction`.
    fn attached_ids(&self, netns: &str, interface: &str, direction: aya::programs::TcAttachType) -> Vec<u32> {
        tsn_proxy::datapath::attached_in(&format!("/run/netns/{netns}"), interface, direction)
            .map(|p| p.into_iter().map(|(id, _)| id).collect())
            .unwrap_or_default()
    }

    /// The programs tcx runs on `interface` of `netns` in `direction` (`ingress`/`egress`).
    fn attached(&self, netns: &str, interface: &str, direction: &str) -> Vec<String> {
        // tcx links are not tc filters: they are listed by the kernel's BPF query.
        let direction = if direction == "egress" { aya::programs::TcAttachType::Egress } else { aya::programs::TcAttachType::Ingress };
        tsn_proxy::datapath::attached_in(&format!("/run/netns/{netns}"), interface, direction)
            .map(|p| p.into_iter().map(|(_, name)| name).collect())
            .unwrap_or_default()
    }

    /// Whether nothing runs on `interface` of `netns` in `direction` within [`DETACHED`]: a
    /// link goes when its last reference (its pin) does, but the kernel releases it in the
    /// background, later on a loaded machine.
    fn detached_in_time(&self, netns: &str, interface: &str, direction: &str) -> bool {
        let started = std::time::Instant::now();
        while !self.attached(netns, interface, direction).is_empty() {
            if started.elapsed() > DETACHED {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        true
    }
}

/// How long the kernel may take to release a link whose pin was removed.
const DETACHED: std::time::Duration = std::time::Duration::from_secs(5);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(self.bpffs.path(), nix::mount::MntFlags::MNT_DETACH);
        for netns in self.pods.iter().chain([&self.name]) {
            let _ = Command::new("ip").args(["netns", "del", netns]).status();
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir).into_iter().flatten().flatten().flat_map(|e| std::iter::once(e.path()).chain(walk(&e.path()))).collect()
}

/// Runs `work` on a thread of its own: the attachment check enters other namespaces.
fn on_a_thread<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| s.spawn(work).join().unwrap())
}

#[test]
fn add_check_and_del_keep_the_shared_restorer_until_the_last_pod_goes() {
    on_a_thread(|| {
        let node = Node::new("life", 2);
        let none = serde_json::json!({});
        for pod in 0..2 {
            let (ok, out) = node.cni("ADD", pod, none.clone());
            assert!(ok, "ADD {pod}: {out}");
            assert!(out.contains("\"sandbox\""), "ADD passes the main plugin's result on: {out}");
        }
        assert_eq!(node.pins(), ["pods", "pods/c0-eth0", "pods/c1-eth0", "restore-nic-eth0", "save-c0-eth0", "save-c1-eth0"]);
        assert_eq!(node.attached(&node.name, "eth0", "egress"), [RESTORER], "one restorer on the NIC for every pod");
        assert_eq!(node.attached(&node.pods[0], "eth0", "egress"), [SAVER]);
        assert!(node.cni("CHECK", 0, none.clone()).0);

        let (ok, out) = node.cni("DEL", 0, none.clone());
        assert!(ok, "DEL: {out}");
        assert_eq!(node.pins(), ["pods", "pods/c1-eth0", "restore-nic-eth0", "save-c1-eth0"], "the first DEL keeps what the other pod shares");
        assert!(node.detached_in_time(&node.pods[0], "eth0", "egress"), "the saver leaves the deleted pod within {DETACHED:?}");
        assert!(node.cni("DEL", 0, none.clone()).0, "a second DEL of the same pod is fine");
        assert!(node.cni("DEL", 1, none.clone()).0);
        assert!(node.all_pins().is_empty() && !node.bpffs.path().join(PIN_DIRECTORY).exists(), "the last DEL leaves nothing: {:?}", node.all_pins());
        assert!(node.detached_in_time(&node.name, "eth0", "egress"), "the restorer leaves the NIC with the last pod within {DETACHED:?}");
    });
}

#[test]
fn check_notices_a_restorer_that_is_gone() {
    on_a_thread(|| {
        let node = Node::new("check", 1);
        assert!(node.cni("ADD", 0, serde_json::json!({})).0);
        std::fs::remove_file(node.bpffs.path().join(PIN_DIRECTORY).join("restore-nic-eth0")).unwrap();
        // The kernel releases the link in the background: until then the restorer is still
        // attached, and CHECK rightly passes (a loaded machine once took longer than the call).
        assert!(node.detached_in_time(&node.name, "eth0", "egress"), "the restorer leaves the NIC within {DETACHED:?} of its pin");
        let (ok, out) = node.cni("CHECK", 0, serde_json::json!({}));
        assert!(!ok && out.contains("\"code\":101") && out.contains("restore_prio is not attached to eth0 Egress"), "CHECK passed: {ok}, printed: {out}");
    });
}

#[test]
fn the_hook_on_the_pod_veth_ingress_attaches_there_and_del_removes_it() {
    on_a_thread(|| {
        let node = Node::new("hook", 1);
        let hook = serde_json::json!({ "hook": "pod-veth-ingress" });
        assert!(node.cni("ADD", 0, hook.clone()).0);
        assert_eq!(node.attached(&node.name, "veth0", "ingress"), [RESTORER]);
        assert!(node.attached(&node.name, "eth0", "egress").is_empty());
        assert!(node.cni("CHECK", 0, hook.clone()).0);
        assert!(node.cni("DEL", 0, hook).0);
        assert!(node.pins().is_empty(), "{:?}", node.pins());
    });
}

#[test]
fn bad_configs_and_environments_are_named() {
    on_a_thread(|| {
        let node = Node::new("bad", 1);
        let (ok, out) = node.cni("ADD", 0, serde_json::json!({ "nic": null }));
        assert!(!ok && out.contains("\"code\":7") && out.contains("field `nic`"), "{out}");
        let (ok, out) = node.cni("ADD", 0, serde_json::json!({ "hook": "nic-ingress" }));
        assert!(!ok && out.contains("unknown variant `nic-ingress`"), "{out}");
        let (ok, out) = node.cni("ADD", 0, serde_json::json!({ "bpffs": "/tmp" }));
        assert!(!ok && out.contains("field `bpffs`: /tmp is not a BPF filesystem"), "{out}");
        let (ok, out) = node.cni("ADD", 0, serde_json::json!({ "prevResult": null }));
        assert!(!ok && out.contains("prevResult"), "{out}");
    });
    let output = Command::new(PROXY).env_clear().env("CNI_COMMAND", "VERSION").output().unwrap();
    assert!(String::from_utf8_lossy(&output.stdout).contains("\"supportedVersions\":[\"0.4.0\",\"1.0.0\",\"1.1.0\"]"));
    let output = Command::new(PROXY).env_clear().env("CNI_COMMAND", "ADD").output().unwrap();
    assert!(!output.status.success() && String::from_utf8_lossy(&output.stdout).contains("CNI_NETNS is not set: run me as a CNI runtime would"));
}

/// A production proxy's agent loads its programs once per node; so does the reference
/// proxy: the node's first ADD loads (the verifier runs) and pins them, every later ADD
/// attaches the same programs, another fault set loads its own, and the last DEL unpins.
#[test]
fn the_node_s_first_add_loads_the_programs_and_later_adds_attach_the_same_ones() {
    use aya::programs::TcAttachType::Egress;
    on_a_thread(|| {
        let node = Node::new("once", 3);
        let (faithful, swapped) = (serde_json::json!({}), serde_json::json!({ "faults": ["swap-priorities"] }));
        assert!(node.cni("ADD", 0, faithful.clone()).0);
        let builds = node.programs();
        assert_eq!(builds.len(), 2, "one build, its saver and its restorer: {builds:?}");
        assert!(builds.iter().any(|p| p.ends_with(&format!("/{SAVER}"))) && builds.iter().any(|p| p.ends_with(&format!("/{RESTORER}"))), "{builds:?}");
        assert!(node.cni("ADD", 1, faithful.clone()).0);
        assert_eq!(node.programs(), builds, "the second ADD loads nothing");
        let saver = |pod: usize| node.attached_ids(&node.pods[pod], "eth0", Egress);
        assert_eq!(saver(0).len(), 1);
        assert_eq!(saver(0), saver(1), "both pods run the one saver the first ADD loaded");

        assert!(node.cni("ADD", 2, swapped.clone()).0);
        assert_eq!(node.programs().len(), 4, "another fault set is another build: {:?}", node.programs());
        assert_ne!(saver(2), saver(0));

        for (pod, conf) in [(0, &faithful), (1, &faithful), (2, &swapped)] {
            assert!(node.cni("DEL", pod, conf.clone()).0);
        }
        assert!(node.all_pins().is_empty(), "the last DEL unpins the programs: {:?}", node.all_pins());
    });
}
