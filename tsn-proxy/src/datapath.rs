//! What the proxy attaches, where, and how it finds it again: tcx links pinned in the
//! node's BPF filesystem under `tsn-metadata-proxy/`.
//!
//! - `save-<container>-<ifname>`: the saver on the pod interface's egress (in the pod);
//! - `restore-nic-<nic>`: the restorer on the NIC's egress, shared by every pod of the
//!   node, attached by the first ADD and removed by the DEL of the last pod;
//! - `restore-<container>-<ifname>`: the restorer on the pod's host-side veth ingress,
//!   with `hook: pod-veth-ingress`;
//! - `pods/<container>-<ifname>`: one directory per pod the proxy was added to;
//! - `programs/<build>/save_prio`, `programs/<build>/restore_prio`: the programs, loaded
//!   (and verified) by the node's first ADD and pinned, as a production proxy's agent loads
//!   them once per node; every later ADD attaches the pinned ones. `<build>` names the BPF
//!   object (a hash of its bytes) and the self-test faults built into it, so another proxy
//!   version or fault set on the node loads its own;
//! - `pending`: the self-test fault `keep-per-packet-state`'s map;
//! - `by_address`: the self-test fault `key-by-packet-address`'s map.
//!
//! Links hold their programs (and programs their maps), so removing the pins is all it
//! takes to leave nothing behind; unmounting the bpffs does the same for a killed run.

use std::fs::File;
use std::path::{Path, PathBuf};

use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::tc::TcAttachOptions;
use aya::programs::{LinkOrder, SchedClassifier, TcAttachType};
use aya::{Ebpf, EbpfLoader};
use nix::fcntl::{Flock, FlockArg};
use nix::sched::CloneFlags;

use crate::config::{Fault, Hook, Invocation, NetConf};
use crate::error::{ProxyError, Result};

static PROXY: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tsn_metadata_proxy.o"));
static PROXY_KEEPING_STATE: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tsn_metadata_proxy_keeping_state.o"));
static PROXY_KEYED_BY_ADDRESS: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tsn_metadata_proxy_keyed_by_address.o"));

/// The programs' names, as the kernel lists them on an interface.
pub const SAVER: &str = "save_prio";
pub const RESTORER: &str = "restore_prio";
/// The directory of the proxy's pins in the node's bpffs.
pub const PIN_DIRECTORY: &str = "tsn-metadata-proxy";
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// The proxy's pins on one node, held under an exclusive lock while a command runs.
pub struct NodePins {
    dir: PathBuf,
    _lock: Flock<File>,
}

impl NodePins {
    /// Opens (creating them if `create`) the proxy's pins in `bpffs`; `None` when there are none.
    pub fn open(bpffs: &Path, create: bool) -> Result<Option<Self>> {
        let is_bpffs = nix::sys::statfs::statfs(bpffs).map(|s| s.filesystem_type().0 == BPF_FS_MAGIC).unwrap_or(false);
        if !is_bpffs {
            return match create {
                true => Err(ProxyError::Config(format!(
                    "field `bpffs`: {} is not a BPF filesystem; mount one there (`mount -t bpf bpf {}`) or name the node's in the config",
                    bpffs.display(),
                    bpffs.display()
                ))),
                false => Ok(None),
            };
        }
        let dir = bpffs.join(PIN_DIRECTORY);
        if !dir.exists() && !create {
            return Ok(None);
        }
        std::fs::create_dir_all(dir.join("pods")).map_err(|e| ProxyError::Datapath { what: format!("create {}", dir.display()), detail: e.to_string() })?;
        let handle = File::open(&dir).map_err(|e| ProxyError::Datapath { what: format!("open {}", dir.display()), detail: e.to_string() })?;
        let lock = Flock::lock(handle, FlockArg::LockExclusive)
            .map_err(|(_, e)| ProxyError::Datapath { what: format!("lock {}", dir.display()), detail: e.to_string() })?;
        Ok(Some(Self { dir, _lock: lock }))
    }

    fn saver(&self, attachment: &str) -> PathBuf {
        self.dir.join(format!("save-{attachment}"))
    }

    fn pod_restorer(&self, attachment: &str) -> PathBuf {
        self.dir.join(format!("restore-{attachment}"))
    }

    fn nic_restorer(&self, nic: &str) -> PathBuf {
        self.dir.join(format!("restore-nic-{nic}"))
    }

    fn pod_record(&self, attachment: &str) -> PathBuf {
        self.dir.join("pods").join(attachment)
    }

    fn pending(&self) -> PathBuf {
        self.dir.join("pending")
    }

    fn by_address(&self) -> PathBuf {
        self.dir.join("by_address")
    }

    fn programs(&self) -> PathBuf {
        self.dir.join("programs")
    }

    fn pods_left(&self) -> usize {
        std::fs::read_dir(self.dir.join("pods")).map(|d| d.count()).unwrap_or(0)
    }
}

/// ADD: the saver in the pod, the restorer where the hook says, the pod's record.
pub fn add(conf: &NetConf, cni: &Invocation) -> Result<()> {
    let nic = conf.nic()?;
    let pins = NodePins::open(&conf.bpffs, true)?.expect("created");
    let attachment = cni.attachment();
    let programs = loaded_once(conf, &pins)?;
    if conf.has(Fault::AttachWithoutLinks) {
        return attach_without_links(conf, cni, &programs, &pins, &attachment);
    }
    if !conf.has(Fault::NoRestore) {
        let mut restorer = pinned_program(&programs, RESTORER)?;
        match conf.hook {
            Hook::NicEgress if !pins.nic_restorer(nic).exists() => attach_pinned(&mut restorer, nic, TcAttachType::Egress, &pins.nic_restorer(nic))?,
            Hook::NicEgress => {}
            Hook::PodVethIngress => attach_pinned(&mut restorer, &conf.host_side_interface()?, TcAttachType::Ingress, &pins.pod_restorer(&attachment))?,
        }
    }
    if !conf.has(Fault::NoSave) {
        let mut saver = pinned_program(&programs, SAVER)?;
        in_netns(&cni.netns, || attach_pinned(&mut saver, &cni.ifname, TcAttachType::Egress, &pins.saver(&attachment)))?;
    }
    let record = pins.pod_record(&attachment);
    std::fs::create_dir_all(&record).map_err(|e| ProxyError::Datapath { what: format!("create {}", record.display()), detail: e.to_string() })
}

/// The fault `attach-without-links`: the saver in the pod and the restorer on the NIC (once)
/// attached as programs, not links, so nothing is pinned for them and removing pins never
/// detaches them; the pod's record as usual.
fn attach_without_links(conf: &NetConf, cni: &Invocation, programs: &Path, pins: &NodePins, attachment: &str) -> Result<()> {
    let nic = conf.nic()?;
    if !attached(nic, TcAttachType::Egress)?.iter().any(|(_, name)| name == RESTORER) {
        attach_program(&pinned_program(programs, RESTORER)?, nic, TcAttachType::Egress)?;
    }
    let saver = pinned_program(programs, SAVER)?;
    in_netns(&cni.netns, || attach_program(&saver, &cni.ifname, TcAttachType::Egress))?;
    let record = pins.pod_record(attachment);
    std::fs::create_dir_all(&record).map_err(|e| ProxyError::Datapath { what: format!("create {}", record.display()), detail: e.to_string() })
}

/// Attaches `program` to `interface`'s tcx hook with `BPF_PROG_ATTACH` (no link: aya attaches
/// tcx only through links), as a proxy written against the first tcx interface would.
fn attach_program(program: &SchedClassifier, interface: &str, direction: TcAttachType) -> Result<()> {
    use std::os::fd::{AsFd, AsRawFd};
    /// `union bpf_attr` for BPF_PROG_ATTACH (include/uapi/linux/bpf.h, Linux 6.6+).
    #[repr(C)]
    struct ProgAttach {
        target_ifindex: u32,
        attach_bpf_fd: u32,
        attach_type: u32,
        attach_flags: u32,
        replace_bpf_fd: u32,
        relative_fd: u32,
        expected_revision: u64,
    }
    const BPF_PROG_ATTACH: nix::libc::c_long = 8;
    const BPF_TCX_INGRESS: u32 = 46;
    const BPF_TCX_EGRESS: u32 = 47;
    let what = format!("attach {} to {interface} {direction:?} without a link", program_name(program));
    let failed = |detail: String| ProxyError::Datapath { what: what.clone(), detail };
    let ifindex = nix::net::if_::if_nametoindex(interface).map_err(|e| failed(e.to_string()))?;
    let fd = program.fd().map_err(|e| failed(e.to_string()))?.as_fd().as_raw_fd();
    let attach_type = match direction {
        TcAttachType::Ingress => BPF_TCX_INGRESS,
        _ => BPF_TCX_EGRESS,
    };
    let attr =
        ProgAttach { target_ifindex: ifindex, attach_bpf_fd: fd as u32, attach_type, attach_flags: 0, replace_bpf_fd: 0, relative_fd: 0, expected_revision: 0 };
    // SAFETY: a pointer to a live, fully initialised bpf_attr prefix and its size; the
    // kernel zero-fills the rest.
    let done = unsafe { nix::libc::syscall(nix::libc::SYS_bpf, BPF_PROG_ATTACH, &attr as *const ProgAttach, std::mem::size_of::<ProgAttach>()) };
    match done {
        0 => Ok(()),
        _ => Err(failed(std::io::Error::last_os_error().to_string())),
    }
}

/// CHECK: the pod's record, and each program ADD attached, still attached where it was.
pub fn check(conf: &NetConf, cni: &Invocation) -> Result<()> {
    let nic = conf.nic()?;
    let missing = |what: String| ProxyError::NotAsAddedIt(what);
    let pins = NodePins::open(&conf.bpffs, false)?.ok_or_else(|| missing(format!("no {PIN_DIRECTORY} pins in {}", conf.bpffs.display())))?;
    let attachment = cni.attachment();
    if !pins.pod_record(&attachment).exists() {
        return Err(missing(format!("the proxy was never added to {attachment}")));
    }
    if !conf.has(Fault::NoSave) {
        in_netns(&cni.netns, || expect_attached(SAVER, &cni.ifname, TcAttachType::Egress))?;
    }
    if !conf.has(Fault::NoRestore) {
        match conf.hook {
            Hook::NicEgress => expect_attached(RESTORER, nic, TcAttachType::Egress)?,
            Hook::PodVethIngress => expect_attached(RESTORER, &conf.host_side_interface()?, TcAttachType::Ingress)?,
        }
    }
    Ok(())
}

/// DEL: what ADD made for this pod; the shared restorer and map with the node's last pod.
/// Whatever is already gone is fine.
pub fn del(conf: &NetConf, cni: &Invocation) -> Result<()> {
    let Some(pins) = NodePins::open(&conf.bpffs, false)? else { return Ok(()) };
    let attachment = cni.attachment();
    remove(&pins.saver(&attachment))?;
    remove(&pins.pod_restorer(&attachment))?;
    remove(&pins.pod_record(&attachment))?;
    if pins.pods_left() == 0 {
        let shared = std::fs::read_dir(&pins.dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("restore-nic-")));
        for pin in shared.chain([pins.pending(), pins.by_address()]).collect::<Vec<_>>() {
            remove(&pin)?;
        }
        remove_tree(&pins.programs())?;
        remove(&pins.dir.join("pods"))?;
        // Anything else in it (a pin of another proxy version) keeps the directory.
        let _ = std::fs::remove_dir(&pins.dir);
    }
    Ok(())
}

/// What one configuration loads: its BPF object, the map the object's self-test fault
/// keeps on the node (pinned by name), and the faults' switches (globals).
struct Build {
    object: &'static [u8],
    node_map: Option<(&'static str, PathBuf)>,
    switches: [(&'static str, u32); 3],
}

impl Build {
    fn of(conf: &NetConf, pins: &NodePins) -> Self {
        let (object, node_map) = match (conf.has(Fault::KeepPerPacketState), conf.has(Fault::KeyByPacketAddress)) {
            (true, _) => (PROXY_KEEPING_STATE, Some(("pending", pins.pending()))),
            (false, true) => (PROXY_KEYED_BY_ADDRESS, Some(("by_address", pins.by_address()))),
            (false, false) => (PROXY, None),
        };
        let switches =
            [("swap_priorities", Fault::SwapPriorities), ("clear_delivery_time", Fault::ClearDeliveryTime), ("stamp_best_effort", Fault::StampBestEffort)];
        Self { object, node_map, switches: switches.map(|(global, fault)| (global, u32::from(conf.has(fault)))) }
    }

    /// Its programs' directory on the node: `<hash of the object>-<switches>`.
    fn name(&self) -> String {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.object.hash(&mut hasher);
        let switches: String = self.switches.iter().map(|(_, on)| on.to_string()).collect();
        format!("{:016x}-{switches}", hasher.finish())
    }
}

/// The directory of this configuration's programs on the node, loaded, verified and pinned
/// by the first ADD that needed them; later ADDs only open the pins.
fn loaded_once(conf: &NetConf, pins: &NodePins) -> Result<PathBuf> {
    let build = Build::of(conf, pins);
    let dir = pins.programs().join(build.name());
    if [SAVER, RESTORER].iter().all(|name| dir.join(name).exists()) {
        return Ok(dir);
    }
    let mut loader = EbpfLoader::new();
    for (global, on) in &build.switches {
        loader.override_global(global, on, true);
    }
    if let Some((map, pin)) = &build.node_map {
        loader.map_pin_path(map, pin);
    }
    let mut ebpf = loader.load(build.object).map_err(|e| ProxyError::Datapath { what: "load the proxy's BPF object".into(), detail: e.to_string() })?;
    std::fs::create_dir_all(&dir).map_err(|e| ProxyError::Datapath { what: format!("create {}", dir.display()), detail: e.to_string() })?;
    for name in [SAVER, RESTORER] {
        let program = program(&mut ebpf, name)?;
        let pin = dir.join(name);
        remove(&pin)?;
        program.pin(&pin).map_err(|e| ProxyError::Datapath { what: format!("pin program {name} at {}", pin.display()), detail: e.to_string() })?;
    }
    Ok(dir)
}

/// A program the node's first ADD pinned in `programs`.
fn pinned_program(programs: &Path, name: &str) -> Result<SchedClassifier> {
    let pin = programs.join(name);
    SchedClassifier::from_pin(&pin)
        .map_err(|e| ProxyError::Datapath { what: format!("open program {name} pinned at {}", pin.display()), detail: e.to_string() })
}

fn program<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut SchedClassifier> {
    let program: &mut SchedClassifier = ebpf
        .program_mut(name)
        .ok_or_else(|| ProxyError::Datapath { what: format!("find program {name}"), detail: "not in the BPF object".into() })?
        .try_into()
        .map_err(|e: aya::programs::ProgramError| ProxyError::Datapath { what: format!("program {name}"), detail: e.to_string() })?;
    program.load().map_err(|e| ProxyError::Datapath { what: format!("load program {name}"), detail: verifier_detail(&e) })?;
    Ok(program)
}

fn verifier_detail(error: &aya::programs::ProgramError) -> String {
    match error {
        aya::programs::ProgramError::LoadError { io_error, verifier_log } => format!("{io_error}: {verifier_log}"),
        other => other.to_string(),
    }
}

/// Attaches `program` as a tcx link on `interface` (in the current network namespace) and
/// pins the link at `pin`, replacing a stale pin of the same name.
fn attach_pinned(program: &mut SchedClassifier, interface: &str, direction: TcAttachType, pin: &Path) -> Result<()> {
    let what = format!("attach {} to {interface} {direction:?} and pin it at {}", program_name(program), pin.display());
    remove(pin)?;
    let id = program
        .attach_with_options(interface, direction, TcAttachOptions::TcxOrder(LinkOrder::default()))
        .map_err(|e| ProxyError::Datapath { what: what.clone(), detail: e.to_string() })?;
    let link = program.take_link(id).map_err(|e| ProxyError::Datapath { what: what.clone(), detail: e.to_string() })?;
    let link: FdLink = link.try_into().map_err(|e: aya::programs::links::LinkError| ProxyError::Datapath { what: what.clone(), detail: e.to_string() })?;
    let pinned: PinnedLink = link.pin(pin).map_err(|e| ProxyError::Datapath { what, detail: e.to_string() })?;
    drop(pinned);
    Ok(())
}

fn program_name(program: &SchedClassifier) -> String {
    program.info().ok().and_then(|i| i.name_as_str().map(str::to_owned)).unwrap_or_else(|| "program".into())
}

/// The programs (id, name) attached as tcx links to `interface` in `direction`, in the
/// current network namespace.
fn attached(interface: &str, direction: TcAttachType) -> Result<Vec<(u32, String)>> {
    let (_, programs) = SchedClassifier::query_tcx(interface, direction)
        .map_err(|e| ProxyError::NotAsAddedIt(format!("{interface} {direction:?}: cannot list its programs: {e}")))?;
    Ok(programs.iter().map(|p| (p.id(), p.name_as_str().unwrap_or_default().to_owned())).collect())
}

/// The same in the network namespace at `netns` (a path such as /run/netns/<name>).
pub fn attached_in(netns: &str, interface: &str, direction: TcAttachType) -> Result<Vec<(u32, String)>> {
    in_netns(netns, || attached(interface, direction))
}

/// Fails unless a program named `name` is attached to `interface` in `direction`.
fn expect_attached(name: &str, interface: &str, direction: TcAttachType) -> Result<()> {
    let names: Vec<String> = attached(interface, direction)?.into_iter().map(|(_, name)| name).collect();
    match names.iter().any(|n| n == name) {
        true => Ok(()),
        false => Err(ProxyError::NotAsAddedIt(format!("{name} is not attached to {interface} {direction:?} (attached: [{}])", names.join(", ")))),
    }
}

fn remove_tree(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(ProxyError::Datapath { what: format!("remove {}", dir.display()), detail: e.to_string() }),
        _ => Ok(()),
    }
}

fn remove(pin: &Path) -> Result<()> {
    let removed = if pin.is_dir() { std::fs::remove_dir(pin) } else { std::fs::remove_file(pin) };
    match removed {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(ProxyError::Datapath { what: format!("remove {}", pin.display()), detail: e.to_string() }),
        _ => Ok(()),
    }
}

/// Runs `work` inside the network namespace at `netns`, then returns to this one.
fn in_netns<T>(netns: &str, work: impl FnOnce() -> Result<T>) -> Result<T> {
    let open = |path: &str| File::open(path).map_err(|e| ProxyError::Datapath { what: format!("open network namespace {path}"), detail: e.to_string() });
    let (home, pod) = (open("/proc/thread-self/ns/net")?, open(netns)?);
    nix::sched::setns(&pod, CloneFlags::CLONE_NEWNET)
        .map_err(|e| ProxyError::Datapath { what: format!("enter network namespace {netns}"), detail: e.to_string() })?;
    let result = work();
    nix::sched::setns(&home, CloneFlags::CLONE_NEWNET)
        .map_err(|e| ProxyError::Datapath { what: "return to the node's network namespace".into(), detail: e.to_string() })?;
    result
}
