//! What the proxy's DaemonSet does on each node (the paper's node initialization, steps 2
//! and 3): put the plugin binary into the node's CNI binary directory and chain the
//! proxy's entry after the CNI's own plugins in the conflist the runtime uses (the first
//! `*.conflist` in name order). Idempotent: a conflist that already has the entry is left.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{ProxyError, Result};

/// Where to install on the node (as mounted into the DaemonSet's container).
#[derive(Debug, Clone)]
pub struct InstallOptions {
    pub bin_dir: PathBuf,
    pub conf_dir: PathBuf,
    /// The proxy's conflist entry, e.g. `{"type": "tsn-metadata-proxy", "nic": "eth0"}`.
    pub entry: Value,
}

impl InstallOptions {
    /// `install --bin-dir D --conf-dir D --entry JSON`.
    pub fn from_args(args: &[String]) -> Result<Self> {
        let value = |flag: &str| {
            args.iter()
                .position(|a| a == flag)
                .and_then(|i| args.get(i + 1))
                .cloned()
                .ok_or_else(|| ProxyError::Config(format!("install: expected {flag} <value> (usage: install --bin-dir DIR --conf-dir DIR --entry JSON)")))
        };
        let entry: Value = serde_json::from_str(&value("--entry")?).map_err(|e| ProxyError::Config(format!("install --entry: not JSON: {e}")))?;
        if entry.get("type").and_then(Value::as_str).is_none() {
            return Err(ProxyError::Config("install --entry: expected an object with the plugin's `type`".into()));
        }
        Ok(Self { bin_dir: value("--bin-dir")?.into(), conf_dir: value("--conf-dir")?.into(), entry })
    }
}

/// Copies `binary` in as the entry's type and chains the entry; the conflist it changed.
pub fn install(binary: &Path, options: &InstallOptions) -> Result<PathBuf> {
    let plugin = options.entry["type"].as_str().unwrap_or_default();
    let target = options.bin_dir.join(plugin);
    write_atomically(
        &target,
        &std::fs::read(binary).map_err(|e| ProxyError::Datapath { what: format!("read {}", binary.display()), detail: e.to_string() })?,
        0o755,
    )?;
    let conflist = first_conflist(&options.conf_dir)?;
    let text = std::fs::read_to_string(&conflist).map_err(|e| ProxyError::Datapath { what: format!("read {}", conflist.display()), detail: e.to_string() })?;
    let mut list: Value = serde_json::from_str(&text).map_err(|e| ProxyError::Config(format!("{}: not JSON: {e}", conflist.display())))?;
    let plugins = list
        .get_mut("plugins")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| ProxyError::Config(format!("{}: expected a `plugins` list", conflist.display())))?;
    if !plugins.iter().any(|p| p["type"] == plugin) {
        plugins.push(options.entry.clone());
        write_atomically(&conflist, serde_json::to_string_pretty(&list).expect("JSON").as_bytes(), 0o644)?;
    }
    Ok(conflist)
}

/// The conflist a runtime picks: the first `*.conflist` by name.
fn first_conflist(dir: &Path) -> Result<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| ProxyError::Datapath { what: format!("list {}", dir.display()), detail: e.to_string() })?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "conflist"))
        .collect();
    found.sort();
    found.into_iter().next().ok_or_else(|| ProxyError::Config(format!("{}: no *.conflist yet (the CNI writes it when its agent starts)", dir.display())))
}

fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let partial = path.with_extension("partial");
    let failed = |e: std::io::Error| ProxyError::Datapath { what: format!("write {}", path.display()), detail: e.to_string() };
    std::fs::write(&partial, bytes).map_err(failed)?;
    std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(mode)).map_err(failed)?;
    std::fs::rename(&partial, path).map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_entry_is_chained_after_the_cni_s_plugins_once() {
        let node = tempfile::tempdir().unwrap();
        let (bin, conf) = (node.path().join("bin"), node.path().join("net.d"));
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&conf).unwrap();
        std::fs::write(conf.join("10-flannel.conflist"), r#"{"cniVersion":"0.3.1","name":"cbr0","plugins":[{"type":"flannel"},{"type":"portmap"}]}"#).unwrap();
        std::fs::write(conf.join("99-other.conflist"), r#"{"plugins":[]}"#).unwrap();
        let binary = node.path().join("proxy");
        std::fs::write(&binary, b"binary").unwrap();
        let options = InstallOptions::from_args(
            &["--bin-dir", bin.to_str().unwrap(), "--conf-dir", conf.to_str().unwrap(), "--entry", r#"{"type":"tsn-metadata-proxy","nic":"eth0"}"#]
                .map(str::to_owned),
        )
        .unwrap();
        for _ in 0..2 {
            assert_eq!(install(&binary, &options).unwrap(), conf.join("10-flannel.conflist"));
        }
        let list: Value = serde_json::from_str(&std::fs::read_to_string(conf.join("10-flannel.conflist")).unwrap()).unwrap();
        let types: Vec<&str> = list["plugins"].as_array().unwrap().iter().map(|p| p["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["flannel", "portmap", "tsn-metadata-proxy"]);
        assert_eq!(std::fs::read(bin.join("tsn-metadata-proxy")).unwrap(), b"binary");
    }

    #[test]
    fn a_node_without_a_conflist_yet_is_named() {
        let node = tempfile::tempdir().unwrap();
        let options = InstallOptions { bin_dir: node.path().into(), conf_dir: node.path().into(), entry: serde_json::json!({"type": "p"}) };
        let binary = node.path().join("b");
        std::fs::write(&binary, b"").unwrap();
        assert!(install(&binary, &options).unwrap_err().to_string().contains("no *.conflist yet"));
    }
}
