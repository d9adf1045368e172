//! Removing lab clusters: the normal teardown, the Ctrl-C path and `cargo xtask gc` share this.
//!
//! Everything a lab creates is a network namespace named `cniconf-<id>-...` plus a state
//! directory under /run, with one BPF filesystem per node mounted in it. Deleting the
//! namespaces deletes their links, routes, firewall rules and qdiscs with them;
//! unmounting the bpffs drops every pin a plugin made there, and with the pins the BPF
//! links, programs and maps they held. The host's own network namespace is never touched.

use super::shell::run;
use crate::error::Result;
use crate::provider::runs::{self, NAME_PREFIX};

const NETNS_DIR: &str = "/run/netns";

fn namespaces_of(cluster: &str) -> Vec<String> {
    let prefix = format!("{cluster}-");
    list_dir(NETNS_DIR).into_iter().filter(|name| name.starts_with(&prefix)).collect()
}

fn list_dir(dir: &str) -> Vec<String> {
    std::fs::read_dir(dir).map(|entries| entries.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect()).unwrap_or_default()
}

/// Claims `cluster` for this process and registers its removal with the interrupt's
/// cleanup, together: an interrupt sees both or neither, and refuses the claim once it has
/// begun.
pub fn claim_removed_on_interrupt(cluster: &str) -> Result<()> {
    crate::cleanup::guard_creation(|| {
        runs::claim(cluster, "lab")
            .map_err(|e| crate::error::HarnessError::Command { command: format!("create {}", runs::state_dir(cluster).display()), detail: e.to_string() })?;
        let undo = cluster.to_owned();
        crate::cleanup::register(cluster, move || {
            let _ = remove_cluster(&undo);
        });
        Ok(())
    })
}

/// Kills what runs in the cluster's namespaces, deletes them and its state directory.
pub fn remove_cluster(cluster: &str) -> Result<usize> {
    // Plugins first, by process group: a hung one may hold a namespace that is already gone.
    crate::cni::runtime::kill_recorded_plugins(&runs::state_dir(cluster));
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
    // Two removers may race (an interrupt's cleanup and the run's own teardown of the same
    // cluster): what the other removed meanwhile is gone all the same, so every step runs
    // and the state is released whatever an earlier step said; an error is reported only
    // if something is really left.
    let mut problem = None;
    if !namespaces.is_empty() {
        let batch: String = namespaces.iter().map(|ns| format!("netns del {ns}\n")).collect();
        problem = run("ip", &["-force", "-batch", "-"], Some(&batch)).err();
    }
    let state = runs::state_dir(cluster);
    if let Err(e) = unmount_everything_under(&state) {
        problem.get_or_insert(e);
    }
    runs::release(cluster);
    match problem {
        Some(e) if !namespaces_of(cluster).is_empty() || !mounts_under(&state).is_empty() => Err(e),
        _ => Ok(namespaces.len()),
    }
}

/// Mounts a fresh BPF filesystem at `at`, creating the directory.
pub fn mount_bpffs(at: &std::path::Path) -> Result<()> {
    let failed = |e: String| crate::error::HarnessError::Command { command: format!("mount -t bpf bpf {}", at.display()), detail: e };
    std::fs::create_dir_all(at).map_err(|e| failed(e.to_string()))?;
    nix::mount::mount(Some("bpf"), at, Some("bpf"), nix::mount::MsFlags::empty(), None::<&str>).map_err(|e| failed(e.to_string()))
}

/// Every mount point under `dir`, from /proc/self/mountinfo, deepest first.
fn mounts_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut mounts: Vec<std::path::PathBuf> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|point| std::path::PathBuf::from(point.replace("\\040", " ")))
        .filter(|point| point.starts_with(dir))
        .collect();
    mounts.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    mounts.dedup();
    mounts
}

fn unmount_everything_under(dir: &std::path::Path) -> Result<()> {
    for point in mounts_under(dir) {
        match nix::mount::umount2(&point, nix::mount::MntFlags::MNT_DETACH) {
            // Unmounted (or removed) by another remover since the mounts were listed.
            Ok(()) | Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => {}
            Err(e) => return Err(crate::error::HarnessError::Command { command: format!("umount {}", point.display()), detail: e.to_string() }),
        }
    }
    Ok(())
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
        .chain(runs::unmarked())
        .filter_map(|name| {
            let id = name.strip_prefix(NAME_PREFIX)?.split('-').next()?.to_owned();
            Some(format!("{NAME_PREFIX}{id}"))
        })
        .collect();
    clusters.sort();
    clusters.dedup();
    clusters.into_iter().map(|cluster| Leftover { namespaces: namespaces_of(&cluster).len(), owner_alive: runs::owner_alive(&cluster), cluster }).collect()
}

/// What `collect` did with one leftover cluster.
#[derive(Debug)]
pub enum Collected {
    Removed {
        namespaces: usize,
    },
    /// Its run is still going; removed only with `force`.
    KeptAlive,
    Failed(String),
}

/// Removes every leftover lab cluster whose run is gone (all of them with `force`).
pub fn collect(force: bool) -> Vec<(Leftover, Collected)> {
    runs::remove_abandoned_claims();
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A state directory that lost its marks (a late write brought it back after its
    /// removal: only `trials.lock` in it) is still seen and removed by gc.
    #[test]
    fn a_state_directory_without_its_provider_mark_is_collected() {
        let cluster = runs::new_cluster_name();
        std::fs::create_dir_all(runs::state_dir(&cluster)).unwrap();
        std::fs::write(runs::state_dir(&cluster).join("trials.lock"), "").unwrap();
        let leftover = leftovers().into_iter().find(|l| l.cluster == cluster).expect("gc sees it");
        assert!(!leftover.owner_alive);
        let collected = collect(false);
        assert!(collected.iter().any(|(l, c)| l.cluster == cluster && matches!(c, Collected::Removed { .. })), "{collected:?}");
        assert!(!runs::state_dir(&cluster).exists());
    }

    /// An interrupt's cleanup and a run's own teardown may remove one cluster at the same
    /// time: whichever finishes, the namespaces, the BPF filesystem and the state are gone.
    #[test]
    fn two_removers_racing_leave_nothing_behind() {
        for _ in 0..20 {
            let cluster = runs::new_cluster_name();
            claim_removed_on_interrupt(&cluster).unwrap();
            mount_bpffs(&runs::state_dir(&cluster).join("bpffs")).unwrap();
            let namespaces: Vec<String> = (1..=3).map(|n| format!("{cluster}-c{n}")).collect();
            let batch: String = namespaces.iter().map(|ns| format!("netns add {ns}\n")).collect();
            run("ip", &["-batch", "-"], Some(&batch)).unwrap();
            let racing: Vec<_> = (0..2)
                .map(|_| {
                    let cluster = cluster.clone();
                    std::thread::spawn(move || remove_cluster(&cluster))
                })
                .collect();
            let outcomes: Vec<_> = racing.into_iter().map(|r| r.join().unwrap()).collect();
            crate::cleanup::unregister(&cluster);
            assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
            assert_eq!(namespaces_of(&cluster).len(), 0);
            assert!(mounts_under(&runs::state_dir(&cluster)).is_empty());
            assert!(!runs::state_dir(&cluster).exists(), "the state of {cluster} remains");
        }
    }
}
