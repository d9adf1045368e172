//! A node's datapath and CNI state as lines to compare: what a plugin could leave behind
//! on a node (links, addresses, routes, rules, iptables and nft, qdiscs and filters, tcx
//! and XDP programs, IPAM files, BPF pins, what it wrote to the host's directories). `cni_spec`'s nodes and the
//! lab's nodes are read alike.

use std::collections::BTreeSet;
use std::path::Path;

use crate::cni::runtime::{CNI_BIN, CNI_BIN_UPPER, NODE_DIRECTORIES, OVERLAY, WRITTEN_APART};
use crate::error::Result;
use crate::provider::lab::shell::run;

/// How [`node_state`] names files under `/var/lib/cni` (IPAM reservations and bookkeeping);
/// files under the node's other directories of its own are named alike (`file /run/cni/…`).
pub const IPAM_FILES: &str = "file /var/lib/cni";

/// Everything on the node in network namespace `netns` a plugin could leave behind, one
/// line per item; `own_directories` is the node's state directory, which holds its own
/// `/var/lib/cni`, `/run/cni` and `/tmp` ([`NODE_DIRECTORIES`]; its `/var/log` and `/opt`
/// too, left out: logs and installed files are no plugin's state), `bpffs` its BPF
/// filesystem.
pub fn node_state(netns: &str, own_directories: &Path, bpffs: &Path) -> Result<BTreeSet<String>> {
    let mut state = BTreeSet::new();
    let exec = |args: &[&str]| crate::provider::lab::shell::netlink_tool_in_netns(netns, args[0], &args[1..]);
    let json = |args: &[&str]| -> Result<Vec<serde_json::Value>> {
        Ok(serde_json::from_str(&run("ip", &[&["-j", "-n", netns], args].concat(), None)?).unwrap_or_default())
    };
    for link in json(&["-d", "link", "show"])? {
        let kind = link.pointer("/linkinfo/info_kind").and_then(|k| k.as_str()).unwrap_or("device");
        state.insert(format!("link {} ({kind})", link["ifname"].as_str().unwrap_or("?")));
        for (key, value) in [("master", link.get("master")), ("qdisc", link.get("qdisc"))] {
            if let Some(value) = value.and_then(|v| v.as_str()) {
                state.insert(format!("link {} {key} {value}", link["ifname"].as_str().unwrap_or("?")));
            }
        }
        if let Some(xdp) = link.get("xdp") {
            let program = xdp
                .pointer("/prog/name")
                .and_then(|n| n.as_str())
                .map(str::to_owned)
                .unwrap_or_else(|| format!("program {}", xdp.pointer("/prog/id").unwrap_or(&serde_json::Value::Null)));
            state.insert(format!("xdp on {}: {program}", link["ifname"].as_str().unwrap_or("?")));
        }
    }
    for link in json(&["addr", "show"])? {
        for address in link["addr_info"].as_array().into_iter().flatten() {
            state.insert(format!(
                "address {}/{} on {}",
                address["local"].as_str().unwrap_or("?"),
                address["prefixlen"],
                link["ifname"].as_str().unwrap_or("?")
            ));
        }
    }
    for family in ["-4", "-6"] {
        for route in json(&[family, "route", "show", "table", "all"])? {
            let table = route.get("table").and_then(|t| t.as_str()).unwrap_or("main");
            if table == "local" {
                continue;
            }
            state.insert(format!(
                "route {} via {} dev {} table {table}",
                route["dst"].as_str().unwrap_or("?"),
                route.get("gateway").and_then(|g| g.as_str()).unwrap_or("-"),
                route.get("dev").and_then(|d| d.as_str()).unwrap_or("-")
            ));
        }
        for rule in json(&[family, "rule", "show"])? {
            state.insert(format!("rule {rule}"));
        }
    }
    for tool in ["iptables-save", "ip6tables-save"] {
        for line in exec(&[tool])?.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
            // Chain counters change with traffic, not with plugins.
            state.insert(format!("{tool}: {}", line.split(" [").next().unwrap_or(line)));
        }
    }
    if let Ok(ruleset) = exec(&["nft", "list", "ruleset"]) {
        // A rule's counters change with traffic, not with plugins.
        state.extend(ruleset.lines().map(str::trim).filter(|l| !l.is_empty()).map(|l| format!("nft: {}", without_counters(l))));
    }
    // Queueing disciplines and filters (a plugin's classifier on the node's NIC): by
    // kind, parent and handle; a filter by what it runs, without the ids a reload changes.
    for qdisc in serde_json::from_str::<Vec<serde_json::Value>>(&exec(&["tc", "-j", "qdisc", "show"])?).unwrap_or_default() {
        let (kind, dev) = (qdisc["kind"].as_str().unwrap_or("?"), qdisc["dev"].as_str().unwrap_or("?"));
        if matches!(kind, "noqueue" | "noop") {
            continue;
        }
        state.insert(format!("qdisc {kind} {} on {dev}", qdisc["handle"].as_str().unwrap_or("?")));
        let directions: &[&str] = match kind {
            "clsact" => &["ingress", "egress"],
            "ingress" => &["ingress"],
            _ => &[],
        };
        for direction in directions {
            for filter in exec(&["tc", "filter", "show", "dev", dev, direction])?.lines().filter(|l| l.starts_with("filter")) {
                let stable: Vec<&str> = filter.split_whitespace().take_while(|w| *w != "id" && *w != "tag").collect();
                state.insert(format!("tc filter on {dev} {direction}: {}", stable.join(" ")));
            }
        }
    }
    // BPF programs attached to the node's links with tcx (a link or not): in neither `tc
    // qdisc` nor `tc filter`, so read from the kernel (XDP's are in `ip link`, above).
    state.extend(bpf_attachments(netns)?);
    // A node's logs are no plugin's state: `/var/log` is its own, but not in the snapshot.
    // Of `/run/cni` and `/tmp` only files: a data directory a plugin made once (tuning's
    // `/run/cni/tuning`, emptied by its DEL) is where state goes, not state.
    // Nor `/opt`: what is there was installed, as a DaemonSet installs it.
    for (name, seen_as) in NODE_DIRECTORIES.into_iter().filter(|(_, seen_as)| !matches!(*seen_as, "/var/log" | "/opt")) {
        let files = files_under(&own_directories.join(name)).into_iter().filter(|f| seen_as == "/var/lib/cni" || !own_directories.join(name).join(f).is_dir());
        state.extend(files.map(|f| format!("file {seen_as}/{f}")));
    }
    state.extend(written_apart(own_directories));
    state.extend(files_under(bpffs).into_iter().map(|f| format!("pin /sys/fs/bpf/{f}")));
    Ok(state)
}

/// What the node's plugins wrote to the host's directories they see through an overlay
/// ([`WRITTEN_APART`]), read from its upper layers: `written <path>` for a file made or
/// changed, `written <path>/` for a directory the host does not have, `removed <path>` for
/// one of the host's files taken away (an overlay's whiteout, a character device 0:0).
/// A directory the host has is only where such a file went.
fn written_apart(own_directories: &Path) -> Vec<String> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut lines = Vec::new();
    for (name, seen_as) in WRITTEN_APART {
        let upper = own_directories.join(OVERLAY).join(name);
        for file in files_under(&upper) {
            let (Ok(meta), on_the_host) = (std::fs::symlink_metadata(upper.join(&file)), Path::new(seen_as).join(&file)) else { continue };
            if meta.file_type().is_char_device() && meta.rdev() == 0 {
                lines.push(format!("removed {}", on_the_host.display()));
            } else if !meta.is_dir() {
                lines.push(format!("written {}", on_the_host.display()));
            } else if !on_the_host.is_dir() {
                lines.push(format!("written {}/", on_the_host.display()));
            }
        }
    }
    // The node's plugin directory is no host directory: what a plugin wrote there is a
    // file made or replaced (a directory there is where one went).
    let upper = own_directories.join(OVERLAY).join(CNI_BIN_UPPER);
    for file in files_under(&upper) {
        let Ok(meta) = std::fs::symlink_metadata(upper.join(&file)) else { continue };
        let seen_as = Path::new(CNI_BIN).join(&file);
        if meta.file_type().is_char_device() && meta.rdev() == 0 {
            lines.push(format!("removed {}", seen_as.display()));
        } else if !meta.is_dir() {
            lines.push(format!("written {}", seen_as.display()));
        }
    }
    lines
}

/// The BPF programs attached with tcx to each link of the node in network namespace
/// `netns`, by name (ids change with every load): `tcx egress on eth0: restore_prio`. Read
/// by the kernel's BPF_PROG_QUERY in that namespace, on a thread of its own (a namespace is
/// a thread's). A kernel without tcx lists none.
pub fn bpf_attachments(netns: &str) -> Result<Vec<String>> {
    let failed = |what: &str, e: String| crate::error::HarnessError::Command { command: format!("{what} (node namespace {netns})"), detail: e };
    let namespace = crate::host::open_netns(netns)?;
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                nix::sched::setns(&namespace, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| failed("enter", e.to_string()))?;
                cni_probe::attachments::tcx_attachments().map_err(|e| failed("list tcx attachments", e))
            })
            .join()
            .unwrap_or_else(|_| Err(failed("list tcx attachments", "the thread panicked".into())))
    })
}

/// An nft rule line with its `counter packets N bytes M` as a bare `counter`.
fn without_counters(line: &str) -> String {
    let words: Vec<&str> = line.split(' ').collect();
    let mut kept = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        kept.push(words[i]);
        if words[i] == "counter" && words.get(i + 1) == Some(&"packets") && words.get(i + 3) == Some(&"bytes") {
            i += 5;
        } else {
            i += 1;
        }
    }
    kept.join(" ")
}

/// Deletes network namespace `netns` as a runtime does when a pod is gone, and what the
/// kernel's clean-up of it does to its virtual links (and with a veth its node-side peer),
/// at once: the kernel does that in the background, seconds later on a loaded machine, so
/// a node compared afterwards shows what the plugins did, not the kernel's timing. Links
/// of no kind (devices) the kernel would hand back to the host, so they are left to it.
pub fn remove_netns_now(netns: &str) -> Result<()> {
    let links: Vec<serde_json::Value> = serde_json::from_str(&run("ip", &["-j", "-d", "-n", netns, "link", "show"], None)?).unwrap_or_default();
    for link in &links {
        if let (Some(name), Some(_kind)) = (link["ifname"].as_str(), link.pointer("/linkinfo/info_kind")) {
            // A veth's peer may already have taken it with it.
            let _ = run("ip", &["-n", netns, "link", "del", name], None);
        }
    }
    run("ip", &["netns", "del", netns], None).map(drop)
}

fn files_under(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut pending = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path.clone());
            }
            files.push(path.strip_prefix(root).unwrap_or(&path).display().to_string());
        }
    }
    files
}

#[cfg(test)]
mod tests {
    #[test]
    fn traffic_does_not_change_a_rule() {
        assert_eq!(super::without_counters("counter packets 14 bytes 800 jump LAB-EGRESS"), "counter jump LAB-EGRESS");
        assert_eq!(super::without_counters("ip saddr 10.31.0.3  counter packets 0 bytes 0 jump CNI-84b0"), "ip saddr 10.31.0.3  counter jump CNI-84b0");
        assert_eq!(
            super::without_counters("type nat hook postrouting priority srcnat; policy accept;"),
            "type nat hook postrouting priority srcnat; policy accept;"
        );
    }
}
