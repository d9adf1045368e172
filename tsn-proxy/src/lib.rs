//! The reference TSN metadata proxy: a chained CNI plugin that carries a pod's
//! `SO_PRIORITY` to the node NIC's qdisc (the seeds' paper, section 4). It runs after the
//! main plugin: ADD attaches a saver on the pod interface's egress and a restorer on the
//! NIC's egress (after forwarding), CHECK verifies both, DEL removes what ADD made.
//!
//! Its conflist entry: `{"type": "tsn-metadata-proxy", "nic": "eth0"}`, with optional
//! `"hook": "nic-egress" | "pod-veth-ingress"`, `"bpffs": "/sys/fs/bpf"` and, for the
//! suites' self-tests only, `"faults": ["no-save" | "no-restore" | "keep-per-packet-state" | "key-by-packet-address" | "swap-priorities" | "clear-delivery-time" | "stamp-best-effort" | "attach-without-links"]`.

pub mod config;
pub mod datapath;
pub mod error;
pub mod install;

use std::io::Read;
use std::process::ExitCode;

use config::{Invocation, NetConf};
use error::{ProxyError, Result};

/// The CNI spec versions this plugin speaks.
pub const SUPPORTED_VERSIONS: [&str; 3] = ["0.4.0", "1.0.0", "1.1.0"];

/// The plugin's `main`: one CNI command, its result or error on stdout.
pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "install") {
        return install_on_node(&args[1..]);
    }
    if std::env::var_os("CNI_COMMAND").is_none() {
        // As the reference plugins do when run by hand: say what this is.
        eprintln!("CNI tsn-metadata-proxy plugin v{} (the cni-conformance reference TSN metadata proxy)", env!("CARGO_PKG_VERSION"));
        return ExitCode::FAILURE;
    }
    let mut stdin = String::new();
    let invocation = Invocation::from_env();
    if invocation.as_ref().is_ok_and(|i| i.command != "VERSION") {
        let _ = std::io::stdin().read_to_string(&mut stdin);
    }
    let version = serde_json::from_str::<serde_json::Value>(&stdin)
        .ok()
        .and_then(|v| v.get("cniVersion").and_then(|v| v.as_str()).map(str::to_owned))
        .unwrap_or_else(|| "1.0.0".into());
    match invocation.and_then(|cni| run(&cni, &stdin)) {
        Ok(Some(output)) => {
            println!("{output}");
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(error) => {
            println!("{}", serde_json::json!({ "cniVersion": version, "code": error.code(), "msg": error.to_string() }));
            ExitCode::FAILURE
        }
    }
}

/// Runs one command; what to print on success.
pub fn run(cni: &Invocation, stdin: &str) -> Result<Option<serde_json::Value>> {
    match cni.command.as_str() {
        "VERSION" => Ok(Some(serde_json::json!({ "cniVersion": "1.0.0", "supportedVersions": SUPPORTED_VERSIONS }))),
        "ADD" => {
            let conf = NetConf::parse(stdin)?;
            let mut result = conf.prev_result.clone().ok_or_else(|| {
                ProxyError::Config("prevResult: the proxy is a chained plugin and runs after the main plugin, whose result it passes on".into())
            })?;
            datapath::add(&conf, cni)?;
            result["cniVersion"] = serde_json::Value::String(conf.cni_version);
            Ok(Some(result))
        }
        "CHECK" => datapath::check(&NetConf::parse(stdin)?, cni).map(|()| None),
        "DEL" => datapath::del(&NetConf::parse(stdin)?, cni).map(|()| None),
        "GC" | "STATUS" => Ok(None),
        other => Err(ProxyError::Unsupported(format!("CNI_COMMAND {other}: expected ADD, CHECK, DEL or VERSION"))),
    }
}

/// `install ...`: what the DaemonSet's container runs on each node; then it stays, as a
/// DaemonSet's pod does, so the rollout shows every node installed.
fn install_on_node(args: &[String]) -> ExitCode {
    let installed = install::InstallOptions::from_args(args).and_then(|options| {
        let binary = std::env::current_exe().map_err(|e| ProxyError::Datapath { what: "find my own binary".into(), detail: e.to_string() })?;
        install::install(&binary, &options)
    });
    match installed {
        Ok(conflist) => {
            println!("tsn-metadata-proxy: chained into {}", conflist.display());
            loop {
                std::thread::park();
            }
        }
        Err(error) => {
            eprintln!("tsn-metadata-proxy install: {error}");
            ExitCode::FAILURE
        }
    }
}
