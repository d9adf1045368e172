//! Runs CNI plugin binaries exactly as a container runtime does (CNI spec 1.0.0).
//!
//! ADD runs a conflist's plugins in order, each given the previous one's result as
//! `prevResult` and only the `runtimeConfig` keys its `capabilities` ask for; the final
//! result is cached so that CHECK and DEL get what ADD returned. DEL runs in reverse order.

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
        let plugins = value
            .get("plugins")
            .and_then(Value::as_array)
            .ok_or_else(|| malformed("plugins: expected a list of plugin configurations".into()))?;
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
        let text = std::fs::read_to_string(path)
            .map_err(|source| HarnessError::FixtureUnreadable { path: path.to_owned(), source })?;
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
    /// What its plugin processes have used, shared by its clones.
    pub usage: std::sync::Arc<std::sync::Mutex<crate::model::ResourceUsage>>,
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
    let accounted = crate::model::ResourceUsage { cpu: time(usage.ru_utime) + time(usage.ru_stime), peak_memory_bytes: usage.ru_maxrss as u64 * 1024, processes: 1 };
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
    /// A directory seen as `/var/lib/cni` (where IPAM and other plugins keep their state),
    /// for a node of its own; `None` leaves the host's.
    pub var_lib_cni: Option<PathBuf>,
}

impl NodeView {
    /// A command for `program` that starts in the node's view.
    fn command(&self, program: &Path) -> Result<Command> {
        use std::os::fd::{AsRawFd, OwnedFd};
        use std::os::unix::process::CommandExt;
        let netns_path = Path::new("/run/netns").join(&self.netns);
        let netns: OwnedFd = std::fs::File::open(&netns_path)
            .map_err(|e| HarnessError::Command { command: format!("open {}", netns_path.display()), detail: e.to_string() })?
            .into();
        let bpffs = self.bpffs.clone();
        let var_lib_cni = self.var_lib_cni.clone();
        if var_lib_cni.is_some() {
            std::fs::create_dir_all("/var/lib/cni").map_err(|e| HarnessError::Command { command: "mkdir /var/lib/cni".into(), detail: e.to_string() })?;
        }
        let mut command = Command::new(program);
        // SAFETY: between fork and exec the closure makes only syscalls (setns, unshare,
        // mount) on values prepared before the fork; it allocates nothing.
        unsafe {
            command.pre_exec(move || {
                use nix::mount::{mount, umount2, MntFlags, MsFlags};
                let fd = std::os::fd::BorrowedFd::borrow_raw(netns.as_raw_fd());
                nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET)?;
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)?;
                mount(None::<&str>, "/", None::<&str>, MsFlags::MS_SLAVE | MsFlags::MS_REC, None::<&str>)?;
                umount2("/sys", MntFlags::MNT_DETACH)?;
                mount(Some("sysfs"), "/sys", Some("sysfs"), MsFlags::empty(), None::<&str>)?;
                mount(Some(bpffs.as_path()), "/sys/fs/bpf", None::<&str>, MsFlags::MS_BIND, None::<&str>)?;
                if let Some(state) = var_lib_cni.as_deref() {
                    mount(Some(state), "/var/lib/cni", None::<&str>, MsFlags::MS_BIND, None::<&str>)?;
                }
                Ok(())
            });
        }
        Ok(command)
    }
}

impl CniRuntime {
    /// Fails with the plugin's name and the searched path when a plugin of the list is missing.
    pub fn require_plugins(&self, list: &NetworkConfigList) -> Result<()> {
        list.plugin_types().try_for_each(|plugin| self.plugin_path(plugin).map(drop))
    }

    pub fn plugin_path(&self, plugin: &str) -> Result<PathBuf> {
        self.plugin_dirs
            .iter()
            .map(|dir| dir.join(plugin))
            .find(|path| path.is_file())
            .ok_or_else(|| HarnessError::MissingPlugin { plugin: plugin.to_owned(), searched: self.cni_path() })
    }

    fn cni_path(&self) -> String {
        std::env::join_paths(&self.plugin_dirs).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default()
    }

    /// CNI ADD: runs the chain in order and caches the final result.
    pub fn add(&self, list: &NetworkConfigList, attachment: &Attachment) -> Result<CniResult> {
        let started = Instant::now();
        let mut previous: Option<Value> = None;
        for plugin in &list.plugins {
            let result = self.invoke("ADD", list, plugin, attachment, previous.as_ref())?;
            let result = result.ok_or_else(|| HarnessError::CniResult {
                plugin: plugin_type(plugin).to_owned(),
                detail: "ADD printed no result".into(),
            })?;
            previous = Some(result);
        }
        let raw = previous.expect("a conflist has at least one plugin");
        let ips = parse_ips(&raw, list)?;
        self.store(list, attachment, &raw)?;
        Ok(CniResult { raw, ips, elapsed: started.elapsed() })
    }

    /// CNI CHECK: asks every plugin whether the attachment is still as ADD left it.
    pub fn check(&self, list: &NetworkConfigList, attachment: &Attachment) -> Result<()> {
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
        let failed = |message: String| HarnessError::CniPlugin {
            command: command.to_owned(),
            plugin: plugin_name.to_owned(),
            container: attachment.container_id.clone(),
            message,
        };
        let output = self.exec(command, plugin_name, config.to_string().as_bytes(), &attachment.environment(command))?;
        if !output.success {
            let message = match serde_json::from_str::<PluginError>(&output.stdout) {
                Ok(PluginError { code, msg, details }) => format!(
                    "error code {}: {}{}",
                    code.map_or("?".into(), |c| c.to_string()),
                    msg.unwrap_or_default(),
                    details.map(|d| format!(" ({d})")).unwrap_or_default()
                ),
                Err(_) => format!("{} {}", output.status, output.stderr.trim()),
            };
            return Err(failed(message));
        }
        if output.stdout.trim().is_empty() {
            return Ok(None);
        }
        serde_json::from_str(&output.stdout)
            .map(Some)
            .map_err(|e| HarnessError::CniResult { plugin: plugin_name.to_owned(), detail: format!("{e}: {}", output.stdout) })
    }

    /// Runs plugin `plugin_name` once with `stdin` and exactly the `CNI_*` variables in
    /// `environment` (plus `CNI_PATH`), in the node's view; returns what it printed and how
    /// it exited, whatever that was. An error only when it could not be run at all.
    pub fn exec(&self, command: &str, plugin_name: &str, stdin: &[u8], environment: &[(&str, String)]) -> Result<PluginOutput> {
        let binary = self.plugin_path(plugin_name)?;
        let mut process = match &self.node {
            Some(node) => node.command(&binary)?,
            None => Command::new(&binary),
        };
        process.env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default()).env("CNI_PATH", self.cni_path());
        process.envs(environment.iter().map(|(k, v)| (*k, v.as_str())));
        process.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let failed = |message: String| HarnessError::CniPlugin { command: command.to_owned(), plugin: plugin_name.to_owned(), container: String::new(), message };
        let mut child = process.spawn().map_err(|e| failed(format!("could not start {}: {e}", binary.display())))?;
        // A plugin may exit without reading its config (a broken pipe); what it printed and
        // its exit status say why, as they would to any runtime.
        match child.stdin.take().expect("stdin is piped").write_all(stdin) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(failed(format!("could not write the config to its stdin: {e}"))),
            _ => {}
        }
        let (mut stdout, mut stderr) = (child.stdout.take().expect("stdout is piped"), child.stderr.take().expect("stderr is piped"));
        let reading_stderr = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = std::io::Read::read_to_end(&mut stderr, &mut bytes);
            bytes
        });
        let mut printed = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut printed).map_err(|e| failed(format!("reading its stdout: {e}")))?;
        let complained = reading_stderr.join().unwrap_or_default();
        let (status, usage) = wait_accounted(&child).map_err(|e| failed(format!("waiting for it: {e}")))?;
        *self.usage.lock().unwrap_or_else(|e| e.into_inner()) = self.usage().with(usage);
        Ok(PluginOutput { success: status.success(), status: status.to_string(), stdout: String::from_utf8_lossy(&printed).into_owned(), stderr: String::from_utf8_lossy(&complained).into_owned() })
    }

    /// CPU time and peak memory of every plugin process this runtime has run so far.
    pub fn usage(&self) -> crate::model::ResourceUsage {
        *self.usage.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn cache_path(&self, list: &NetworkConfigList, attachment: &Attachment) -> PathBuf {
        self.cache_dir
            .join("results")
            .join(format!("{}-{}-{}", list.name, attachment.container_id, attachment.ifname))
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
        write().map_err(|e| HarnessError::Command { command: format!("write CNI cache {}", path.display()), detail: e.to_string() })
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
    let ips: Vec<IpConfig> = serde_json::from_value(ips).map_err(|e| HarnessError::CniResult {
        plugin: list.plugins.last().map(plugin_type).unwrap_or("?").to_owned(),
        detail: format!("ips: {e}"),
    })?;
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
        let error = NetworkConfigList::parse(r#"{"cniVersion":"1.0.0","name":"x","plugins":[{"bridge":"b"}]}"#, Path::new("x.conflist"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("x.conflist") && error.contains("plugins[0].type"), "{error}");
    }

    #[test]
    fn a_missing_plugin_names_the_plugin_and_the_path() {
        let runtime = CniRuntime { plugin_dirs: vec!["/nonexistent/cni".into()], cache_dir: "/tmp".into(), node: None, usage: Default::default() };
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
        let list = NetworkConfigList::parse(
            r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"first"},{"type":"second"}]}"#,
            Path::new("n.conflist"),
        )
        .unwrap();
        let runtime = CniRuntime { plugin_dirs: vec![dir.path().into()], cache_dir: dir.path().join("cache"), node: None, usage: Default::default() };
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

    /// CPU and memory are the kernel's account of each plugin process and what it waited
    /// for: a plugin that burns CPU in a child it waits for, and one that holds 96 MiB.
    #[test]
    fn a_plugin_s_cpu_time_and_peak_memory_are_accounted_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let plugins = [
            ("burner", "#!/bin/sh
cat > /dev/null
python3 -c 'import time\nt=time.process_time()\nwhile time.process_time()-t<0.3: pass'
echo '{\"cniVersion\":\"1.0.0\"}'
"),
            ("holder", "#!/usr/bin/env python3
import sys
sys.stdin.read()
held = b'x' * (96 << 20)
print('{\"cniVersion\":\"1.0.0\"}')
"),
        ];
        for (name, script) in plugins {
            let path = dir.path().join(name);
            std::fs::write(&path, script).unwrap();
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        }
        let runtime = CniRuntime { plugin_dirs: vec![dir.path().into()], cache_dir: dir.path().join("cache"), node: None, usage: Default::default() };
        let list = |plugin: &str| NetworkConfigList::parse(&format!(r#"{{"cniVersion":"1.0.0","name":"n","plugins":[{{"type":"{plugin}"}}]}}"#), Path::new("n")).unwrap();
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
        let runtime = CniRuntime { plugin_dirs: vec![dir.path().into()], cache_dir: dir.path().into(), node: None, usage: Default::default() };
        let error = runtime.add(&list, &attachment()).unwrap_err().to_string();
        assert!(error.contains("CNI ADD of plugin `broken`") && error.contains("error code 7: bad config (no bridge)"), "{error}");
    }
}
