//! The proxy's network configuration (its entry in a conflist) and the CNI environment.

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;

use crate::error::{ProxyError, Result};

/// Where the priority is restored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Hook {
    /// tc egress of the node's NIC, after forwarding: where a restore survives.
    #[default]
    NicEgress,
    /// tc ingress of the pod's host-side veth: before forwarding, which sets the priority
    /// from the IP TOS again (LAB-NOTES). Too early; kept so the suites can prove they
    /// catch it.
    PodVethIngress,
}

/// Deliberate breakages, for the suites' self-tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// Nothing saves the priority in the pod.
    NoSave,
    /// Nothing restores it at the NIC.
    NoRestore,
    /// Priorities are also kept in a node-wide map that only a tagged packet reaching the
    /// NIC clears: traffic that never reaches it leaks its priority into later packets.
    KeepPerPacketState,
    /// The paper's map design gone wrong: every packet's priority saved under its address
    /// (skb) without overwriting an entry, restored and removed at the NIC, entries older
    /// than 50 ms cleaned up (less than the lab's time between two talks, as the real
    /// proxy's second was on kind). A packet that never reaches the NIC lifts the next one
    /// built at its address within that time.
    KeyByPacketAddress,
    /// The restorer hands priority 1 back as 2 and 2 as 1: a wrong priority map.
    SwapPriorities,
    /// The restorer drops the packet's delivery time (SO_TXTIME) as it restores the priority.
    ClearDeliveryTime,
    /// The restorer gives every best-effort (untagged) IPv4 packet a delivery time no
    /// talker set.
    StampBestEffort,
    /// The programs are attached with tcx's older interface (a program attachment, not a
    /// link), which only an explicit detach removes: DEL removes the proxy's pins and
    /// believes that detaches them, so the NIC's restorer stays after the last pod goes.
    /// Neither `tc qdisc` nor `tc filter` shows it; the kernel's BPF query does.
    AttachWithoutLinks,
}

/// The proxy's entry in the conflist, as the runtime hands it over (with `prevResult`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConf {
    pub cni_version: String,
    #[serde(default)]
    pub name: String,
    /// The node's (TSN) NIC, whose qdisc must see the pod's priority.
    pub nic: Option<String>,
    #[serde(default)]
    pub hook: Hook,
    /// The node's BPF filesystem, where the proxy pins its links.
    #[serde(default = "default_bpffs")]
    pub bpffs: PathBuf,
    #[serde(default)]
    pub faults: Vec<Fault>,
    pub prev_result: Option<Value>,
}

fn default_bpffs() -> PathBuf {
    "/sys/fs/bpf".into()
}

impl NetConf {
    /// The configuration on stdin: not JSON is a decoding error (code 6), a `cniVersion` the
    /// proxy does not support an incompatible version (code 1), a bad field a config error.
    pub fn parse(stdin: &str) -> Result<Self> {
        let value: Value = serde_json::from_str(stdin).map_err(|e| ProxyError::Decoding(format!("the network configuration on stdin is not JSON: {e}")))?;
        if let Some(version) = value.get("cniVersion").and_then(Value::as_str) {
            if !crate::SUPPORTED_VERSIONS.contains(&version) {
                return Err(ProxyError::Unsupported(format!("cniVersion {version}: expected one of {}", crate::SUPPORTED_VERSIONS.join(", "))));
            }
        }
        serde_json::from_value(value).map_err(|e| ProxyError::Config(format!("the network configuration on stdin: {e}")))
    }

    /// The NIC, or an error naming the field.
    pub fn nic(&self) -> Result<&str> {
        self.nic
            .as_deref()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| ProxyError::Config("field `nic`: expected the name of the node's NIC whose qdisc schedules by priority (e.g. \"eth0\")".into()))
    }

    pub fn has(&self, fault: Fault) -> bool {
        self.faults.contains(&fault)
    }

    /// The host side of the pod's veth, from the main plugin's result: the interface with
    /// no sandbox that is not a bridge.
    pub fn host_side_interface(&self) -> Result<String> {
        let interfaces = self.prev_result.as_ref().and_then(|r| r.get("interfaces")).and_then(Value::as_array);
        interfaces
            .into_iter()
            .flatten()
            .filter(|i| i.get("sandbox").and_then(Value::as_str).is_none_or(str::is_empty))
            .filter_map(|i| i.get("name").and_then(Value::as_str))
            .find(|name| !std::path::Path::new("/sys/class/net").join(name).join("bridge").exists())
            .map(str::to_owned)
            .ok_or_else(|| {
                ProxyError::Config(
                    "hook `pod-veth-ingress`: prevResult.interfaces names no host-side veth (an interface without a sandbox that is not a bridge)".into(),
                )
            })
    }
}

/// The `CNI_*` environment of one invocation.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub command: String,
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
}

impl Invocation {
    pub fn from_env() -> Result<Self> {
        let var = |name: &str| std::env::var(name).map_err(|_| ProxyError::Environment(format!("{name} is not set: run me as a CNI runtime would")));
        let command = var("CNI_COMMAND")?;
        if command == "VERSION" {
            return Ok(Self { command, container_id: String::new(), netns: String::new(), ifname: String::new() });
        }
        let netns = if command == "DEL" { std::env::var("CNI_NETNS").unwrap_or_default() } else { var("CNI_NETNS")? };
        Ok(Self { command, container_id: var("CNI_CONTAINERID")?, netns, ifname: var("CNI_IFNAME")? })
    }

    /// The pod's attachment, as a name for pins: `<container id>-<interface>`.
    pub fn attachment(&self) -> String {
        format!("{}-{}", self.container_id, self.ifname)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_paper_s_config_needs_only_the_nic() {
        let conf = NetConf::parse(r#"{"cniVersion":"1.0.0","name":"k8s","type":"tsn-metadata-proxy","nic":"eth0"}"#).unwrap();
        assert_eq!((conf.nic().unwrap(), conf.hook, conf.bpffs.to_str().unwrap()), ("eth0", Hook::NicEgress, "/sys/fs/bpf"));
    }

    #[test]
    fn a_missing_nic_and_an_unknown_hook_are_named() {
        assert_eq!(NetConf::parse("{not json").unwrap_err().code(), 6, "decoding");
        assert_eq!(NetConf::parse(r#"{"cniVersion":"99.0.0","nic":"eth0"}"#).unwrap_err().code(), 1, "incompatible version");
        let conf = NetConf::parse(r#"{"cniVersion":"1.0.0","type":"tsn-metadata-proxy"}"#).unwrap();
        assert!(conf.nic().unwrap_err().to_string().contains("field `nic`"));
        let error = NetConf::parse(r#"{"cniVersion":"1.0.0","nic":"eth0","hook":"nic-ingress"}"#).unwrap_err().to_string();
        assert!(error.contains("nic-ingress") && error.contains("nic-egress") && error.contains("pod-veth-ingress"), "{error}");
    }

    #[test]
    fn the_host_side_veth_is_the_unsandboxed_interface() {
        let conf =
            NetConf::parse(r#"{"cniVersion":"1.0.0","nic":"eth0","prevResult":{"interfaces":[{"name":"veth1a2b"},{"name":"eth0","sandbox":"/run/netns/p"}]}}"#)
                .unwrap();
        assert_eq!(conf.host_side_interface().unwrap(), "veth1a2b");
    }
}
