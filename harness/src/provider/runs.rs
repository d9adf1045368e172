//! Run bookkeeping shared by every provider: run-unique names, a private state directory
//! per cluster, and which process owns it, so `gc` can tell a killed run from a live one.

use std::path::PathBuf;

/// Every cluster, namespace, container and directory a run makes starts with this.
pub const NAME_PREFIX: &str = "cniconf-";

/// Where per-run state lives: `/run/cni-conformance` for root, else the user's runtime dir.
pub fn state_root() -> PathBuf {
    if super::host::effective_uid() == 0 {
        return PathBuf::from("/run/cni-conformance");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) => PathBuf::from(dir).join("cni-conformance"),
        None => std::env::temp_dir().join(format!("cni-conformance-{}", super::host::effective_uid())),
    }
}

pub fn state_dir(cluster: &str) -> PathBuf {
    state_root().join(cluster)
}

/// How a cluster's state directory is named while [`claim_for`] marks it, before it is
/// renamed: `.claiming-<cluster>-<pid>`.
const CLAIMING: &str = ".claiming-";

/// Removes what a process killed while claiming a cluster left (a `.claiming-…` directory
/// whose process is gone); the number removed. `gc` calls it.
pub fn remove_abandoned_claims() -> usize {
    let abandoned: Vec<PathBuf> = std::fs::read_dir(state_root())
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let pid: u32 = name.strip_prefix(CLAIMING)?.rsplit('-').next()?.parse().ok()?;
            let gone = process_status(pid).is_none_or(|(state, _)| matches!(state, 'Z' | 'X'));
            gone.then(|| entry.path())
        })
        .collect();
    abandoned.iter().filter(|dir| std::fs::remove_dir_all(dir).is_ok()).count()
}

/// The file in a cluster's state directory naming the process that owns it.
const OWNER_FILE: &str = "owner.pid";

fn owner_file(cluster: &str) -> PathBuf {
    state_dir(cluster).join(OWNER_FILE)
}

/// A new run-unique cluster name: `cniconf-` and a run id.
pub fn new_cluster_name() -> String {
    format!("{NAME_PREFIX}{}", new_run_id())
}

/// Six hex digits from this process and the clock: unique among concurrent runs.
pub fn new_run_id() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let id = (std::process::id() ^ nanos.rotate_left(11)) & 0xff_ffff;
    format!("{id:06x}")
}

/// Variables that name a run made of several processes: nextest's own, or ours for other
/// runners that start one process per test.
pub const RUN_ID_VARIABLES: &[&str] = &["NEXTEST_RUN_ID", "CNICONF_RUN_ID"];

/// A run made of several processes (nextest: one per test), and the runner that started them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultiProcessRun {
    pub id: String,
    /// The process whose end ends the run (nextest itself, our parent).
    pub runner: u32,
}

/// The multi-process run this process is part of, if any.
pub fn multi_process_run() -> Option<MultiProcessRun> {
    let id = RUN_ID_VARIABLES.iter().find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))?;
    Some(MultiProcessRun { id, runner: std::os::unix::process::parent_id() })
}

/// Held while a trial runs on `cluster`: shared by ordinary trials, exclusive for disruptive
/// ones, across every process of the run (a file lock in the cluster's state directory).
/// `None` where the cluster has no state directory.
pub fn trial_lock(cluster: &str, exclusive: bool) -> Option<std::fs::File> {
    let file = lock_file(cluster, "trials.lock")?;
    let locked = if exclusive { file.lock() } else { file.lock_shared() };
    locked.ok().map(|()| file)
}

/// Held while a process changes what the processes on `cluster` share (its Gateway, the
/// egress IPs handed out): a file lock in the cluster's state directory. `None` where the
/// cluster has none (then no other process of this machine shares it).
pub fn cluster_lock(cluster: &str) -> Option<std::fs::File> {
    let file = lock_file(cluster, "cluster.lock")?;
    file.lock().ok().map(|()| file)
}

/// Opens (creating) a lock file in the cluster's state directory, under the interrupt
/// guard: a file made while an interrupt's cleanup removes the directory would keep the
/// directory from going (CI saw `trials.lock` alone in a directory left behind).
fn lock_file(cluster: &str, name: &str) -> Option<std::fs::File> {
    crate::cleanup::guard_creation(|| {
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(state_dir(cluster).join(name))
            .map_err(|e| crate::error::HarnessError::Command { command: format!("open {name}"), detail: e.to_string() })
    })
    .ok()
}

/// Takes the first of `candidates` no process has taken from `pool` on `cluster`, under
/// [`cluster_lock`], and records it as this process's. What a process took stays taken
/// until it gives it back ([`give_back`]): a crashed process's objects may still use it.
/// `None` when every candidate is taken.
pub fn take_from_pool(cluster: &str, pool: &str, candidates: &[String]) -> std::io::Result<Option<String>> {
    let _locked = cluster_lock(cluster);
    let path = state_dir(cluster).join(format!("{pool}.taken"));
    let taken = std::fs::read_to_string(&path).unwrap_or_default();
    let held: std::collections::BTreeSet<&str> = taken.lines().filter_map(|line| line.split_whitespace().next()).collect();
    let Some(free) = candidates.iter().find(|c| !held.contains(c.as_str())) else { return Ok(None) };
    guarded(|| {
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
        std::io::Write::write_all(&mut file, format!("{free} {}\n", std::process::id()).as_bytes())
    })?;
    Ok(Some(free.clone()))
}

/// Gives back what this process took from `pool` on `cluster`.
pub fn give_back(cluster: &str, pool: &str) -> std::io::Result<()> {
    let _locked = cluster_lock(cluster);
    let path = state_dir(cluster).join(format!("{pool}.taken"));
    let Ok(taken) = std::fs::read_to_string(&path) else { return Ok(()) };
    let mine = std::process::id().to_string();
    let kept: String = taken.lines().filter(|line| line.split_whitespace().nth(1) != Some(mine.as_str())).map(|line| format!("{line}\n")).collect();
    guarded(|| std::fs::write(&path, kept))
}

/// A write into a cluster's state directory, refused once an interrupt's cleanup has begun.
fn guarded<T>(write: impl FnOnce() -> std::io::Result<T>) -> std::io::Result<T> {
    let mut failed = None;
    let done = crate::cleanup::guard_creation(|| {
        write().map_err(|e| {
            let detail = e.to_string();
            failed = Some(e);
            crate::error::HarnessError::Command { command: "write".into(), detail }
        })
    });
    done.map_err(|e| failed.unwrap_or_else(|| std::io::Error::other(e.to_string())))
}

/// Held while one process of a multi-process run creates or joins a shared cluster.
pub fn creation_lock(cluster: &str) -> std::io::Result<std::fs::File> {
    std::fs::create_dir_all(state_root())?;
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(state_root().join(format!("{cluster}.lock")))?;
    file.lock()?;
    Ok(file)
}

/// Creates the cluster's state directory (private to this user) and records this process
/// as its owner and which provider made it.
pub fn claim(cluster: &str, provider: &str) -> std::io::Result<PathBuf> {
    claim_for(cluster, provider, std::process::id())
}

/// As [`claim`], with `owner` (a run's runner) as the process whose end frees the cluster.
pub fn claim_for(cluster: &str, provider: &str, owner: u32) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let dir = state_dir(cluster);
    // The owner's start time beside its pid: a pid the kernel gave another program since is
    // not the owner.
    let started = process_status(owner).map(|(_, started)| format!(" {started}")).unwrap_or_default();
    let mark = |at: &std::path::Path| -> std::io::Result<()> {
        std::fs::set_permissions(at, std::fs::Permissions::from_mode(0o700))?;
        std::fs::write(at.join("provider"), provider)?;
        std::fs::write(at.join(OWNER_FILE), format!("{owner}{started}"))
    };
    if dir.is_dir() {
        // A kept cluster claimed again by a later run.
        mark(&dir)?;
        return Ok(dir);
    }
    // Made under another name and renamed once marked: a `gc` running beside this process
    // removes a cluster directory without a provider mark ([`unmarked`]), and must never
    // see this one before its mark is in it.
    std::fs::create_dir_all(state_root())?;
    let making = state_root().join(format!("{CLAIMING}{cluster}-{}", std::process::id()));
    std::fs::create_dir_all(&making)?;
    mark(&making)?;
    match std::fs::rename(&making, &dir) {
        Ok(()) => Ok(dir),
        // Another process of the run claimed it first: its mark is there; ours goes.
        Err(_) if dir.is_dir() => {
            let _ = std::fs::remove_dir_all(&making);
            mark(&dir).map(|()| dir)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&making);
            Err(e)
        }
    }
}

/// Whether the process that claimed `cluster` is still running: its pid exists, is not a
/// zombie (dead, waiting for a parent to reap it, which in a container whose PID 1 does not
/// reap is for ever), and started when the owner did (not a reused pid).
pub fn owner_alive(cluster: &str) -> bool {
    let Ok(owner) = std::fs::read_to_string(owner_file(cluster)) else { return false };
    let mut words = owner.split_whitespace();
    let Some(pid) = words.next().and_then(|pid| pid.parse::<u32>().ok()) else { return false };
    let recorded_start = words.next().and_then(|started| started.parse::<u64>().ok());
    match process_status(pid) {
        Some((state, started)) => !matches!(state, 'Z' | 'X') && recorded_start.is_none_or(|recorded| recorded == started),
        None => false,
    }
}

/// A process's state letter and start time (clock ticks after boot), from `/proc/<pid>/stat`
/// (proc(5): fields 3 and 22; the command name, field 2, may hold spaces and parentheses,
/// so the fields are counted after its last `)`).
fn process_status(pid: u32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some((fields.first()?.chars().next()?, fields.get(19)?.parse().ok()?))
}

/// Names of clusters with a state directory made by `provider`.
pub fn claimed(provider: &str) -> Vec<String> {
    std::fs::read_dir(state_root())
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|name| name.starts_with(NAME_PREFIX))
                .filter(|name| std::fs::read_to_string(state_dir(name).join("provider")).is_ok_and(|p| p == provider))
                .collect()
        })
        .unwrap_or_default()
}

/// Names of clusters whose state directory has no provider mark: what a removal left
/// half-done (a late write brought the directory back). No provider's run can still use it.
pub fn unmarked() -> Vec<String> {
    std::fs::read_dir(state_root())
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|name| name.starts_with(NAME_PREFIX) && state_dir(name).is_dir() && !state_dir(name).join("provider").exists())
                .collect()
        })
        .unwrap_or_default()
}

pub fn release(cluster: &str) {
    // A file made in it while it was being removed (by a process the guard does not reach)
    // fails the last rmdir: a second pass removes that too.
    for _ in 0..3 {
        if std::fs::remove_dir_all(state_dir(cluster)).is_ok() || !state_dir(cluster).exists() {
            break;
        }
    }
    let _ = std::fs::remove_file(state_root().join(format!("{cluster}.lock")));
}

#[cfg(test)]
mod tests {
    /// A claim a killed process left half-made goes with gc; one whose process lives stays.
    #[test]
    fn an_abandoned_claim_goes_and_a_live_one_stays() {
        std::fs::create_dir_all(super::state_root()).unwrap();
        // A pid above the kernel's maximum (4194304) is never a live process.
        let dead = super::state_root().join(format!("{}cniconf-test{}-4999999", super::CLAIMING, std::process::id()));
        let live = super::state_root().join(format!("{}cniconf-test{}-{}", super::CLAIMING, std::process::id(), std::process::id()));
        for dir in [&dead, &live] {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(dir.join("provider"), "lab").unwrap();
        }
        super::remove_abandoned_claims();
        let (dead_left, live_left) = (dead.exists(), live.exists());
        let _ = std::fs::remove_dir_all(&live);
        assert!(!dead_left && live_left, "dead claim removed: {}, live claim kept: {live_left}", !dead_left);
    }

    #[test]
    fn a_zombie_owner_or_a_reused_pid_is_no_live_owner() {
        let cluster = super::new_cluster_name();
        super::claim(&cluster, "test").unwrap();
        assert!(super::owner_alive(&cluster), "this process owns it");
        // A child that exited and that nobody reaps yet: a zombie.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while super::process_status(child.id()).map(|(state, _)| state) != Some('Z') && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        super::claim_for(&cluster, "test", child.id()).unwrap();
        assert!(!super::owner_alive(&cluster), "a zombie is dead");
        child.wait().unwrap();
        // This process's pid, recorded with another start time: the pid was reused.
        std::fs::write(super::owner_file(&cluster), format!("{} 1", std::process::id())).unwrap();
        assert!(!super::owner_alive(&cluster), "another program with the owner's pid");
        // An owner file of an earlier version (the pid alone) is read as before.
        std::fs::write(super::owner_file(&cluster), std::process::id().to_string()).unwrap();
        assert!(super::owner_alive(&cluster));
        super::release(&cluster);
    }
}
