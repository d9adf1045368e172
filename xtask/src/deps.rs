//! `cargo xtask deps`: the Debian packages the lab needs, installed when root: every one
//! for the tests (`deps`, `test`), those a certification uses for `certify`.

use std::process::Command;

/// (package, a file it installs that the lab uses)
const PACKAGES: [(&str, &str); 19] = [
    ("containernetworking-plugins", "/usr/lib/cni/bridge"),
    ("iproute2", "/usr/sbin/ip"),
    ("iptables", "/usr/sbin/iptables-restore"),
    ("procps", "/usr/bin/kill"),
    ("util-linux", "/usr/bin/setpriv"),
    // GNU time: a plugin's own peak memory (the kernel's figure for a process the harness
    // starts is at least the harness's own peak).
    ("time", "/usr/bin/time"),
    // cni_spec reads a node's nftables rules, for plugins that write them directly.
    ("nftables", "/usr/sbin/nft"),
    // The lab's Gateway for the canary suites.
    ("nginx-light", "/usr/sbin/nginx"),
    // The workflow lint: actionlint checks `run:` scripts with shellcheck, in a venv (tests).
    ("shellcheck", "/usr/bin/shellcheck"),
    ("python3-venv", "/usr/share/doc/python3-venv"),
    // The tests check the HTML report in a real headless browser, rendered to a PNG.
    ("chromium", "/usr/bin/chromium"),
    // The TSN family's BPF programs (bpf/*.c), compiled on first use.
    ("clang", "/usr/bin/clang"),
    ("llvm", "/usr/bin/llc"),
    ("libbpf-dev", "/usr/include/bpf/bpf_helpers.h"),
    // What a vendor's metadata proxy may call from its ADD, as the paper's plugin does.
    ("bpftool", "/usr/sbin/bpftool"),
    // The performance family's throughput tool, as the seeds used it.
    ("iperf3", "/usr/bin/iperf3"),
    // The lab's egress gateway announces a moved egress IP with a gratuitous ARP.
    ("iputils-arping", "/usr/bin/arping"),
    // The upgrade self-test's new version that flushes a node's NAT on install flushes its
    // connection tracking too, as an agent restarting its datapath does (tests).
    ("conntrack", "/usr/sbin/conntrack"),
    // A failed trial's path trace captures its flow on every node and the external host.
    ("tcpdump", "/usr/bin/tcpdump"),
];

/// Of [`PACKAGES`], what only the project's own tests use: a certification runs without
/// them (Chromium alone is about a third of a fresh machine's download).
const FOR_THE_TESTS_ALONE: [&str; 4] = ["shellcheck", "python3-venv", "chromium", "conntrack"];

/// What a run needs installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Everything the tests use, Debian unstable's plugins too.
    Tests,
    /// What the suites of a certification use; unstable's plugins only when a certified
    /// profile runs them.
    Certification { unstable_plugins: bool },
}

impl Needs {
    fn packages(self) -> impl Iterator<Item = &'static (&'static str, &'static str)> {
        PACKAGES.iter().filter(move |(package, _)| self == Needs::Tests || !FOR_THE_TESTS_ALONE.contains(package))
    }
}

fn missing(needs: Needs) -> Vec<&'static str> {
    needs.packages().filter(|(_, file)| !std::path::Path::new(file).exists()).map(|(p, _)| *p).collect()
}

pub fn run(check_only: bool) -> Result<(), String> {
    install(Needs::Tests, check_only)
}

pub fn install(needs: Needs, check_only: bool) -> Result<(), String> {
    install_packages(needs, check_only)?;
    if !check_only && matches!(needs, Needs::Tests | Needs::Certification { unstable_plugins: true }) {
        // The upgrade's "to" version: not having it ignores those tests with the reason; it
        // never stops the lab's own set-up.
        match unstable_plugins() {
            Ok(version) => eprintln!("xtask deps: Debian unstable's containernetworking-plugins {version} in {}", harness::provider::host::unstable_plugins_root().display()),
            Err(why) => eprintln!("xtask deps: could not fetch Debian unstable's containernetworking-plugins ({why}); the upgrade suites and cni_spec's unstable subjects will be ignored with that reason"),
        }
    }
    Ok(())
}

fn install_packages(needs: Needs, check_only: bool) -> Result<(), String> {
    let missing = missing(needs);
    if missing.is_empty() {
        eprintln!("xtask deps: all lab packages present ({})", needs.packages().map(|(p, _)| *p).collect::<Vec<_>>().join(", "));
        return Ok(());
    }
    let command = format!("apt-get update && apt-get install -y --no-install-recommends {}", missing.join(" "));
    if check_only {
        return Err(format!("missing Debian packages: {}; install them with `{command}`", missing.join(", ")));
    }
    if harness::provider::host::effective_uid() != 0 {
        return Err(format!("missing Debian packages: {}; as root, run:\n  {command}", missing.join(", ")));
    }
    eprintln!("xtask deps: installing {}", missing.join(", "));
    let status =
        Command::new("sh").args(["-c", &command]).env("DEBIAN_FRONTEND", "noninteractive").status().map_err(|e| format!("failed to run `{command}`: {e}"))?;
    if !status.success() {
        return Err(format!("`{command}` failed ({status})"));
    }
    match self::missing(needs).as_slice() {
        [] => Ok(()),
        still => Err(format!("still missing after install: {}", still.join(", "))),
    }
}

/// Debian unstable's `containernetworking-plugins`, unpacked under `target/` (once): a
/// source list for `sid` given to these apt commands alone (their own `sourceparts`, lists
/// and cache, in a temporary directory), `apt-get download`, then `dpkg-deb -x`. The
/// machine's own apt sources and packages stay as they are. Returns the version unpacked.
fn unstable_plugins() -> Result<String, String> {
    if let Ok(plugins) = harness::provider::host::unstable_plugins() {
        return Ok(plugins.version);
    }
    let root = harness::provider::host::unstable_plugins_root();
    let work = tempfile::tempdir().map_err(|e| format!("a temporary directory: {e}"))?;
    let (sources, lists, cache) = (work.path().join("sources"), work.path().join("lists"), work.path().join("cache"));
    for dir in [sources.clone(), lists.join("partial"), cache.join("archives/partial")] {
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    }
    std::fs::write(
        sources.join("sid.sources"),
        "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: sid\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
    )
    .map_err(|e| format!("write the sid source list: {e}"))?;
    let options: Vec<String> = [
        "Dir::Etc::sourcelist=/dev/null".to_owned(),
        format!("Dir::Etc::sourceparts={}", sources.display()),
        format!("Dir::State::Lists={}", lists.display()),
        format!("Dir::Cache={}", cache.display()),
        // The download runs as root here; apt's sandbox user cannot write the directory.
        "APT::Sandbox::User=root".to_owned(),
    ]
    .into_iter()
    .flat_map(|o| ["-o".to_owned(), o])
    .collect();
    let apt = |args: &[&str]| -> Result<(), String> {
        let output = Command::new("apt-get").args(&options).args(args).current_dir(work.path()).output().map_err(|e| format!("apt-get: {e}"))?;
        match output.status.success() {
            true => Ok(()),
            false => Err(format!("`apt-get {}` with a sid source list failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim())),
        }
    };
    apt(&["-q", "update"])?;
    apt(&["-q", "download", harness::provider::host::REFERENCE_PLUGINS_PACKAGE])?;
    let deb = std::fs::read_dir(work.path())
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .ok_or("apt-get download left no .deb")?;
    let field = Command::new("dpkg-deb").args(["-f"]).arg(&deb).arg("Version").output().map_err(|e| format!("dpkg-deb: {e}"))?;
    let version = String::from_utf8_lossy(&field.stdout).trim().to_owned();
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).map_err(|e| format!("create {}: {e}", root.display()))?;
    let unpacked = Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root).status().map_err(|e| format!("dpkg-deb -x: {e}"))?;
    if !unpacked.success() || version.is_empty() {
        return Err(format!("`dpkg-deb -x {}` failed ({unpacked}), version {version:?}", deb.display()));
    }
    std::fs::write(root.join("VERSION"), format!("{version}\n")).map_err(|e| format!("write VERSION: {e}"))?;
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certification_installs_no_browser_and_the_tests_install_everything() {
        let certification: Vec<&str> = Needs::Certification { unstable_plugins: false }.packages().map(|(p, _)| *p).collect();
        assert!(!certification.contains(&"chromium") && !certification.contains(&"shellcheck"), "{certification:?}");
        for used in ["containernetworking-plugins", "iproute2", "nginx-light", "clang", "iperf3", "tcpdump"] {
            assert!(certification.contains(&used), "a certification's suites use {used}");
        }
        assert_eq!(Needs::Tests.packages().count(), PACKAGES.len());
        assert!(FOR_THE_TESTS_ALONE.iter().all(|alone| PACKAGES.iter().any(|(p, _)| p == alone)), "every test-only package is one of PACKAGES");
    }
}
