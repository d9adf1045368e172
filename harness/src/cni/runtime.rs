//! Runs CNI plugin binaries exactly as a container runtime does (CNI spec 1.0.0).
//!
//! ADD runs a conflist's plugins in order, each given the previous one's result as
//! `prevResult` and only the `runtimeConfig` keys its `capabilities` ask for; the final
//! result is cached so that CHECK and DEL get what ADD returned. DEL runs in reverse order.
//! Every plugin call is bounded by [`PLUGIN_BUDGET`], in a process group of its own that is
//! killed when the budget runs out, when the run is interrupted, or by `cargo xtask gc`.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{HarnessError, Result};

/// Where Debian's `containernetworking-plugins` installs the reference plugins.
pub const DEBIAN_PLUGIN_DIR: &str = "/usr/lib/cni";

/// A network configuration list (`.conflist`).
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkConfigList {
    pub cni_version: String,
    pub name: String,
    pub plugins: Vec<Map<String, Value>>,
}

impl NetworkConfigList {
    /// Parses a conflist; `origin` names where it came from in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Self> {
        let malformed = |detail: String| HarnessError::FixtureMalformed { path: origin.to_owned(), detail };
        let value: Value = serde_json::from_str(text).map_err(|e| malformed(format!("not valid JSON: {e}")))?;
        let field = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_owned);
        let cni_version = field("cniVersion").ok_or_else(|| malformed("cniVersion: expected a string such as \"1.0.0\"".into()))?;
        let name = field("name").ok_or_else(|| malformed("name: expected the network's name".into()))?;
        let plugins = value.get("plugins").and_then(Value::as_array).ok_or_else(|| malformed("plugins: expected a list of plugin configurations".into()))?;
        let plugins = plugins
            .iter()
            .enumerate()
            .map(|(i, plugin)| {
                let plugin = plugin.as_object().ok_or_else(|| malformed(format!("plugins[{i}]: expected an object")))?;
                if plugin.get("type").and_then(Value::as_str).is_none() {
                    return Err(malformed(format!("plugins[{i}].type: expected the plugin's binary name")));
                }
                Ok(plugin.clone())
            })
            .collect::<Result<Vec<_>>>()?;
        if plugins.is_empty() {
            return Err(malformed("plugins: expected at least one plugin".into()));
        }
        Ok(Self { cni_version, name, plugins })
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| HarnessError::FixtureUnreadable { path: path.to_owned(), source })?;
        Self::parse(&text, path)
    }

    /// The first plugin of the given type, for filling in run-specific values.
    pub fn plugin_mut(&mut self, plugin_type: &str) -> Option<&mut Map<String, Value>> {
        self.plugins.iter_mut().find(|p| p.get("type").and_then(Value::as_str) == Some(plugin_type))
    }

    pub fn plugin_types(&self) -> impl Iterator<Item = &str> {
        self.plugins.iter().map(|p| p["type"].as_str().expect("checked in parse"))
    }
}

/// What a conflist may name per node, as a DaemonSet's installer renders it on each node:
/// `{nodeName}`, `{nodeAddress}`, `{nodePodCIDR}` (this node's pod range) and `{podSubnet}`
/// (the cluster's, as the kind provider fills it into manifests), anywhere in a string.
pub struct NodePlaceholders {
    pub node_name: String,
    pub node_address: std::net::Ipv4Addr,
    pub node_pod_cidr: ipnet::Ipv4Net,
    pub pod_subnet: ipnet::Ipv4Net,
}

impl NodePlaceholders {
    /// Fills every placeholder in every plugin of `list`.
    pub fn fill_in(&self, list: &mut NetworkConfigList) {
        for plugin in &mut list.plugins {
            plugin.values_mut().for_each(|value| self.fill(value));
        }
    }

    fn fill(&self, value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(text) if text.contains('{') => {
                *text = text
                    .replace("{nodeName}", &self.node_name)
                    .replace("{nodeAddress}", &self.node_address.to_string())
                    .replace("{nodePodCIDR}", &self.node_pod_cidr.to_string())
                    .replace("{podSubnet}", &self.pod_subnet.to_string());
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| self.fill(v)),
            serde_json::Value::Object(fields) => fields.values_mut().for_each(|v| self.fill(v)),
            _ => {}
        }
    }
}

/// One attachment of a network to a container, as a runtime describes it to plugins.
#[derive(Debug, Clone)]
pub struct Attachment {
    pub container_id: String,
    pub netns: PathBuf,
    pub ifname: String,
    /// `CNI_ARGS` pairs, e.g. `K8S_POD_NAMESPACE`.
    pub args: Vec<(String, String)>,
    /// Values offered to plugins through `runtimeConfig`, each given only to plugins whose
    /// `capabilities` ask for it (e.g. `portMappings`, `bandwidth`, `mac`).
    pub capability_args: Map<String, Value>,
}

impl Attachment {
    /// The `CNI_*` variables a runtime sets for `command` on this attachment.
    pub fn environment(&self, command: &str) -> Vec<(&'static str, String)> {
        vec![
            ("CNI_COMMAND", command.to_owned()),
            ("CNI_CONTAINERID", self.container_id.clone()),
            ("CNI_NETNS", self.netns.display().to_string()),
            ("CNI_IFNAME", self.ifname.clone()),
            ("CNI_ARGS", self.args.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(";")),
        ]
    }
}

/// What one plugin run printed and how it exited.
#[derive(Debug, Clone)]
pub struct PluginOutput {
    pub success: bool,
    /// The exit status in words ("exit status: 1").
    pub status: String,
    pub stdout: String,
    pub stderr: String,
    /// Set when the plugin did not exit within its budget and its process group was killed.
    pub hung_after: Option<Duration>,
}

impl PluginOutput {
    /// Why `command` failed, in the plugin's own words: the error structure it printed (or
    /// that it printed none, which the specification asks for), its exit status and stderr;
    /// or that it hung and was killed.
    pub fn failure(&self, command: &str) -> String {
        let stderr = match self.stderr.trim() {
            "" => "nothing on stderr".to_owned(),
            text => format!("stderr {text:?}"),
        };
        if let Some(budget) = self.hung_after {
            return format!(
                "hung in {command} after {} s: its process group was killed; it had printed {:?} on stdout and {stderr}",
                budget.as_secs(),
                self.stdout.trim()
            );
        }
        match serde_json::from_str::<PluginError>(&self.stdout) {
            Ok(PluginError { code: Some(code), msg, details }) => {
                format!("{}: error code {code}: {}{}; {stderr}", self.status, msg.unwrap_or_default(), details.map(|d| format!(" ({d})")).unwrap_or_default())
            }
            _ if self.stdout.trim().is_empty() => {
                format!("{}, with nothing on stdout (a CNI error is the JSON error structure on stdout: SPEC section 2, Errors); {stderr}", self.status)
            }
            _ => format!("{}; stdout {:?} is not the JSON error structure (SPEC section 2, Errors); {stderr}", self.status, self.stdout.trim()),
        }
    }
}

/// How long one plugin call may take before it is taken as hung: its process group is
/// killed and the call fails with "hung in ADD after N s". kubelet gives a whole pod
/// sandbox start its runtime request timeout (2 minutes by default), CNI included; one
/// plugin call gets a quarter of that. `CNICONF_PLUGIN_BUDGET_SECONDS` sets another.
pub const PLUGIN_BUDGET: Duration = Duration::from_secs(30);

/// [`PLUGIN_BUDGET`], or `CNICONF_PLUGIN_BUDGET_SECONDS` where set to a number of seconds.
pub fn plugin_budget() -> Duration {
    std::env::var("CNICONF_PLUGIN_BUDGET_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s > 0.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(PLUGIN_BUDGET)
}

/// The `PATH` every plugin runs with: a container runtime's, not the harness user's shell's
/// (where a version manager's shims may come first, each start of a script's interpreter
/// then costing a tenth of a second). libcni passes the runtime's own environment to the
/// plugin (containernetworking/cni `pkg/invoke/args.go`, `Args.AsEnv`: `os.Environ()` plus
/// the `CNI_*` variables, read at commit 5bab2c0), and containerd runs as a systemd
/// service, whose default `PATH` this is. A plugin that needs a tool elsewhere finds it on
/// no real node either.
pub const RUNTIME_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// [`RUNTIME_PATH`], or `CNICONF_RUNTIME_PATH` where set.
pub fn runtime_path() -> String {
    std::env::var("CNICONF_RUNTIME_PATH").ok().filter(|path| !path.is_empty()).unwrap_or_else(|| RUNTIME_PATH.to_owned())
}

/// Who a call is for, as a person reads it: the pod (from `CNI_ARGS`) and container, or
/// the container alone, or that the command has none (VERSION, STATUS, GC).
fn attachment_of(environment: &[(&str, String)]) -> String {
    let value = |key: &str| environment.iter().find(|(k, _)| *k == key).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty());
    let arg = |key: &str| value("CNI_ARGS").and_then(|args| args.split(';').find_map(|pair| pair.strip_prefix(key).and_then(|rest| rest.strip_prefix('='))));
    match (arg("K8S_POD_NAMESPACE"), arg("K8S_POD_NAME"), value("CNI_CONTAINERID")) {
        (Some(namespace), Some(name), Some(container)) => format!("pod {namespace}/{name} (container {container})"),
        (_, _, Some(container)) => format!("container {container}"),
        _ => "no attachment".to_owned(),
    }
}

/// A running plugin's process group, recorded under the runtime's state so that an
/// interrupt's cleanup and `cargo xtask gc` of a killed run can end it (and whatever it
/// started) by group; forgotten once the plugin has been reaped.
struct RunningPlugin {
    record: Option<PathBuf>,
    key: String,
}

/// Where a runtime with state records its running plugins.
const RUNNING_PLUGINS: &str = "plugin-processes";

impl RunningPlugin {
    /// Registers and records the group; if the run is being interrupted (its cleanup has
    /// looked, or is looking), nothing may be created any more: the plugin is killed at once.
    fn start(pgid: i32, state: Option<&Path>, what: &str) -> Self {
        let key = format!("CNI plugin process group {pgid} ({what})");
        crate::cleanup::register(&key, move || kill_group(pgid));
        let record = state.map(|dir| dir.join(RUNNING_PLUGINS).join(pgid.to_string()));
        let recorded = crate::cleanup::guard_creation(|| {
            if let Some(path) = &record {
                let started = process_start_time(pgid).unwrap_or_default();
                let _ = std::fs::create_dir_all(path.parent().expect("a record has a directory"))
                    .and_then(|()| std::fs::write(path, format!("{started} {what}\n")));
            }
            Ok(())
        });
        if recorded.is_err() {
            kill_group(pgid);
        }
        Self { record: record.filter(|_| recorded.is_ok()), key }
    }
}

impl Drop for RunningPlugin {
    fn drop(&mut self) {
        crate::cleanup::unregister(&self.key);
        if let Some(record) = &self.record {
            let _ = std::fs::remove_file(record);
        }
    }
}

fn kill_group(pgid: i32) {
    // SAFETY: kill(2) with a negative pid signals that process group; no memory involved.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
}

/// A process's start time in clock ticks since boot (field 22 of `/proc/<pid>/stat`): with
/// the pid, it names one process, not a later one that reused the number.
fn process_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.split_whitespace().nth(19)?.parse().ok()
}

/// Kills the process groups of plugins a killed run left running under `state` (a run's
/// state directory, searched at any depth), each only if its leader is still the process
/// recorded; returns how many it killed.
pub fn kill_recorded_plugins(state: &Path) -> usize {
    let mut killed = 0;
    let mut directories = vec![state.to_owned()];
    while let Some(directory) = directories.pop() {
        for entry in std::fs::read_dir(&directory).into_iter().flatten().flatten() {
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            if path.file_name().and_then(|n| n.to_str()) != Some(RUNNING_PLUGINS) {
                directories.push(path);
                continue;
            }
            for record in std::fs::read_dir(&path).into_iter().flatten().flatten() {
                let (Some(pgid), Ok(text)) = (record.file_name().to_str().and_then(|n| n.parse::<i32>().ok()), std::fs::read_to_string(record.path())) else {
                    continue;
                };
                let recorded = text.split_whitespace().next().and_then(|t| t.parse::<u64>().ok());
                if recorded.is_some() && recorded == process_start_time(pgid) {
                    kill_group(pgid);
                    killed += 1;
                }
                let _ = std::fs::remove_file(record.path());
            }
        }
    }
    killed
}

/// An IP assignment from a CNI result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    pub address: ipnet::IpNet,
    pub gateway: Option<IpAddr>,
    pub interface: Option<usize>,
}

/// The parts of a CNI result the harness uses, plus the raw result to pass on.
#[derive(Debug, Clone)]
pub struct CniResult {
    pub raw: Value,
    pub ips: Vec<IpConfig>,
    /// How long the whole ADD chain took: the pod network start-up time.
    pub elapsed: Duration,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CachedResult {
    kind: String,
    container_id: String,
    if_name: String,
    network_name: String,
    result: Value,
}

#[derive(Deserialize)]
struct PluginError {
    code: Option<u32>,
    msg: Option<String>,
    details: Option<String>,
}

/// Executes plugin binaries for one node.
#[derive(Debug, Clone)]
pub struct CniRuntime {
    /// `CNI_PATH`: where plugin binaries are looked up.
    pub plugin_dirs: Vec<PathBuf>,
    /// Where ADD results are cached for CHECK and DEL.
    pub cache_dir: PathBuf,
    /// The node the runtime lives on, when it is a lab node: plugins run in its view.
    pub node: Option<NodeView>,
    /// What its plugin processes have used and every call it made, shared by its clones.
    pub records: std::sync::Arc<RuntimeRecords>,
    /// How long one plugin call may take; `None`: [`plugin_budget`].
    pub budget: Option<Duration>,
}

/// What a runtime's plugin calls used, and the calls themselves (the latest
/// [`JOURNAL_LENGTH`]), for a failed trial's diagnostics bundle.
#[derive(Debug, Default)]
pub struct RuntimeRecords {
    usage: std::sync::Mutex<crate::model::ResourceUsage>,
    journal: std::sync::Mutex<std::collections::VecDeque<Invocation>>,
}

impl RuntimeRecords {
    /// Every call kept, oldest first.
    pub fn journal(&self) -> Vec<Invocation> {
        self.journal.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect()
    }
}

/// How many plugin calls a runtime keeps: a trial makes tens, a suite hundreds.
pub const JOURNAL_LENGTH: usize = 2000;

/// One plugin call as a runtime made it: what went in and what came out.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub at: std::time::SystemTime,
    pub took: Duration,
    pub plugin: PathBuf,
    /// The `CNI_*` variables (and `CNI_PATH`) it was given.
    pub environment: Vec<(String, String)>,
    pub stdin: String,
    pub output: PluginOutput,
}

impl Invocation {
    /// The call as a reader of a bundle wants it: command, plugin, environment, stdin,
    /// exit status, stdout, stderr.
    pub fn describe(&self) -> String {
        let at = jiff::Timestamp::try_from(self.at).map(|t| format!("{t:.3}")).unwrap_or_default();
        let command = self.environment.iter().find(|(k, _)| k == "CNI_COMMAND").map_or("?", |(_, v)| v.as_str());
        let environment: String = self.environment.iter().map(|(k, v)| format!("  {k}={v}\n")).collect();
        let hung = self.output.hung_after.map(|b| format!(" (hung: killed after {} s)", b.as_secs())).unwrap_or_default();
        format!(
            "=== {at} {command} {} took {} ms: {}{hung}\nenvironment:\n{environment}stdin:\n  {}\nstdout:\n  {}\nstderr:\n  {}\n",
            self.plugin.display(),
            self.took.as_millis(),
            self.output.status,
            self.stdin.trim(),
            self.output.stdout.trim().replace('\n', "\n  "),
            self.output.stderr.trim().replace('\n', "\n  ")
        )
    }
}

/// Reaps `child` (whose output has been read) with its resource usage, as `wait4` gives it:
/// the child's and that of the children it waited for.
fn wait_accounted(child: &std::process::Child) -> std::io::Result<(std::process::ExitStatus, crate::model::ResourceUsage)> {
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value; wait4 writes both out-parameters.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: pointers to live values; the pid is our own unreaped child.
        let reaped = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
        if reaped != -1 {
            break;
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
    let time = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    let accounted =
        crate::model::ResourceUsage { cpu: time(usage.ru_utime) + time(usage.ru_stime), peak_memory_bytes: usage.ru_maxrss as u64 * 1024, processes: 1 };
    Ok((std::os::unix::process::ExitStatusExt::from_raw(status), accounted))
}

/// What a plugin on a lab node sees as its host: the node's network namespace, `/sys` for
/// it, and the node's own BPF filesystem at `/sys/fs/bpf` (as a kind node has), in a
/// private mount namespace of the plugin's process.
#[derive(Debug, Clone)]
pub struct NodeView {
    /// A name under /run/netns.
    pub netns: String,
    /// A bpffs mounted for this node alone.
    pub bpffs: PathBuf,
    /// The node's state directory, holding a directory of its own for each of
    /// [`NODE_DIRECTORIES`], which its plugins see at that path (IPAM reservations under
    /// `/var/lib/cni`, tuning's backups under `/run/cni`, whatever a plugin writes to `/tmp`
    /// or `/var/log`); `None` leaves the host's.
    pub own_directories: Option<PathBuf>,
    /// A directory seen as `/run/netns` (so `/var/run/netns`): the node's pod namespaces
    /// alone, each under the name a runtime gives it ([`NodeView::expose_netns`]); `None`
    /// leaves the host's.
    pub netns_dir: Option<PathBuf>,
    /// The plugins' log files on the node (profile field `diagnostics.logs`): an ADD that
    /// fails names their last lines, and every bundle of a trial holds them.
    pub logs: Vec<PathBuf>,
    /// Host directories under one of [`NODE_DIRECTORIES`] its plugins still see where they
    /// are, beside the plugin directories: the profile's own (the vendor's package, files
    /// beside the conflist).
    pub kept_from_the_host: Vec<PathBuf>,
    /// What a DaemonSet would install on the node (profile field `install.lab.nodeFiles`),
    /// copied into its own directories by [`prepare`](Self::prepare).
    pub files: Vec<crate::cni::NodeFile>,
}

impl NodeView {
    /// Makes `command` start in the node's view: in the forked child, before it execs,
    /// the node's network namespace, a private mount namespace (propagation slave), `/sys`
    /// for that network namespace, the node's bpffs at `/sys/fs/bpf`, its pod namespaces at
    /// `/run/netns` and its own directories ([`mounts`](Self::mounts)). System calls only,
    /// no program of their own: the mounts used to be a `sh` running `mount` once per
    /// directory, tens of milliseconds per plugin call. `command` is GNU time, which then
    /// starts the plugin in that view and charges it its own peak memory ([`GNU_TIME`]).
    fn enter(&self, command: &mut Command, plugin_dirs: &[PathBuf]) -> Result<Option<tempfile::TempDir>> {
        use std::os::unix::ffi::OsStrExt;
        let netns = crate::host::open_netns(&self.netns)?;
        if let Some(dir) = &self.netns_dir {
            // Under the interrupt guard: the directory is in the cluster's state, which an
            // interrupt's cleanup may just have removed (CI saw it come back).
            crate::cleanup::guard_creation(|| {
                std::fs::create_dir_all(dir).map_err(|e| HarnessError::Command { command: format!("mkdir {}", dir.display()), detail: e.to_string() })
            })?;
        }
        let c_path = |path: &Path| {
            std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| HarnessError::Command {
                command: format!("enter node {}'s view", self.netns),
                detail: format!("{} holds a NUL byte", path.display()),
            })
        };
        // Made here, before the fork: the child only calls the kernel.
        let mut mounts = vec![ViewMount::bind(c_path(&self.bpffs)?, c"/sys/fs/bpf".to_owned(), 0)];
        if let Some(dir) = &self.netns_dir {
            mounts.push(ViewMount::bind(c_path(dir)?, c"/run/netns".to_owned(), libc::MS_REC));
        }
        // The overlays first: the node's own directories and the kept ones are bound into
        // them (`/var/lib/cni` into `/var`). Each call has work directories of its own (an
        // overlay's mount empties its work directory: calls running at once must not share
        // one); the upper layer is the node's, so a DEL sees what its ADD wrote.
        let work = match (&self.own_directories, self.overlays(plugin_dirs)) {
            (Some(state), overlays) => {
                let calls = state.join(OVERLAY).join("calls");
                let work = crate::cleanup::guard_creation(|| {
                    std::fs::create_dir_all(&calls)
                        .and_then(|()| tempfile::TempDir::new_in(&calls))
                        .map_err(|e| HarnessError::Command { command: format!("make a work directory in {}", calls.display()), detail: e.to_string() })
                })?;
                for (name, seen_as) in overlays {
                    let (upper, work) = (state.join(OVERLAY).join(name), work.path().join(name));
                    std::fs::create_dir_all(&work)
                        .map_err(|e| HarnessError::Command { command: format!("mkdir {}", work.display()), detail: e.to_string() })?;
                    let options = format!("lowerdir={seen_as},upperdir={},workdir={}", upper.display(), work.display());
                    mounts.push(ViewMount {
                        source: c"overlay".to_owned(),
                        target: c_path(Path::new(seen_as))?,
                        fstype: Some(c"overlay".to_owned()),
                        flags: 0,
                        data: Some(c_path(Path::new(&options))?),
                    });
                }
                Some(work)
            }
            _ => None,
        };
        // A runtime may be given plugin directories after the node was prepared (a check
        // that adds a delegate's): their mount points are made now.
        let own = self.mounts(plugin_dirs);
        self.make_mount_points(&own)?;
        for pair in own.chunks(2) {
            mounts.push(ViewMount::bind(c_path(&pair[0])?, c_path(&pair[1])?, libc::MS_REC));
        }
        // Last, over the node's `/opt`: its one plugin directory.
        if let (Some(state), Some(work)) = (&self.own_directories, &work) {
            mounts.push(self.cni_bin(state, plugin_dirs, work.path(), &c_path)?);
        }
        // SAFETY: the closure runs in the child between fork and exec; it only makes system
        // calls on values made before the fork (no allocation, no lock).
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(command, move || enter_node_view(&netns, &mounts));
        }
        Ok(work)
    }

    /// The node's one plugin directory, [`CNI_BIN`], as a vendor's installer fills it on a
    /// real node: an overlay of what was installed there as node files (on top, as the
    /// DaemonSet's copy wins), then each of `plugin_dirs` in `CNI_PATH`'s order (the first
    /// of a name wins, as a lookup along `CNI_PATH` finds it). A plugin that runs
    /// `$CNI_PATH/host-local`, or a helper beside itself, finds it there. What a plugin
    /// writes there lands in the node's upper layer ([`CNI_BIN_UPPER`]), in its snapshot.
    fn cni_bin(&self, state: &Path, plugin_dirs: &[PathBuf], work: &Path, c_path: &dyn Fn(&Path) -> Result<std::ffi::CString>) -> Result<ViewMount> {
        let installed = state.join("opt/cni/bin");
        let mut lowers = vec![installed.clone()];
        // A plugin directory that is `/opt/cni/bin` itself is the installed one in the view.
        lowers.extend(plugin_dirs.iter().filter(|d| d.as_path() != Path::new(CNI_BIN) && **d != installed).cloned());
        lowers.dedup();
        if let Some(odd) = lowers.iter().find(|d| d.to_string_lossy().contains([':', ',', '\\'])) {
            return Err(HarnessError::Command {
                command: format!("make node {}'s {CNI_BIN}", self.netns),
                detail: format!("plugin directory {} holds ':', ',' or '\\', which an overlay's lowerdir cannot name; move it", odd.display()),
            });
        }
        let (upper, work) = (state.join(OVERLAY).join(CNI_BIN_UPPER), work.join(CNI_BIN_UPPER));
        for dir in [&upper, &work] {
            std::fs::create_dir_all(dir).map_err(|e| HarnessError::Command { command: format!("mkdir {}", dir.display()), detail: e.to_string() })?;
        }
        let lowerdir = lowers.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(":");
        let options = format!("lowerdir={lowerdir},upperdir={},workdir={}", upper.display(), work.display());
        Ok(ViewMount {
            source: c"overlay".to_owned(),
            target: c_path(Path::new(CNI_BIN))?,
            fstype: Some(c"overlay".to_owned()),
            flags: 0,
            data: Some(c_path(Path::new(&options))?),
        })
    }

    /// Which of [`WRITTEN_APART`] the node's plugins see through an overlay: each that is a
    /// directory on the host and holds nothing the view mounts from the host (a plugin
    /// directory, a kept one, this checkout, the node's state): a bind from under an overlay
    /// would be a bind of the overlay, and a plugin's writes there would not reach the host
    /// as they must (a stand-in's records). Those stay the host's.
    fn overlays(&self, plugin_dirs: &[PathBuf]) -> Vec<(&'static str, &'static str)> {
        let checkout = crate::workspace_root().to_owned();
        let from_the_host: Vec<&PathBuf> =
            plugin_dirs.iter().chain(&self.kept_from_the_host).chain([&checkout, &self.bpffs]).chain(&self.own_directories).chain(&self.netns_dir).collect();
        WRITTEN_APART.into_iter().filter(|(_, seen_as)| Path::new(seen_as).is_dir() && !from_the_host.iter().any(|d| d.starts_with(seen_as))).collect()
    }

    /// Takes what `profile` installs on a node: its plugins' logs, its own directory (kept
    /// in view), its node files; then [`prepare`](Self::prepare)s the node for
    /// `plugin_dirs`. What the lab does when it installs a CNI on a node or replaces it.
    pub fn install(&mut self, profile: &crate::cni::CniProfile, plugin_dirs: &[PathBuf]) -> Result<()> {
        self.logs = profile.plugin_logs.clone();
        self.kept_from_the_host = profile.source.parent().map(Path::to_owned).into_iter().collect();
        self.files = match &profile.installation {
            crate::cni::Installation::Lab { node_files, .. } => node_files.clone(),
            _ => Vec::new(),
        };
        self.prepare(plugin_dirs)
    }

    /// Makes the node ready for its plugins: its directories of its own, a mount point in
    /// them for every plugin directory (and [`kept_from_the_host`](Self::kept_from_the_host),
    /// and this checkout) under one of them on the host, and its [`files`](Self::files)
    /// copied in. Called where a node is made or its CNI replaced (an install's doing),
    /// before its state is first read, so the mount points and files are part of every
    /// snapshot and never a plugin's leftover (a plugin call makes only the mount points of
    /// plugin directories given to its runtime later).
    pub fn prepare(&self, plugin_dirs: &[PathBuf]) -> Result<()> {
        let Some(state) = &self.own_directories else { return Ok(()) };
        let mkdir =
            |dir: &Path| std::fs::create_dir_all(dir).map_err(|e| HarnessError::Command { command: format!("mkdir {}", dir.display()), detail: e.to_string() });
        for (name, seen_as) in NODE_DIRECTORIES {
            // The mount point on the host (empty), the node's own under the interrupt guard:
            // it is in the cluster's state, which an interrupt's cleanup may just have removed.
            mkdir(Path::new(seen_as))?;
            crate::cleanup::guard_creation(|| mkdir(&state.join(name)))?;
        }
        for name in WRITTEN_APART.map(|(name, _)| name).into_iter().chain([CNI_BIN_UPPER]) {
            crate::cleanup::guard_creation(|| mkdir(&state.join(OVERLAY).join(name)))?;
        }
        crate::cleanup::guard_creation(|| mkdir(&self.on_host(Path::new(CNI_BIN))))?;
        self.make_mount_points(&self.mounts(plugin_dirs))?;
        for file in &self.files {
            let to = self.on_host(&file.to);
            crate::cleanup::guard_creation(|| copy_into_node(&file.from, &to))?;
        }
        Ok(())
    }

    /// Makes each mount point of `mounts` inside the node's own directories that is not
    /// there (under the interrupt guard: they are in the cluster's state). Empty
    /// directories, so never part of a snapshot.
    fn make_mount_points(&self, mounts: &[PathBuf]) -> Result<()> {
        let Some(state) = &self.own_directories else { return Ok(()) };
        for at in mounts.chunks(2).map(|pair| &pair[1]).filter(|at| at.starts_with(state) && !at.is_dir()) {
            crate::cleanup::guard_creation(|| {
                std::fs::create_dir_all(at).map_err(|e| HarnessError::Command { command: format!("mkdir {}", at.display()), detail: e.to_string() })
            })?;
        }
        Ok(())
    }

    /// The mounts of the node's view, in order, as pairs of what is mounted and where: each
    /// kept host directory (not one inside another kept one: it comes with it) at its own
    /// path inside the node's directory it falls in, then each of the node's directories
    /// over the host's.
    fn mounts(&self, plugin_dirs: &[PathBuf]) -> Vec<PathBuf> {
        let Some(state) = &self.own_directories else { return Vec::new() };
        // This checkout too (its fixtures, its builds): a stand-in in a temporary plugin
        // directory may be a link into it.
        let checkout = crate::workspace_root().to_owned();
        let all: Vec<&PathBuf> = plugin_dirs.iter().chain(&self.kept_from_the_host).chain(std::iter::once(&checkout)).collect();
        let kept: std::collections::BTreeSet<&PathBuf> = all.iter().copied().filter(|d| !all.iter().any(|outer| outer != d && d.starts_with(outer))).collect();
        let mut mounts = Vec::new();
        for (name, seen_as) in NODE_DIRECTORIES {
            let dir = state.join(name);
            for (host_dir, rel) in kept.iter().filter_map(|d| d.strip_prefix(seen_as).ok().filter(|rel| !rel.as_os_str().is_empty()).map(|rel| (*d, rel))) {
                mounts.extend([host_dir.clone(), dir.join(rel)]);
            }
            mounts.extend([dir, PathBuf::from(seen_as)]);
        }
        mounts
    }

    /// Where `path`, as the node's plugins see it, is on this host: in the node's own
    /// directory when it is under one of [`NODE_DIRECTORIES`].
    pub fn on_host(&self, path: &Path) -> PathBuf {
        let own = self
            .own_directories
            .as_ref()
            .and_then(|state| NODE_DIRECTORIES.iter().find_map(|(name, seen_as)| path.strip_prefix(seen_as).ok().map(|rest| state.join(name).join(rest))));
        own.unwrap_or_else(|| path.to_owned())
    }

    /// The last `lines` lines of each of the plugins' logs that exists on the node.
    pub fn log_tails(&self, lines: usize) -> Vec<(PathBuf, String)> {
        self.logs
            .iter()
            .filter_map(|log| {
                let text = std::fs::read_to_string(self.on_host(log)).ok()?;
                let all: Vec<&str> = text.lines().collect();
                Some((log.clone(), all[all.len().saturating_sub(lines)..].join("\n")))
            })
            .collect()
    }

    /// Makes the pod namespace `netns` (a name under /run/netns) visible to this node's
    /// plugins as containerd and CRI-O name it, and returns that name for `CNI_NETNS`:
    /// `/var/run/netns/cni-<uuid>`, a bind mount in the node's [`netns_dir`](Self::netns_dir).
    /// Without a directory of its own, the namespace's own path.
    pub fn expose_netns(&self, netns: &str) -> Result<PathBuf> {
        let Some(dir) = &self.netns_dir else { return Ok(Path::new("/run/netns").join(netns)) };
        // A random (version 4) UUID from the kernel, as containerd's are.
        let uuid = std::fs::read_to_string("/proc/sys/kernel/random/uuid")
            .map_err(|e| HarnessError::Command { command: "read /proc/sys/kernel/random/uuid".into(), detail: e.to_string() })?;
        let name = format!("cni-{}", uuid.trim());
        let failed = |detail: String| HarnessError::Command { command: format!("mount --bind /run/netns/{netns} {}/{name}", dir.display()), detail };
        std::fs::create_dir_all(dir).map_err(|e| failed(e.to_string()))?;
        let target = dir.join(&name);
        std::fs::File::create(&target).map_err(|e| failed(e.to_string()))?;
        nix::mount::mount(Some(&Path::new("/run/netns").join(netns)), &target, None::<&str>, nix::mount::MsFlags::MS_BIND, None::<&str>)
            .map_err(|e| failed(e.to_string()))?;
        Ok(Path::new("/var/run/netns").join(name))
    }

    /// Takes away what [`expose_netns`](Self::expose_netns) made, as a runtime removes a
    /// sandbox's namespace; the namespace itself lives on while the lab holds it.
    pub fn unexpose_netns(&self, exposed: &Path) {
        if let (Some(dir), Some(name)) = (&self.netns_dir, exposed.file_name()) {
            let target = dir.join(name);
            let _ = nix::mount::umount2(&target, nix::mount::MntFlags::MNT_DETACH);
            let _ = std::fs::remove_file(&target);
        }
    }
}

/// One mount of a node's view, its strings made before the fork.
struct ViewMount {
    source: std::ffi::CString,
    target: std::ffi::CString,
    fstype: Option<std::ffi::CString>,
    flags: libc::c_ulong,
    data: Option<std::ffi::CString>,
}

impl ViewMount {
    fn bind(source: std::ffi::CString, target: std::ffi::CString, flags: libc::c_ulong) -> Self {
        Self { source, target, fstype: None, flags: libc::MS_BIND | flags, data: None }
    }
}

/// In a forked child: joins the network namespace `netns`, leaves the parent's mount
/// namespace for a private one whose mounts no longer propagate back, mounts a `/sys` of
/// that network namespace, then each of `mounts` in order.
fn enter_node_view(netns: &std::fs::File, mounts: &[ViewMount]) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let done = |result: libc::c_int| if result == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) };
    let none = std::ptr::null::<libc::c_char>();
    // SAFETY: valid descriptors and NUL-terminated strings that outlive the calls.
    unsafe {
        done(libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET))?;
        done(libc::unshare(libc::CLONE_NEWNS))?;
        done(libc::mount(none, c"/".as_ptr(), none, libc::MS_SLAVE | libc::MS_REC, std::ptr::null()))?;
        done(libc::umount2(c"/sys".as_ptr(), libc::MNT_DETACH))?;
        done(libc::mount(c"sysfs".as_ptr(), c"/sys".as_ptr(), c"sysfs".as_ptr(), 0, std::ptr::null()))?;
        for mount in mounts {
            let fstype = mount.fstype.as_ref().map_or(none, |f| f.as_ptr());
            let data = mount.data.as_ref().map_or(std::ptr::null(), |d| d.as_ptr().cast());
            done(libc::mount(mount.source.as_ptr(), mount.target.as_ptr(), fstype, mount.flags, data))?;
        }
    }
    Ok(())
}

/// The directories a lab node (or a `cni_spec` sandbox) has of its own, each under its
/// state directory by the first name and seen by its plugins at the second: nothing a
/// plugin keeps there lands on the host or on another node, and all of it goes with the
/// node.
pub const NODE_DIRECTORIES: [(&str, &str); 5] =
    [("var-lib-cni", "/var/lib/cni"), ("run-cni", "/run/cni"), ("tmp", "/tmp"), ("var-log", "/var/log"), ("opt", "/opt")];

/// The host's directories a node's plugins may read but must not change: each is seen
/// through an overlay whose upper layer is the node's (`overlay/<first name>` in its state
/// directory), so whatever a plugin writes there (a config under `/etc`, a file under
/// `/root`, state under `/var/lib/<plugin>`) lands on the node, where its snapshot names it,
/// and never on the host. `/run` stays the host's: the node's network namespaces are mounts
/// under it, and iptables' lock (`/run/xtables.lock`) is one per kernel, as it is one per
/// node on a real one. A directory that holds a plugin directory stays the host's too
/// ([`NodeView::overlays`]).
pub const WRITTEN_APART: [(&str, &str); 6] =
    [("etc", "/etc"), ("root", "/root"), ("home", "/home"), ("srv", "/srv"), ("usr-local", "/usr/local"), ("var", "/var")];

/// The directory in a node's state holding the upper layers of [`WRITTEN_APART`].
pub const OVERLAY: &str = "overlay";

/// A node's one plugin directory, its `CNI_PATH`, where a vendor's installer puts plugins
/// (the reference plugins too) on a real node: see [`NodeView::cni_bin`].
pub const CNI_BIN: &str = "/opt/cni/bin";

/// The upper layer of [`CNI_BIN`] in [`OVERLAY`]: what plugins wrote there.
pub const CNI_BIN_UPPER: &str = "opt-cni-bin";

/// One directory holding a link to every entry of `plugin_dirs`, the first of a name
/// winning (as a lookup along `CNI_PATH` finds it): a host runtime's `CNI_PATH` when it has
/// several plugin directories, so a plugin that runs `$CNI_PATH/host-local` finds it there
/// as on a node. Removed when dropped.
fn one_plugin_directory(plugin_dirs: &[PathBuf]) -> Result<tempfile::TempDir> {
    let failed = |what: String, e: std::io::Error| HarnessError::Command { command: what, detail: e.to_string() };
    let one = tempfile::Builder::new().prefix("cni-path-").tempdir().map_err(|e| failed("make a plugin directory".into(), e))?;
    for dir in plugin_dirs {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        for entry in entries.flatten() {
            let link = one.path().join(entry.file_name());
            if std::fs::symlink_metadata(&link).is_err() {
                std::os::unix::fs::symlink(entry.path(), &link).map_err(|e| failed(format!("link {}", link.display()), e))?;
            }
        }
    }
    Ok(one)
}

/// Copies `from` (a file, or a directory with everything in it) to `to`, modes kept (an
/// executable stays one), replacing what is there.
fn copy_into_node(from: &Path, to: &Path) -> Result<()> {
    let failed = |e: std::io::Error| HarnessError::Command { command: format!("copy {} to {}", from.display(), to.display()), detail: e.to_string() };
    if from.is_dir() {
        std::fs::create_dir_all(to).map_err(failed)?;
        for entry in std::fs::read_dir(from).map_err(failed)? {
            let entry = entry.map_err(failed)?;
            copy_into_node(&entry.path(), &to.join(entry.file_name()))?;
        }
        return Ok(());
    }
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(failed)?;
    }
    std::fs::copy(from, to).map(drop).map_err(failed)
}

/// GNU time: it starts the plugin itself (being small, it passes on no large high-water
/// mark) and writes the plugin's peak resident memory, in KiB, to a file.
pub const GNU_TIME: &str = "/usr/bin/time";

/// `process` run under [`GNU_TIME`], which writes its peak memory to `report`; the same
/// program, arguments and environment, and `time` exits with the plugin's status.
fn with_own_peak_memory(process: Command, report: &Path) -> Command {
    let mut timed = Command::new(GNU_TIME);
    timed.args(["-q", "-f", "%M", "-o"]).arg(report).arg(process.get_program()).args(process.get_args());
    timed.env_clear();
    for (key, value) in process.get_envs() {
        if let Some(value) = value {
            timed.env(key, value);
        }
    }
    timed
}

/// Runs `process` (a plugin binary, its environment set) to completion within `budget`: in
/// a process group of its own, so that what it starts (IPAM, iptables, a hung child) ends
/// with it; `stdin` written to it; both streams read; reaped with the kernel's account of
/// its resources. When the budget runs out the group is killed and the output says so.
/// While it runs, its group is registered for an interrupt's cleanup and, where `state` is
/// given (a run's state directory), recorded there for `cargo xtask gc`.
pub fn run_bounded(
    mut process: Command,
    stdin: &[u8],
    budget: Duration,
    state: Option<&Path>,
    what: &str,
) -> std::io::Result<(PluginOutput, crate::model::ResourceUsage)> {
    process.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    std::os::unix::process::CommandExt::process_group(&mut process, 0);
    let mut child = process.spawn()?;
    let pgid = child.id() as i32;
    let running = RunningPlugin::start(pgid, state, what);
    let (finished, watch) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || match watch.recv_timeout(budget) {
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            kill_group(pgid);
            true
        }
        _ => false,
    });
    // A plugin may exit without reading its config (a broken pipe); what it printed and
    // its exit status say why, as they would to any runtime.
    let written = match child.stdin.take().expect("stdin is piped").write_all(stdin) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e),
        _ => Ok(()),
    };
    let (mut stdout, mut stderr) = (child.stdout.take().expect("stdout is piped"), child.stderr.take().expect("stderr is piped"));
    let reading_stderr = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stderr, &mut bytes);
        bytes
    });
    let mut printed = Vec::new();
    let read = std::io::Read::read_to_end(&mut stdout, &mut printed);
    let complained = reading_stderr.join().unwrap_or_default();
    let waited = wait_accounted(&child);
    let _ = finished.send(());
    let hung = watchdog.join().unwrap_or(false);
    drop(running);
    written?;
    read?;
    let (status, usage) = waited?;
    let output = PluginOutput {
        success: status.success() && !hung,
        status: if hung { format!("killed after {} s", budget.as_secs()) } else { status.to_string() },
        stdout: String::from_utf8_lossy(&printed).into_owned(),
        stderr: String::from_utf8_lossy(&complained).into_owned(),
        hung_after: hung.then_some(budget),
    };
    Ok((output, usage))
}

impl CniRuntime {
    /// Fails with the plugin's name and the searched path when a plugin of the list is missing.
    pub fn require_plugins(&self, list: &NetworkConfigList) -> Result<()> {
        list.plugin_types().try_for_each(|plugin| self.plugin_path(plugin).map(drop))
    }

    /// The versions `plugin` claims in its answer to VERSION (asked with a config of
    /// `cni_version`), and the answer itself; none when it printed no such list.
    pub fn claimed_versions(&self, plugin: &str, cni_version: &str) -> Result<(Vec<String>, PluginOutput)> {
        let answer = self.exec("VERSION", plugin, format!(r#"{{"cniVersion":"{cni_version}"}}"#).as_bytes(), &[("CNI_COMMAND", "VERSION".into())])?;
        let claimed = serde_json::from_str::<Value>(&answer.stdout)
            .ok()
            .and_then(|v| v.get("supportedVersions").cloned())
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default();
        Ok((claimed, answer))
    }

    /// Refuses a conflist (`path`) whose `cniVersion` some of its plugins do not claim in
    /// their VERSION answer: each such plugin would refuse every call with "incompatible CNI
    /// versions" (as the specification asks), so nothing could be judged. Said before any
    /// lab is built, naming the file, the field and what each plugin claims.
    pub fn require_claimed_version(&self, list: &NetworkConfigList, path: &Path) -> Result<()> {
        let mut refusals = Vec::new();
        for plugin in list.plugin_types() {
            let (claimed, answer) = self.claimed_versions(plugin, &list.cni_version)?;
            if !claimed.contains(&list.cni_version) {
                refusals.push(format!(
                    "{plugin} claims {}",
                    if claimed.is_empty() { format!("nothing ({})", answer.failure("VERSION")) } else { claimed.join(", ") }
                ));
            }
        }
        match refusals.is_empty() {
            true => Ok(()),
            false => Err(HarnessError::FixtureMalformed {
                path: path.to_owned(),
                detail: format!(
                    "cniVersion: expected a version every plugin of the chain claims, found {:?}, which not all do ({})",
                    list.cni_version,
                    refusals.join("; ")
                ),
            }),
        }
    }

    /// Where plugin `plugin` is on this host: in what was installed on the node as its files
    /// (a lab node's [`CNI_BIN`]), else in the first plugin directory that has it.
    pub fn plugin_path(&self, plugin: &str) -> Result<PathBuf> {
        self.installed_plugins()
            .into_iter()
            .chain(self.plugin_dirs.iter().cloned())
            .map(|dir| dir.join(plugin))
            .find(|path| path.is_file())
            .ok_or_else(|| HarnessError::MissingPlugin { plugin: plugin.to_owned(), searched: self.searched() })
    }

    /// The node's own [`CNI_BIN`] on this host, when the runtime's plugins run on a node
    /// with directories of its own (where they see one plugin directory).
    fn installed_plugins(&self) -> Option<PathBuf> {
        self.node.as_ref().filter(|node| node.own_directories.is_some()).map(|node| node.on_host(Path::new(CNI_BIN)))
    }

    /// The plugin directories [`plugin_path`](Self::plugin_path) looked through, for its
    /// error: what the profile (or `CNI_PATH`) named.
    fn searched(&self) -> String {
        std::env::join_paths(&self.plugin_dirs).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default()
    }

    /// `CNI_PATH` as the plugins see it: [`CNI_BIN`] on a node with directories of its own,
    /// else the plugin directories themselves.
    fn cni_path(&self) -> String {
        match self.installed_plugins() {
            Some(_) => CNI_BIN.to_owned(),
            None => std::env::join_paths(&self.plugin_dirs).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default(),
        }
    }

    /// CNI ADD: runs the chain in order and caches the final result.
    pub fn add(&self, list: &NetworkConfigList, attachment: &Attachment) -> Result<CniResult> {
        let started = Instant::now();
        let mut previous: Option<Value> = None;
        for plugin in &list.plugins {
            let result = self.invoke("ADD", list, plugin, attachment, previous.as_ref())?;
            let result = result.ok_or_else(|| HarnessError::CniResult { plugin: plugin_type(plugin).to_owned(), detail: "ADD printed no result".into() })?;
            previous = Some(result);
        }
        let raw = previous.expect("a conflist has at least one plugin");
        let ips = parse_ips(&raw, list)?;
        self.store(list, attachment, &raw)?;
        Ok(CniResult { raw, ips, elapsed: started.elapsed() })
    }

    /// CNI CHECK: asks every plugin whether the attachment is still as ADD left it. CHECK
    /// exists from 0.4.0 on; of an older config it is refused, never sent.
    pub fn check(&self, list: &NetworkConfigList, attachment: &Attachment) -> Result<()> {
        if matches!(list.cni_version.as_str(), "0.1.0" | "0.2.0" | "0.3.0" | "0.3.1") {
            return Err(HarnessError::CniPlugin {
                command: "CHECK".into(),
                plugin: list.plugin_types().collect::<Vec<_>>().join(" -> "),
                container: attachment_of(&attachment.environment("CHECK")),
                message: format!("CHECK exists from CNI 0.4.0; network `{}` is {}", list.name, list.cni_version),
            });
        }
        let cached = self.cached(list, attachment)?.ok_or_else(|| HarnessError::NotReady {
            what: format!("network `{}` of container {}", list.name, attachment.container_id),
            detail: "no cached ADD result to CHECK against".into(),
        })?;
        for plugin in &list.plugins {
            self.invoke("CHECK", list, plugin, attachment, Some(&cached))?;
        }
        Ok(())
    }

    /// CNI DEL: runs the chain in reverse with the cached result; runs every plugin and
    /// returns the first error, so one failing plugin does not leak the others' state.
    pub fn del(&self, list: &NetworkConfigList, attachment: &Attachment) -> Result<()> {
        let cached = self.cached(list, attachment)?;
        let mut first_error = None;
        for plugin in list.plugins.iter().rev() {
            if let Err(e) = self.invoke("DEL", list, plugin, attachment, cached.as_ref()) {
                first_error.get_or_insert(e);
            }
        }
        let _ = std::fs::remove_file(self.cache_path(list, attachment));
        first_error.map_or(Ok(()), Err)
    }

    fn invoke(
        &self,
        command: &str,
        list: &NetworkConfigList,
        plugin: &Map<String, Value>,
        attachment: &Attachment,
        previous: Option<&Value>,
    ) -> Result<Option<Value>> {
        let plugin_name = plugin_type(plugin);
        let config = plugin_config(list, plugin, attachment, previous);
        // Every failure ends with what the plugins' logs on the node say.
        let failed = |message: String| HarnessError::CniPlugin {
            command: command.to_owned(),
            plugin: plugin_name.to_owned(),
            container: attachment_of(&attachment.environment(command)),
            message: format!("{message}{}", self.what_the_logs_say()),
        };
        let output = self.exec(command, plugin_name, config.to_string().as_bytes(), &attachment.environment(command))?;
        if !output.success {
            return Err(failed(output.failure(command)));
        }
        if output.stdout.trim().is_empty() {
            return match command {
                "ADD" => Err(failed(format!("{}, but printed no result on stdout; stderr {:?}", output.status, output.stderr.trim()))),
                _ => Ok(None),
            };
        }
        let printed: Value = serde_json::from_str(&output.stdout).map_err(|e| {
            failed(format!("{}, but its stdout is not JSON ({e}): {:?}; stderr {:?}", output.status, output.stdout.trim(), output.stderr.trim()))
        })?;
        // An error structure is an error whatever the exit status (a runtime's libcni decodes
        // `code` as a failure); a result must be one of the config's version.
        if printed.get("code").is_some() {
            return Err(failed(format!("{}, but printed the CNI error structure {}; stderr {:?}", output.status, output.stdout.trim(), output.stderr.trim())));
        }
        if command == "ADD" {
            let problems = crate::cni::result::result_problems(&printed, &list.cni_version);
            if !problems.is_empty() {
                return Err(failed(format!(
                    "its result is not a valid {} result: {}; it printed {}",
                    list.cni_version,
                    problems.join("; "),
                    output.stdout.trim()
                )));
            }
        }
        Ok(Some(printed))
    }

    /// The last lines of the plugins' logs on the node (`; its log /tmp/x.log says: ...`), or
    /// nothing when none is named or none exists.
    fn what_the_logs_say(&self) -> String {
        /// As many as a reader takes in at a glance; the bundle has the whole file.
        const LAST_LINES: usize = 5;
        self.node.iter().flat_map(|node| node.log_tails(LAST_LINES)).map(|(log, tail)| format!("; its log {} says: {}", log.display(), tail.trim())).collect()
    }

    /// Runs plugin `plugin_name` once with `stdin` and exactly the `CNI_*` variables in
    /// `environment` (plus `CNI_PATH`), in the node's view; returns what it printed and how
    /// it exited, whatever that was. An error only when it could not be run at all.
    pub fn exec(&self, command: &str, plugin_name: &str, stdin: &[u8], environment: &[(&str, String)]) -> Result<PluginOutput> {
        let binary = self.plugin_path(plugin_name)?;
        // Run as a runtime runs it, from one plugin directory that is all of `CNI_PATH`: the
        // node's own, or on the host (a VERSION before the lab is built) one made for the call.
        let (run_as, cni_path, _made_for_the_call) = match (self.installed_plugins(), &self.node) {
            (Some(_), _) => (Path::new(CNI_BIN).join(plugin_name), CNI_BIN.to_owned(), None),
            (None, Some(_)) => (binary.clone(), self.cni_path(), None),
            (None, None) if self.plugin_dirs.len() < 2 => (binary.clone(), self.cni_path(), None),
            (None, None) => {
                let one = one_plugin_directory(&self.plugin_dirs)?;
                (one.path().join(plugin_name), one.path().display().to_string(), Some(one))
            }
        };
        let mut process = Command::new(&run_as);
        process.env_clear().env("PATH", runtime_path()).env("CNI_PATH", &cni_path);
        process.envs(environment.iter().map(|(k, v)| (*k, v.as_str())));
        let attachment = attachment_of(environment);
        let failed =
            |message: String| HarnessError::CniPlugin { command: command.to_owned(), plugin: plugin_name.to_owned(), container: attachment.clone(), message };
        let state = self.node.as_ref().map(|_| self.cache_dir.as_path());
        let budget = self.budget.unwrap_or_else(plugin_budget);
        // Where the node's view and this process see the same file: not in a directory the
        // node has of its own (`/tmp`), but beside the runtime's cache.
        let report = match &self.node {
            Some(_) => std::fs::create_dir_all(&self.cache_dir).and_then(|()| tempfile::NamedTempFile::new_in(&self.cache_dir)),
            None => tempfile::NamedTempFile::new(),
        }
        .map_err(|e| failed(format!("a file for its peak memory: {e}")))?;
        let mut process = with_own_peak_memory(process, report.path());
        // The call's overlay work directories, removed when it is over.
        let _work = match &self.node {
            Some(node) => node.enter(&mut process, &self.plugin_dirs)?,
            None => None,
        };
        let (at, started) = (std::time::SystemTime::now(), std::time::Instant::now());
        let (output, mut usage) = run_bounded(process, stdin, budget, state, &format!("{command} by {plugin_name} for {attachment}"))
            .map_err(|e| failed(format!("running {}: {e}", binary.display())))?;
        // The kernel's figure for a process this one started is at least this process's own
        // peak (exec carries the old image's high-water mark over); `time`'s is the plugin's.
        if let Some(kib) = std::fs::read_to_string(report.path()).ok().and_then(|text| text.lines().last().and_then(|l| l.trim().parse::<u64>().ok())) {
            usage.peak_memory_bytes = kib * 1024;
        }
        *self.records.usage.lock().unwrap_or_else(|e| e.into_inner()) = self.usage().with(usage);
        let mut given: Vec<(String, String)> = environment.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
        given.push(("CNI_PATH".into(), cni_path));
        let invocation = Invocation {
            at,
            took: started.elapsed(),
            plugin: binary,
            environment: given,
            stdin: String::from_utf8_lossy(stdin).into_owned(),
            output: output.clone(),
        };
        let mut journal = self.records.journal.lock().unwrap_or_else(|e| e.into_inner());
        if journal.len() == JOURNAL_LENGTH {
            journal.pop_front();
        }
        journal.push_back(invocation);
        Ok(output)
    }

    /// CPU time and peak memory of every plugin process this runtime has run so far.
    pub fn usage(&self) -> crate::model::ResourceUsage {
        *self.records.usage.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The plugin calls this runtime (and its clones) made whose environment `matches`,
    /// oldest first.
    pub fn invocations(&self, matches: impl Fn(&[(String, String)]) -> bool) -> Vec<Invocation> {
        self.records.journal().into_iter().filter(|i| matches(&i.environment)).collect()
    }

    fn cache_path(&self, list: &NetworkConfigList, attachment: &Attachment) -> PathBuf {
        self.cache_dir.join("results").join(format!("{}-{}-{}", list.name, attachment.container_id, attachment.ifname))
    }

    fn store(&self, list: &NetworkConfigList, attachment: &Attachment, result: &Value) -> Result<()> {
        let path = self.cache_path(list, attachment);
        let record = CachedResult {
            kind: "cniCacheV1".into(),
            container_id: attachment.container_id.clone(),
            if_name: attachment.ifname.clone(),
            network_name: list.name.clone(),
            result: result.clone(),
        };
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(path.parent().expect("cache path has a parent"))?;
            std::fs::write(&path, serde_json::to_vec(&record).expect("cache record serializes"))
        };
        // Under the interrupt guard: a cache written after the cleanup removed the run's
        // state would bring its directory back.
        crate::cleanup::guard_creation(|| {
            write().map_err(|e| HarnessError::Command { command: format!("write CNI cache {}", path.display()), detail: e.to_string() })
        })
    }

    fn cached(&self, list: &NetworkConfigList, attachment: &Attachment) -> Result<Option<Value>> {
        let path = self.cache_path(list, attachment);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<CachedResult>(&bytes)
                .map(|record| Some(record.result))
                .map_err(|e| HarnessError::CniResult { plugin: "cache".into(), detail: format!("{}: {e}", path.display()) }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(HarnessError::Command { command: format!("read CNI cache {}", path.display()), detail: e.to_string() }),
        }
    }
}

pub(crate) fn plugin_type(plugin: &Map<String, Value>) -> &str {
    plugin["type"].as_str().expect("checked in parse")
}

/// The stdin config of one plugin: its own fields plus the list's name and version, the
/// previous result, and the runtime config its capabilities ask for.
pub(crate) fn plugin_config(list: &NetworkConfigList, plugin: &Map<String, Value>, attachment: &Attachment, previous: Option<&Value>) -> Value {
    let mut config = plugin.clone();
    config.insert("cniVersion".into(), Value::String(list.cni_version.clone()));
    config.insert("name".into(), Value::String(list.name.clone()));
    if let Some(previous) = previous {
        config.insert("prevResult".into(), previous.clone());
    }
    config.remove("capabilities");
    let wanted = plugin.get("capabilities").and_then(Value::as_object);
    let runtime_config: Map<String, Value> = attachment
        .capability_args
        .iter()
        .filter(|(key, _)| wanted.and_then(|w| w.get(*key)).and_then(Value::as_bool) == Some(true))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !runtime_config.is_empty() {
        config.insert("runtimeConfig".into(), Value::Object(runtime_config));
    }
    Value::Object(config)
}

fn parse_ips(result: &Value, list: &NetworkConfigList) -> Result<Vec<IpConfig>> {
    let ips = result.get("ips").cloned().unwrap_or(Value::Array(vec![]));
    let ips: Vec<IpConfig> = serde_json::from_value(ips)
        .map_err(|e| HarnessError::CniResult { plugin: list.plugins.last().map(plugin_type).unwrap_or("?").to_owned(), detail: format!("ips: {e}") })?;
    Ok(ips)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list() -> NetworkConfigList {
        NetworkConfigList::parse(
            r#"{"cniVersion":"1.0.0","name":"lab","plugins":[
                {"type":"bridge","bridge":"cni0"},
                {"type":"portmap","capabilities":{"portMappings":true}},
                {"type":"tuning","capabilities":{"mac":false}}]}"#,
            Path::new("test.conflist"),
        )
        .unwrap()
    }

    fn attachment() -> Attachment {
        let mut capability_args = Map::new();
        capability_args.insert("portMappings".into(), json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]));
        capability_args.insert("mac".into(), json!("c2:11:22:33:44:55"));
        Attachment { container_id: "c1".into(), netns: "/run/netns/p".into(), ifname: "eth0".into(), args: vec![], capability_args }
    }

    #[test]
    fn runtime_config_goes_only_to_plugins_that_ask_for_it() {
        let list = list();
        let bridge = plugin_config(&list, &list.plugins[0], &attachment(), None);
        assert!(bridge.get("runtimeConfig").is_none());
        let portmap = plugin_config(&list, &list.plugins[1], &attachment(), None);
        assert_eq!(portmap["runtimeConfig"]["portMappings"][0]["hostPort"], 8080);
        assert!(portmap["runtimeConfig"].get("mac").is_none());
        let tuning = plugin_config(&list, &list.plugins[2], &attachment(), None);
        assert!(tuning.get("runtimeConfig").is_none(), "capability set to false is not asked for");
    }

    #[test]
    fn each_plugin_gets_the_list_name_version_and_previous_result() {
        let list = list();
        let previous = json!({"cniVersion": "1.0.0", "ips": [{"address": "10.244.1.2/24"}]});
        let config = plugin_config(&list, &list.plugins[1], &attachment(), Some(&previous));
        assert_eq!(config["name"], "lab");
        assert_eq!(config["cniVersion"], "1.0.0");
        assert_eq!(config["prevResult"], previous);
        assert!(config.get("capabilities").is_none());
    }

    #[test]
    fn a_conflist_without_plugin_types_is_named() {
        let error =
            NetworkConfigList::parse(r#"{"cniVersion":"1.0.0","name":"x","plugins":[{"bridge":"b"}]}"#, Path::new("x.conflist")).unwrap_err().to_string();
        assert!(error.contains("x.conflist") && error.contains("plugins[0].type"), "{error}");
    }

    #[test]
    fn a_missing_plugin_names_the_plugin_and_the_path() {
        let runtime =
            CniRuntime { plugin_dirs: vec!["/nonexistent/cni".into()], cache_dir: "/tmp".into(), node: None, records: Default::default(), budget: None };
        let error = runtime.require_plugins(&list()).unwrap_err().to_string();
        assert!(error.contains("`bridge`") && error.contains("/nonexistent/cni"), "{error}");
    }

    /// Stand-in plugins (shell scripts) record what they were given, so the chain's
    /// order, `prevResult` and cache can be checked without root.
    #[test]
    fn add_chains_results_check_and_del_get_the_cached_result() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        for name in ["first", "second"] {
            let script = format!(
                "#!/bin/sh\ncfg=$(cat)\necho \"$CNI_COMMAND {name} $cfg\" >> {log}\nif [ \"$CNI_COMMAND\" = ADD ]; then echo '{{\"cniVersion\":\"1.0.0\",\"ips\":[{{\"address\":\"10.244.1.7/24\"}}],\"by\":\"{name}\"}}'; fi\n",
                log = log.display()
            );
            let path = dir.path().join(name);
            std::fs::write(&path, script).unwrap();
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        }
        let list =
            NetworkConfigList::parse(r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"first"},{"type":"second"}]}"#, Path::new("n.conflist")).unwrap();
        let runtime =
            CniRuntime { plugin_dirs: vec![dir.path().into()], cache_dir: dir.path().join("cache"), node: None, records: Default::default(), budget: None };
        let result = runtime.add(&list, &attachment()).unwrap();
        assert_eq!(result.ips[0].address.to_string(), "10.244.1.7/24");
        assert_eq!(result.raw["by"], "second");
        runtime.check(&list, &attachment()).unwrap();
        runtime.del(&list, &attachment()).unwrap();
        let calls: Vec<String> = std::fs::read_to_string(&log).unwrap().lines().map(str::to_owned).collect();
        let order: Vec<String> = calls.iter().map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" ")).collect();
        assert_eq!(order, ["ADD first", "ADD second", "CHECK first", "CHECK second", "DEL second", "DEL first"]);
        assert!(!calls[0].contains("prevResult"), "the first plugin has no previous result");
        assert!(calls[1].contains(r#""by":"first""#), "the second plugin gets the first's result: {}", calls[1]);
        assert!(calls[4].contains(r#""by":"second""#), "DEL gets the cached final result: {}", calls[4]);
        assert!(runtime.check(&list, &attachment()).is_err(), "the cache is gone after DEL");
    }

    /// Writes executable stand-in plugins into a new directory.
    fn stand_ins(plugins: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, script) in plugins {
            let path = dir.path().join(name);
            std::fs::write(&path, script).unwrap();
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        }
        dir
    }

    fn one_plugin(plugin: &str, version: &str) -> NetworkConfigList {
        NetworkConfigList::parse(&format!(r#"{{"cniVersion":"{version}","name":"n","plugins":[{{"type":"{plugin}"}}]}}"#), Path::new("n")).unwrap()
    }

    fn pod_attachment() -> Attachment {
        Attachment { args: vec![("K8S_POD_NAMESPACE".into(), "prod".into()), ("K8S_POD_NAME".into(), "web".into())], ..attachment() }
    }

    /// A plugin that hangs in ADD (and a child it started) is killed by process group when
    /// its budget runs out, and the error says so with what it had printed; the run goes on
    /// in about the budget, not for ever.
    #[test]
    fn a_hung_plugin_is_killed_with_its_children_after_its_budget() {
        let dir = stand_ins(&[("hangs", "#!/bin/sh\ncat > /dev/null\necho starting >&2\nsleep 300 &\necho $! > \"$(dirname \"$0\")/child\"\nwait\n")]);
        let runtime = CniRuntime {
            plugin_dirs: vec![dir.path().into()],
            cache_dir: dir.path().join("cache"),
            node: None,
            records: Default::default(),
            budget: Some(Duration::from_secs(1)),
        };
        let started = Instant::now();
        let error = runtime.add(&one_plugin("hangs", "1.0.0"), &pod_attachment()).unwrap_err().to_string();
        assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
        assert!(error.contains("CNI ADD of plugin `hangs` for pod prod/web (container c1) failed: hung in ADD after 1 s"), "{error}");
        assert!(error.contains("stderr \"starting\""), "{error}");
        let child: i32 = std::fs::read_to_string(dir.path().join("child")).unwrap().trim().parse().unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            process_start_time(child).is_none() || std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap().contains(") Z"),
            "the plugin's child {child} was killed with it"
        );
    }

    /// What a plugin said reaches the error: its error structure, exit status and stderr;
    /// an error structure printed with exit status 0 is an error all the same (issue: the
    /// lab once took `{"code": 999, ...}` as a result); a result invalid for the config's
    /// version is refused with its problems.
    #[test]
    fn a_plugin_s_own_words_reach_the_error() {
        let dir = stand_ins(&[
            ("fails", "#!/bin/sh\ncat > /dev/null\necho '{\"cniVersion\":\"1.0.0\",\"code\":11,\"msg\":\"no subnet\",\"details\":\"podSubnet unset\"}'\necho 'looked everywhere' >&2\nexit 1\n"),
            ("says-error-exits-0", "#!/bin/sh\ncat > /dev/null\necho '{\"code\": 999, \"msg\": \"invalid CIDR address: {podSubnet}\"}'\n"),
            ("text-error", "#!/bin/sh\ncat > /dev/null\necho 'failed: no netns'\nexit 2\n"),
            ("silent", "#!/bin/sh\ncat > /dev/null\nexit 1\n"),
            ("bad-result", "#!/bin/sh\ncat > /dev/null\necho '{\"cniVersion\":\"0.4.0\",\"ips\":[{\"address\":\"10.0.0.2\"}]}'\n"),
        ]);
        let runtime =
            CniRuntime { plugin_dirs: vec![dir.path().into()], cache_dir: dir.path().join("cache"), node: None, records: Default::default(), budget: None };
        let error = |plugin: &str| runtime.add(&one_plugin(plugin, "1.0.0"), &pod_attachment()).unwrap_err().to_string();
        let fails = error("fails");
        assert!(
            fails.contains("for pod prod/web (container c1)")
                && fails.contains("exit status: 1: error code 11: no subnet (podSubnet unset); stderr \"looked everywhere\""),
            "{fails}"
        );
        let exits_0 = error("says-error-exits-0");
        assert!(exits_0.contains("exit status: 0, but printed the CNI error structure") && exits_0.contains("invalid CIDR address: {podSubnet}"), "{exits_0}");
        assert!(error("text-error").contains(r#"stdout "failed: no netns" is not the JSON error structure"#), "{}", error("text-error"));
        assert!(error("silent").contains("exit status: 1, with nothing on stdout (a CNI error is the JSON error structure on stdout"), "{}", error("silent"));
        let bad = error("bad-result");
        assert!(
            bad.contains("not a valid 1.0.0 result") && bad.contains("cniVersion is Some(\"0.4.0\")") && bad.contains("not an address in CIDR notation"),
            "{bad}"
        );
    }

    /// CHECK is never sent to a config older than 0.4.0, where it does not exist.
    #[test]
    fn check_is_refused_before_0_4_0_without_running_a_plugin() {
        let dir =
            stand_ins(&[("records", "#!/bin/sh\ncat > /dev/null\necho $CNI_COMMAND >> \"$(dirname \"$0\")/calls\"\necho '{\"cniVersion\":\"0.3.1\"}'\n")]);
        let runtime =
            CniRuntime { plugin_dirs: vec![dir.path().into()], cache_dir: dir.path().join("cache"), node: None, records: Default::default(), budget: None };
        let list = one_plugin("records", "0.3.1");
        runtime.add(&list, &attachment()).unwrap();
        let error = runtime.check(&list, &attachment()).unwrap_err().to_string();
        assert!(error.contains("CHECK exists from CNI 0.4.0; network `n` is 0.3.1"), "{error}");
        assert_eq!(std::fs::read_to_string(dir.path().join("calls")).unwrap(), "ADD\n");
    }

    /// A plugin gets a container runtime's `PATH`, not the one the harness was started with
    /// (here the test's own, which on a machine with a version manager puts its shims first).
    #[test]
    fn a_plugin_runs_with_the_runtime_s_path_not_the_caller_s() {
        let dir = stand_ins(&[("records", "#!/bin/sh\ncat > /dev/null\necho \"$PATH\" > \"$(dirname \"$0\")/path\"\necho '{\"cniVersion\":\"1.0.0\"}'\n")]);
        let runtime =
            CniRuntime { plugin_dirs: vec![dir.path().into()], cache_dir: dir.path().join("cache"), node: None, records: Default::default(), budget: None };
        runtime.add(&one_plugin("records", "1.0.0"), &attachment()).unwrap();
        let seen = std::fs::read_to_string(dir.path().join("path")).unwrap();
        assert_eq!(seen.trim(), runtime_path());
        if std::env::var_os("CNICONF_RUNTIME_PATH").is_none() {
            assert_eq!(seen.trim(), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        }
    }

    /// `xtask gc` of a killed run: a recorded plugin group whose leader is still the recorded
    /// process is killed; a record whose pid now names another process (a later start time)
    /// is left alone, and every record is removed.
    #[test]
    fn recorded_plugin_groups_are_killed_only_if_they_are_still_those_processes() {
        use std::os::unix::process::{CommandExt, ExitStatusExt};
        let state = tempfile::tempdir().unwrap();
        let records = state.path().join("node-1/cache").join(RUNNING_PLUGINS);
        std::fs::create_dir_all(&records).unwrap();
        let spawn = || Command::new("sleep").arg("300").process_group(0).spawn().unwrap();
        let (mut hung, mut unrelated) = (spawn(), spawn());
        let started = process_start_time(hung.id() as i32).unwrap();
        std::fs::write(records.join(hung.id().to_string()), format!("{started} ADD by x for pod a/b\n")).unwrap();
        std::fs::write(records.join(unrelated.id().to_string()), format!("{} ADD by y\n", started.saturating_sub(1000))).unwrap();
        assert_eq!(kill_recorded_plugins(state.path()), 1);
        assert!(hung.wait().unwrap().signal() == Some(libc::SIGKILL));
        assert!(unrelated.try_wait().unwrap().is_none(), "a reused pid is not killed");
        unrelated.kill().unwrap();
        let _ = unrelated.wait();
        assert_eq!(std::fs::read_dir(&records).unwrap().count(), 0);
    }

    /// A plugin run in a node's view is charged its own peak memory, not this process's:
    /// with 256 MiB resident here, a small plugin still peaks at a few MiB. Charged by the
    /// kernel's `ru_maxrss` of the process this one started, it was charged 256 MiB (exec
    /// carries the old image's high-water mark over, even after vfork), which is how
    /// `cni.peak-memory` once read 78 MiB for an 8 MiB plugin late in a long suite. Needs
    /// root (a network namespace).
    #[test]
    fn a_plugin_in_a_node_view_is_charged_its_own_memory_not_the_harness_s() {
        let netns = format!("cniconf-unit-{}", std::process::id());
        assert!(Command::new("ip").args(["netns", "add", &netns]).status().unwrap().success(), "needs root");
        struct Removed(String);
        impl Drop for Removed {
            fn drop(&mut self) {
                let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
            }
        }
        let _removed = Removed(netns.clone());
        let dir = stand_ins(&[("small", "#!/bin/sh\ncat > /dev/null\necho '{\"cniVersion\":\"1.0.0\"}'\n")]);
        std::fs::create_dir(dir.path().join("bpffs")).unwrap();
        let node = NodeView {
            netns,
            bpffs: dir.path().join("bpffs"),
            own_directories: None,
            netns_dir: None,
            logs: vec![],
            kept_from_the_host: vec![],
            files: vec![],
        };
        let runtime = CniRuntime {
            plugin_dirs: vec![dir.path().into()],
            cache_dir: dir.path().join("cache"),
            node: Some(node),
            records: Default::default(),
            budget: None,
        };
        let held = vec![1u8; 256 << 20];
        runtime.add(&one_plugin("small", "1.0.0"), &attachment()).unwrap();
        let peak = runtime.usage().peak_memory_bytes;
        assert!(held.iter().step_by(4096).all(|&b| b == 1));
        assert!(peak > 0 && peak < 32 << 20, "charged {} MiB", peak >> 20);
    }

    /// CPU and memory are the kernel's account of each plugin process and what it waited
    /// for: a plugin that burns CPU in a child it waits for, and one that holds 96 MiB.
    #[test]
    fn a_plugin_s_cpu_time_and_peak_memory_are_accounted_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let plugins = [
            (
                "burner",
                "#!/bin/sh
cat > /dev/null
python3 -c 'import time\nt=time.process_time()\nwhile time.process_time()-t<0.3: pass'
echo '{\"cniVersion\":\"1.0.0\"}'
",
            ),
            (
                "holder",
                "#!/usr/bin/env python3
import sys
sys.stdin.read()
held = b'x' * (96 << 20)
print('{\"cniVersion\":\"1.0.0\"}')
",
            ),
        ];
        for (name, script) in plugins {
            let path = dir.path().join(name);
            std::fs::write(&path, script).unwrap();
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        }
        let runtime =
            CniRuntime { plugin_dirs: vec![dir.path().into()], cache_dir: dir.path().join("cache"), node: None, records: Default::default(), budget: None };
        let list = |plugin: &str| {
            NetworkConfigList::parse(&format!(r#"{{"cniVersion":"1.0.0","name":"n","plugins":[{{"type":"{plugin}"}}]}}"#), Path::new("n")).unwrap()
        };
        runtime.add(&list("burner"), &attachment()).unwrap();
        let burnt = runtime.usage();
        assert!(burnt.cpu >= Duration::from_millis(290) && burnt.cpu < Duration::from_secs(3), "the child's 300 ms are the plugin's: {burnt:?}");
        assert!(burnt.peak_memory_bytes < 96 << 20, "{burnt:?}");
        runtime.add(&list("holder"), &attachment()).unwrap();
        let held = runtime.usage();
        assert!(held.peak_memory_bytes >= 96 << 20, "{held:?}");
        assert_eq!(held.processes, 2);
        assert!(held.cpu > burnt.cpu, "summed: {held:?} after {burnt:?}");
    }

    #[test]
    fn a_plugin_error_carries_its_message() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broken");
        std::fs::write(&path, "#!/bin/sh\necho '{\"cniVersion\":\"1.0.0\",\"code\":7,\"msg\":\"bad config\",\"details\":\"no bridge\"}'\nexit 1\n").unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let list = NetworkConfigList::parse(r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"broken"}]}"#, Path::new("n")).unwrap();
        let runtime = CniRuntime { plugin_dirs: vec![dir.path().into()], cache_dir: dir.path().into(), node: None, records: Default::default(), budget: None };
        let error = runtime.add(&list, &attachment()).unwrap_err().to_string();
        assert!(error.contains("CNI ADD of plugin `broken`") && error.contains("error code 7: bad config (no bridge)"), "{error}");
    }
}
