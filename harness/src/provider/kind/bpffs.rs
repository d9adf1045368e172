//! The BPF filesystem the nodes of one kind cluster share (profile `bpffs: shared`): a
//! directory of the cluster's own in the Docker host's bpffs, which Docker makes when it
//! binds it into each node (kind's `extraMounts` are `docker run --volume`, kind
//! `pkg/cluster/internal/providers/docker/provision.go`, `generateMountBindings`), and which
//! the run removes with the cluster. Never the host's `/sys/fs/bpf` itself, where other
//! programs pin theirs and which a run would otherwise leave its plugins' pins in.

use std::time::Duration;

use crate::provider::cli::CliStep;
use crate::tools::NETTOOLS_IMAGE;

/// Where the Docker host has its BPF filesystem.
pub const HOST_BPFFS: &str = "/sys/fs/bpf";

/// Stands for the cluster's name in a rendered kind config, whose text names the cluster
/// (a kept cluster is named by a digest of it).
pub const CLUSTER_PLACEHOLDER: &str = "{cluster}";

/// The cluster's directory in the host's bpffs (`host_root`, [`HOST_BPFFS`] but in tests).
pub fn of_cluster(host_root: &str, cluster: &str) -> String {
    format!("{host_root}/{cluster}")
}

/// Fails, saying what to do, unless `host_root` on the Docker host is a BPF filesystem (by
/// its type, as `stat -f` reads it: a directory of sysfs or a tmpfs mounted there is none),
/// read from a helper container, so it holds with a remote Docker host too.
pub fn check_step(host_root: &str, timeout: Duration) -> CliStep {
    let script = format!(
        "t=$(stat -f -c %T /host-bpf); [ \"$t\" = bpf_fs ] || {{ echo \"{host_root} on the Docker host is $t, not a BPF filesystem, and the profile's nodes share one there (bpffs: shared): mount it on the Docker host (sudo mount -t bpf bpf {host_root})\" >&2; exit 1; }}"
    );
    CliStep::new(
        format!("checking that the Docker host's {host_root} is a BPF filesystem"),
        "docker",
        ["run", "--rm", "--volume", &format!("{host_root}:/host-bpf"), NETTOOLS_IMAGE, "sh", "-c", &script],
        timeout,
    )
}

/// Removes the cluster's directory from the host's bpffs, with whatever its plugins pinned
/// there; nothing when it is not there.
pub fn remove_step(host_root: &str, cluster: &str, timeout: Duration) -> CliStep {
    CliStep::new(
        format!("removing {} (the BPF filesystem the nodes of {cluster} shared)", of_cluster(host_root, cluster)),
        "docker",
        ["run", "--rm", "--volume", &format!("{host_root}:/host-bpf"), NETTOOLS_IMAGE, "rm", "-rf", &format!("/host-bpf/{cluster}")],
        timeout,
    )
}
