//! `cargo xtask image`: the probe and the reference TSN metadata proxy as `FROM scratch`
//! container images — a static build of each binary, the Dockerfile beside it, `docker build`
//! — and iperf3 and the nettools (tcpdump, sh, timeout, base64, the static probe), Debian's
//! binaries with the libraries they link, FROM scratch too.

use std::process::Command;

use harness::provider::kind::{IPERF3_IMAGE, PROBE_IMAGE, STATIC_PROBE, TSN_PROXY_IMAGE};
use harness::tools::NETTOOLS_IMAGE;

use crate::util::workspace_root;

/// The host's target triple, from rustc.
fn host_triple() -> Result<String, String> {
    let output = Command::new("rustc").arg("-vV").output().map_err(|e| format!("failed to run `rustc -vV`: {e}"))?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .ok_or_else(|| "`rustc -vV` named no host triple".into())
}

/// A FROM scratch image of this machine's `binaries` (Debian's, from `cargo xtask deps`)
/// with every library `ldd` says each loads, each at its path, under `context/rootfs`, plus
/// `extra` files (from, path in the image) and an empty /tmp; `dockerfile` beside them.
fn rootfs_image(
    context: &std::path::Path,
    binaries: &[&str],
    extra: &[(std::path::PathBuf, &str)],
    dockerfile: &str,
    tag: &str,
    source: &str,
) -> Result<(), String> {
    let rootfs = context.join("rootfs");
    let _ = std::fs::remove_dir_all(&rootfs);
    let mut files: Vec<(std::path::PathBuf, std::path::PathBuf)> = Vec::new();
    for binary in binaries.iter().map(std::path::Path::new) {
        let linked = Command::new("ldd").arg(binary).output().map_err(|e| format!("failed to run `ldd {}`: {e}", binary.display()))?;
        files.push((binary.to_path_buf(), binary.to_path_buf()));
        // A static binary: "not a dynamic executable", and nothing to add.
        if linked.status.success() {
            files.extend(libraries_of(&String::from_utf8_lossy(&linked.stdout)).into_iter().map(|l| (l.clone(), l)));
        }
    }
    files.extend(extra.iter().map(|(from, to)| (from.clone(), std::path::PathBuf::from(to))));
    for (from, to) in &files {
        let there = rootfs.join(to.strip_prefix("/").unwrap_or(to));
        std::fs::create_dir_all(there.parent().expect("a file has a parent")).map_err(|e| format!("creating {}: {e}", there.display()))?;
        // Follows symlinks: the image gets the file's contents under the name it is run or loaded by.
        std::fs::copy(from, &there).map_err(|e| format!("copying {} into {tag}: {e}", from.display()))?;
    }
    std::fs::create_dir_all(rootfs.join("tmp")).map_err(|e| format!("creating /tmp in {tag}: {e}"))?;
    std::fs::set_permissions(rootfs.join("tmp"), std::os::unix::fs::PermissionsExt::from_mode(0o1777)).map_err(|e| e.to_string())?;
    // The Dockerfile and what it names beside it (nettools' passwd and group).
    let directory = workspace_root().join(dockerfile).parent().expect("a Dockerfile is in a directory").to_owned();
    for entry in std::fs::read_dir(&directory).map_err(|e| format!("reading {}: {e}", directory.display()))?.flatten() {
        std::fs::copy(entry.path(), context.join(entry.file_name())).map_err(|e| format!("copying {}: {e}", entry.path().display()))?;
    }
    docker_build(context, tag, source)
}

/// The tools a helper container runs in a node's network ([`NETTOOLS_IMAGE`]).
pub const NETTOOLS: [&str; 8] =
    ["/usr/bin/tcpdump", "/usr/bin/dash", "/usr/bin/timeout", "/usr/bin/base64", "/usr/sbin/ip", "/usr/sbin/conntrack", "/usr/bin/stat", "/usr/bin/rm"];

/// The files `ldd` output names: `libx.so => /path (0x..)` and the loader's `/path (0x..)`.
fn libraries_of(ldd: &str) -> Vec<std::path::PathBuf> {
    ldd.lines()
        .filter_map(|line| {
            let path = match line.split_once("=>") {
                Some((_, target)) => target.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| std::path::PathBuf::from(path))
        })
        .collect()
}

/// Whether `docker build` builds with BuildKit, which adds provenance attestations to what
/// it builds unless told not to (it knows `--provenance`; the classic builder refuses it).
fn builder_attests() -> bool {
    Command::new("docker").args(["build", "--help"]).output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("--provenance"))
}

/// `docker build` for one of the project's images. With BuildKit, no attestations: with
/// Docker's containerd image store, `docker save` of an attested image gives an archive
/// whose index names blobs it lacks, and `kind load docker-image` fails in `ctr import`
/// ("content digest ... not found", kind #3795). The classic builder attests nothing.
fn docker_build_args(context: &std::path::Path, tag: &str, attests: bool, source: &str) -> Vec<String> {
    let mut args: Vec<String> = ["build", "--quiet", "--tag", tag, "--label", &format!("{SOURCE_LABEL}={source}")].map(str::to_owned).into();
    if attests {
        args.extend(["--provenance=false", "--sbom=false"].map(str::to_owned));
    }
    args.push(context.display().to_string());
    args
}

fn docker_build(context: &std::path::Path, tag: &str, source: &str) -> Result<(), String> {
    let output = Command::new("docker")
        .args(docker_build_args(context, tag, builder_attests(), source))
        .output()
        .map_err(|e| format!("failed to run `docker build` (is Docker installed?): {e}"))?;
    if !output.status.success() {
        return Err(format!("`docker build --tag {tag}` failed: {}", String::from_utf8_lossy(&output.stderr).trim()));
    }
    eprintln!("xtask image: built {tag} ({})", String::from_utf8_lossy(&output.stdout).trim());
    Ok(())
}

/// The label an image carries with the digest of what it was built from ([`source_digest`]).
const SOURCE_LABEL: &str = "cni-conformance.source";

/// The workspace's directories and files the images' binaries and contexts come from.
const IMAGE_SOURCES: [&str; 8] = ["probe", "tsn-proxy", "bpf", "src/bin", "nettools-image", "iperf3-image", "Cargo.toml", "Cargo.lock"];

/// A digest of everything the images are made of: every file of [`IMAGE_SOURCES`] (path
/// and contents), the toolchain (`rustc -vV`), and this machine's binaries the rootfs
/// images copy with every library they load (contents). Two builds from the same digest
/// make the same images.
fn source_digest(host_binaries: &[&str]) -> Result<String, String> {
    use sha2::{Digest, Sha256};
    let root = workspace_root();
    let mut digest = Sha256::new();
    let mut add_file = |path: &std::path::Path| -> Result<(), String> {
        digest.update(path.strip_prefix(&root).unwrap_or(path).to_string_lossy().as_bytes());
        digest.update(std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?);
        Ok(())
    };
    for source in IMAGE_SOURCES {
        let mut files: Vec<std::path::PathBuf> =
            walkdir::WalkDir::new(root.join(source)).into_iter().filter_map(Result::ok).filter(|e| e.file_type().is_file()).map(|e| e.into_path()).collect();
        files.sort();
        for file in files {
            add_file(&file)?;
        }
    }
    for binary in host_binaries.iter().map(std::path::Path::new).filter(|b| b.is_file()) {
        add_file(binary)?;
        let linked = Command::new("ldd").arg(binary).output().map_err(|e| format!("failed to run `ldd {}`: {e}", binary.display()))?;
        for library in libraries_of(&String::from_utf8_lossy(&linked.stdout)) {
            add_file(&library)?;
        }
    }
    let rustc = Command::new("rustc").arg("-vV").output().map_err(|e| format!("failed to run `rustc -vV`: {e}"))?;
    digest.update(&rustc.stdout);
    Ok(digest.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether `image` exists here and was built from `source`.
fn built_from(image: &str, source: &str) -> bool {
    let format = format!("{{{{ index .Config.Labels \"{SOURCE_LABEL}\" }}}}");
    Command::new("docker")
        .args(["image", "inspect", "--format", &format, image])
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == source)
}

/// Copies the static probe out of the probe image to [`STATIC_PROBE`], where the kind
/// provider takes it from (node talkers run it).
fn static_probe_from_image() -> Result<(), String> {
    let to = workspace_root().join(STATIC_PROBE);
    std::fs::create_dir_all(to.parent().expect("a file has a parent")).map_err(|e| e.to_string())?;
    let created = Command::new("docker").args(["create", PROBE_IMAGE]).output().map_err(|e| format!("failed to run `docker create`: {e}"))?;
    let container = String::from_utf8_lossy(&created.stdout).trim().to_owned();
    if !created.status.success() || container.is_empty() {
        return Err(format!("`docker create {PROBE_IMAGE}` failed: {}", String::from_utf8_lossy(&created.stderr).trim()));
    }
    let copied = Command::new("docker").args(["cp", &format!("{container}:/cni-probe"), &to.display().to_string()]).output();
    let _ = Command::new("docker").args(["rm", &container]).output();
    match copied {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!("copying the static probe out of {PROBE_IMAGE}: {}", String::from_utf8_lossy(&o.stderr).trim())),
        Err(e) => Err(format!("failed to run `docker cp`: {e}")),
    }
}

pub fn run() -> Result<(), String> {
    let root = workspace_root();
    // What this machine has of the rootfs images' binaries decides which it builds.
    let iperf3 = std::path::Path::new("/usr/bin/iperf3").is_file();
    let nettools = NETTOOLS.iter().all(|tool| std::path::Path::new(tool).is_file());
    let host_binaries: Vec<&str> = iperf3.then_some("/usr/bin/iperf3").into_iter().chain(NETTOOLS.iter().copied().filter(|_| nettools)).collect();
    let source = source_digest(&host_binaries)?;
    let wanted: Vec<&str> =
        [PROBE_IMAGE, TSN_PROXY_IMAGE].into_iter().chain(iperf3.then_some(IPERF3_IMAGE)).chain(nettools.then_some(NETTOOLS_IMAGE)).collect();
    // Built before from the same sources (another clone on this machine, or the last run):
    // the same images, so not built again; the static probe comes out of its image.
    if wanted.iter().all(|image| built_from(image, &source)) {
        if !root.join(STATIC_PROBE).is_file() {
            static_probe_from_image()?;
        }
        eprintln!("xtask image: {} built from these sources already (source {}), not built again", wanted.join(", "), &source[..12]);
        return Ok(());
    }
    let triple = host_triple()?;
    let target_dir = root.join("target/probe-image");
    // With an explicit --target, RUSTFLAGS reach only the probe, not build scripts.
    let status = crate::util::cargo_command()
        .args(["build", "--release", "--bin", "cni-probe", "--bin", "tsn-metadata-proxy", "--target", &triple, "--target-dir"])
        .arg(&target_dir)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .status()
        .map_err(|e| format!("failed to build the static probe: {e}"))?;
    if !status.success() {
        return Err(format!("building the static probe and proxy failed ({status})"));
    }
    for (binary, dockerfile, tag) in [("cni-probe", "probe/Dockerfile", PROBE_IMAGE), ("tsn-metadata-proxy", "tsn-proxy/Dockerfile", TSN_PROXY_IMAGE)] {
        let context = target_dir.join("context").join(binary);
        std::fs::create_dir_all(&context).map_err(|e| format!("creating {}: {e}", context.display()))?;
        let copy = |from: std::path::PathBuf, name: &str| std::fs::copy(&from, context.join(name)).map_err(|e| format!("copying {}: {e}", from.display()));
        copy(target_dir.join(&triple).join("release").join(binary), binary)?;
        copy(root.join(dockerfile), "Dockerfile")?;
        docker_build(&context, tag, &source)?;
    }
    // Only the performance family on kind needs it: without iperf3 here, say so and go on.
    match iperf3 {
        true => rootfs_image(&target_dir.join("context").join("cni-iperf3"), &["/usr/bin/iperf3"], &[], "iperf3-image/Dockerfile", IPERF3_IMAGE, &source)?,
        false => eprintln!("xtask image: no /usr/bin/iperf3, so no {IPERF3_IMAGE} (the performance family on kind needs it): install iperf3 (`cargo xtask deps`) and run this again"),
    }
    // Beside every kind node in a failure's bundle: its captures and its tcx programs.
    let probe = target_dir.join(&triple).join("release").join("cni-probe");
    match nettools {
        true => rootfs_image(
            &target_dir.join("context").join("cni-nettools"),
            &NETTOOLS,
            &[(probe, "/usr/bin/cni-probe")],
            "nettools-image/Dockerfile",
            NETTOOLS_IMAGE,
            &source,
        )?,
        false => eprintln!(
            "xtask image: not all of {} here, so no {NETTOOLS_IMAGE} (a kind failure's bundle needs it for captures): run `cargo xtask deps` and this again",
            NETTOOLS.join(", ")
        ),
    }
    // Node talkers on kind run this very binary, copied onto the nodes.
    if !root.join(STATIC_PROBE).is_file() {
        return Err(format!("the static probe is not at {STATIC_PROBE}, where the kind provider looks for it"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// Stand-ins for both of Docker's image stores (kind #3795): `docker build` remembers
    /// whether it attested an image (BuildKit without `--provenance=false`), and `kind load
    /// docker-image` under the containerd store fails on an attested image as `ctr import`
    /// does there; under the classic store (and the classic builder) anything loads.
    const DOCKER: &str = r#"#!/bin/sh
case "$1 $2" in
  "build --help") if [ "$STANDIN_BUILDER" = buildkit ]; then echo "      --provenance string   Shorthand for \"--attest=type=provenance\""; fi; exit 0;;
esac
if [ "$1" = build ]; then
  case "$*" in *--provenance*) [ "$STANDIN_BUILDER" = buildkit ] || { echo "unknown flag: --provenance" >&2; exit 125; };; esac
  tag="$4"
  case "$*" in *--provenance=false*) : ;; *) [ "$STANDIN_BUILDER" = buildkit ] && echo "$tag" >> "$STANDIN_DIR/attested";; esac
  echo sha256:0a1b2c; exit 0
fi
"#;
    const KIND: &str = r#"#!/bin/sh
if [ "$STANDIN_STORE" = containerd ] && grep -qx "$3" "$STANDIN_DIR/attested" 2>/dev/null; then
  echo "ctr: content digest sha256:82014a3cbf22: not found" >&2; exit 1
fi
exit 0
"#;

    #[test]
    fn the_projects_images_load_into_kind_under_either_image_store() {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in [("docker", DOCKER), ("kind", KIND)] {
            std::fs::write(dir.path().join(name), text).unwrap();
            std::fs::set_permissions(dir.path().join(name), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        }
        let path = format!("{}:{}", dir.path().display(), std::env::var("PATH").unwrap());
        for (builder, store) in [("classic", "overlay2"), ("buildkit", "overlay2"), ("buildkit", "containerd")] {
            let run = |program: &str, args: &[String]| {
                std::process::Command::new(program)
                    .args(args)
                    .env("PATH", &path)
                    .env("STANDIN_DIR", dir.path())
                    .env("STANDIN_BUILDER", builder)
                    .env("STANDIN_STORE", store)
                    .output()
                    .unwrap()
            };
            let attests = String::from_utf8_lossy(&run("docker", &["build".into(), "--help".into()]).stdout).contains("--provenance");
            let tag = format!("cni-probe-{builder}-{store}:0.1.0");
            let built = run("docker", &super::docker_build_args(dir.path(), &tag, attests, "0a1b2c"));
            assert!(built.status.success(), "{builder}/{store}: {}", String::from_utf8_lossy(&built.stderr));
            let loaded = run("kind", &["load".into(), "docker-image".into(), tag.clone()]);
            assert!(loaded.status.success(), "{builder}/{store}: {}", String::from_utf8_lossy(&loaded.stderr));
        }
    }
    #[test]
    fn ldd_output_names_each_library_and_the_loader() {
        let ldd = "\tlinux-vdso.so.1 (0x00007fbc14a8f000)\n\tlibiperf.so.0 => /lib/x86_64-linux-gnu/libiperf.so.0 (0x00007fbc14a48000)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007fbc14a91000)\n";
        let named: Vec<String> = super::libraries_of(ldd).iter().map(|p| p.display().to_string()).collect();
        assert_eq!(named, ["/lib/x86_64-linux-gnu/libiperf.so.0", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"]);
    }
}
