//! Removing lab clusters: the normal teardown, the Ctrl-C path and `cargo xtask gc` share this.
//!
//! Everything a lab creates is a network namespace named `cniconf-<id>-...` plus a state
//! directory under /run. Deleting the namespaces deletes their links, routes and firewall
//! rules with them; the host's own namespace is never touched.

use super::shell::run;
use crate::error::Result;
use crate::provider::runs::{self, NAME_PREFIX};

const NETNS_DIR: &str = "/run/netns";

fn namespaces_of(cluster: &str) -> Vec<String> {
    let prefix = format!("{cluster}-");
    list_dir(NETNS_DIR).into_iter().filter(|name| name.starts_with(&prefix)).collect()
}

fn list_dir(dir: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
        .unwrap_or_default()
}

/// Kills what runs in the cluster's namespaces, deletes them and its state directory.
pub fn remove_cluster(cluster: &str) -> Result<usize> {
    let namespaces = namespaces_of(cluster);
    let pids: Vec<String> = namespaces
        .iter()
        .filter_map(|ns| run("ip", &["netns", "pids", ns], None).ok())
        .flat_map(|out| out.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .collect();
    if !pids.is_empty() {
        let mut args = vec!["-9"];
        args.extend(pids.iter().map(String::as_str));
        // A process may have exited meanwhile; that is fine.
        let _ = run("kill", &args, None);
    }
    if !namespaces.is_empty() {
        let batch: String = namespaces.iter().map(|ns| format!("netns del {ns}\n")).collect();
        run("ip", &["-force", "-batch", "-"], Some(&batch))?;
    }
    runs::release(cluster);
    Ok(namespaces.len())
}

/// A lab cluster left on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    pub cluster: String,
    pub namespaces: usize,
    /// The run that made it is still going.
    pub owner_alive: bool,
}

/// Every lab cluster that has namespaces or state on this machine (kind clusters have
/// no namespaces here; the kind provider's gc handles those).
pub fn leftovers() -> Vec<Leftover> {
    let mut clusters: Vec<String> = list_dir(NETNS_DIR)
        .into_iter()
        .chain(runs::claimed("lab"))
        .filter_map(|name| {
            let id = name.strip_prefix(NAME_PREFIX)?.split('-').next()?.to_owned();
            Some(format!("{NAME_PREFIX}{id}"))
        })
        .collect();
    clusters.sort();
    clusters.dedup();
    clusters
        .into_iter()
        .map(|cluster| Leftover { namespaces: namespaces_of(&cluster).len(), owner_alive: runs::owner_alive(&cluster), cluster })
        .collect()
}

/// What `collect` did with one leftover cluster.
#[derive(Debug)]
pub enum Collected {
    Removed { namespaces: usize },
    /// Its run is still going; removed only with `force`.
    KeptAlive,
    Failed(String),
}

/// Removes every leftover lab cluster whose run is gone (all of them with `force`).
pub fn collect(force: bool) -> Vec<(Leftover, Collected)> {
    leftovers()
        .into_iter()
        .map(|leftover| {
            let collected = if leftover.owner_alive && !force {
                Collected::KeptAlive
            } else {
                match remove_cluster(&leftover.cluster) {
                    Ok(namespaces) => Collected::Removed { namespaces },
                    Err(e) => Collected::Failed(e.to_string()),
                }
            };
            (leftover, collected)
        })
        .collect()
}
