//! `cargo xtask certify [--cni <name|path>] [--provider lab|kind|existing]`: runs every
//! scenario family the profile claims against it (first, for a lab profile, `cni_spec` on
//! its own conflist and plugins), prints each verdict with its evidence, and writes one
//! conformance report for the whole certification (YAML), with a Markdown and an HTML
//! rendering of it, also when interrupted (of what finished). Without `--cni` it certifies
//! nothing: it is the suites' self-test with the reference plugins chained with the
//! reference TSN metadata proxy on the lab, every family.

use std::path::{Path, PathBuf};

use harness::cni::Installation;
use harness::cni::{load_profile, CniProfile, Feature};
use harness::report::conformance::{self, ConformanceReport, Outcome};
use harness::report::summary::SuiteSummary;
use harness::report::{render, Destinations};

use crate::util::{cargo, workspace_root};

/// The profile certified without `--cni`: the reference plugins and proxy, every family.
pub const DEFAULT_PROFILE: &str = "reference-tsn-proxy";

pub const USAGE: &str = "usage: cargo xtask certify [--cni <name|path>] [--provider lab|kind|existing]
       cargo xtask certify --upgrade-from <name|path> --to <name|path> [--provider ...]

Certifies a CNI profile: installs the packages its suites use, builds them, then runs every
scenario family the profile claims, and writes one conformance report.

  --cni <name|path>   a shipped profile (a directory of fixtures/cni/) or a profile file;
                      default: reference-tsn-proxy, the suites' self-test on the lab
  --provider <name>   lab (default for lab profiles), kind, or existing (KUBECONFIG)
  --families <a,b>    only these of the profile's families (a pull request's gate): the
                      report names the others as not run (outcome Incomplete), and the
                      exit status judges the families run
  --upgrade-from <p> --to <q>
                      certifies the upgrade from profile p to profile q instead: the
                      upgrade family (a cluster made with p, upgraded in place to q under
                      running pods, and rolled back), one report for the pair
  -h, --help          this text

Families: cni_spec (lab profiles: the CNI specification on the profile's own conflist and
plugins), egress (always), canary (a Gateway implementation or LoadBalancer Services), tsn
(the tsn-priority-map feature), perf (always). On the lab a certification of the default
profile takes about a minute after the build (bench/families.sh prints each family's time).

Reports: target/cni-conformance/certification/<profile>/{conformance.yaml,report.md,report.html}
(an upgrade's: certification/<p>-to-<q>/),
each family's JUnit and golden records beside them. Ctrl-C stops the running family and
still writes the report of the families that finished. Exit status: 0 when the outcome is
Success or Partial.";

/// What `certify` was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub cni: String,
    pub provider: Option<String>,
    /// `--upgrade-from <p> --to <q>`: the upgrade pair, certified instead of `cni`.
    pub upgrade: Option<(String, String)>,
    /// `--families a,b`: only these of the profile's families.
    pub families: Option<Vec<String>>,
    /// `--help`: print [`USAGE`] and do nothing else.
    pub help: bool,
}

impl Request {
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let mut request = Request { cni: DEFAULT_PROFILE.into(), provider: None, upgrade: None, families: None, help: false };
        let (mut from, mut to, mut cni_given) = (None, None, false);
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = |flag: &str| args.next().cloned().ok_or_else(|| format!("{flag} needs a value"));
            match arg.as_str() {
                "--cni" => {
                    request.cni = value("--cni")?;
                    cni_given = true;
                }
                "--upgrade-from" => from = Some(value("--upgrade-from")?),
                "--to" => to = Some(value("--to")?),
                "--provider" => request.provider = Some(value("--provider")?),
                "--families" => request.families = Some(value("--families")?.split(',').map(str::trim).filter(|f| !f.is_empty()).map(str::to_owned).collect()),
                "-h" | "--help" => request.help = true,
                other => return Err(format!("unknown certify argument `{other}`\n\n{USAGE}")),
            }
        }
        request.upgrade = match (from, to) {
            (Some(_), Some(_)) if cni_given => {
                return Err("--cni and --upgrade-from name the profile twice: an upgrade certifies the pair --upgrade-from <p> --to <q>".into())
            }
            (Some(from), Some(to)) => {
                request.cni = from.clone();
                Some((from, to))
            }
            (Some(_), None) => return Err("--upgrade-from needs --to <profile>: the profile the cluster is upgraded to".into()),
            (None, Some(_)) => return Err("--to needs --upgrade-from <profile>: the profile the cluster is made with".into()),
            (None, None) => None,
        };
        Ok(request)
    }
}

/// The scenario families (suite binaries) a profile claims: egress for every CNI (its
/// first checks need no feature), canary when it has a Gateway implementation or balances
/// LoadBalancer Services, TSN when it claims `tsn-priority-map` (it chains a metadata proxy),
/// and performance budgets for every CNI (where the provider cannot measure, its scenarios
/// are ignored with the reason).
pub fn families(cni: &CniProfile) -> Vec<&'static str> {
    // A lab profile's own plugins are first held to the CNI specification.
    let mut families = if matches!(cni.installation, Installation::Lab { .. }) { vec!["cni_spec", "egress"] } else { vec!["egress"] };
    if cni.gateway.is_some() || cni.features.contains(&Feature::LoadBalancerService) {
        families.push("canary");
    }
    if cni.features.contains(&Feature::TsnPriorityMap) {
        families.push("tsn");
    }
    families.push("perf");
    families
}

/// Where a certification's reports go: `target/cni-conformance/certification/<cni>/`.
pub fn output_dir(cni: &CniProfile) -> PathBuf {
    Destinations::for_suite("certification").junit.parent().expect("a suite directory").join(&cni.name)
}

/// Whether every plugin of a lab profile's conflist claims its `cniVersion` (see
/// `CniRuntime::require_claimed_version`); a profile without a lab installation, or whose
/// plugins are missing (the suites say so, with the install command), passes here.
fn plugins_claim_the_conflist_version(cni: &CniProfile) -> Result<(), String> {
    let Installation::Lab { conflist, plugin_dirs, .. } = &cni.installation else { return Ok(()) };
    let plugin_dirs = resolved(plugin_dirs);
    let runtime = harness::cni::runtime::CniRuntime { plugin_dirs, cache_dir: std::env::temp_dir(), node: None, records: Default::default(), budget: None };
    let list = harness::cni::runtime::NetworkConfigList::load(conflist).map_err(|e| e.to_string())?;
    if runtime.require_plugins(&list).is_err() {
        return Ok(());
    }
    runtime.require_claimed_version(&list, conflist).map_err(|e| format!("profile {} ({}): {e}", cni.name, cni.source.display()))
}

/// The plugin directories a lab profile's plugins run from, as its lab runs them: `CNI_PATH`
/// when set (a vendor's built binaries, the GitHub Action's `plugin-dirs`), else its
/// `pluginDirs` (`{harness-binaries}` being this build's).
fn resolved(plugin_dirs: &[PathBuf]) -> Vec<PathBuf> {
    if let Some(given) = std::env::var_os("CNI_PATH") {
        return std::env::split_paths(&given).collect();
    }
    let built = workspace_root().join("target/debug");
    plugin_dirs.iter().map(|d| harness::cni::resolve_plugin_dir(d, &built)).collect()
}

/// The environment of the `cni_spec` family: the profile's conflist as the subject, its
/// plugin directories (`{harness-binaries}` being this build's) as `CNI_PATH`, and the
/// profile itself (node files, logs).
fn spec_subject(cni: &CniProfile) -> Vec<(&'static str, std::ffi::OsString)> {
    let Installation::Lab { conflist, plugin_dirs, .. } = &cni.installation else { return Vec::new() };
    let dirs = resolved(plugin_dirs);
    vec![
        ("CNICONF_SPEC_SUBJECT", conflist.clone().into_os_string()),
        ("CNICONF_SPEC_PLUGIN_DIR", std::env::join_paths(dirs).unwrap_or_default()),
        // Its node files and logs, on every check's node as on a lab node.
        ("CNICONF_SPEC_PROFILE", cni.source.clone().into_os_string()),
    ]
}

pub fn run(args: &[String]) -> Result<(), String> {
    let request = Request::parse(args)?;
    if request.help {
        println!("{USAGE}");
        return Ok(());
    }
    // A malformed profile or conflist stops here, once, before anything is built.
    let cni = load_profile(&request.cni).map_err(|e| e.to_string())?;
    let upgrade_to = match &request.upgrade {
        Some((_, to)) => Some(load_profile(to).map_err(|e| e.to_string())?),
        None => None,
    };
    // What the certified profiles run: the lab's packages, and Debian unstable's plugins
    // only when one of them runs those.
    let unstable = harness::host::unstable_plugins_root();
    let unstable_plugins = std::iter::once(&cni)
        .chain(upgrade_to.as_ref())
        .any(|profile| matches!(&profile.installation, Installation::Lab { plugin_dirs, .. } if plugin_dirs.iter().any(|d| d.starts_with(&unstable))));
    crate::deps::install(crate::deps::Needs::Certification { unstable_plugins }, false)?;
    let families = match upgrade_to {
        Some(_) => vec!["upgrade"],
        None => families(&cni),
    };
    let (families, not_asked) = chosen(families, request.families.as_deref(), &cni.name)?;
    let out = match &upgrade_to {
        Some(to) => output_dir(&CniProfile { name: format!("{}-to-{}", cni.name, to.name), ..cni.clone() }),
        None => output_dir(&cni),
    };
    let _ = std::fs::remove_dir_all(&out);
    // The families' suites and the binaries they run (the probe, the reference proxy),
    // not every test of the workspace.
    let build: Vec<&str> = ["build", "--bins"].into_iter().chain(families.iter().flat_map(|family| ["--test", family])).collect();
    cargo(&build)?;
    // A conflist whose version its plugins do not claim is refused before any lab is built.
    for profile in std::iter::once(&cni).chain(upgrade_to.as_ref()) {
        plugins_claim_the_conflist_version(profile)?;
    }
    // Ctrl-C reaches the running family (same process group), which cleans up and exits;
    // this process then stops starting families and writes the report of those that ran.
    let interrupted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = std::sync::Arc::clone(&interrupted);
    let _ = ctrlc::set_handler(move || flag.store(true, std::sync::atomic::Ordering::SeqCst));
    let mut failed = Vec::new();
    let mut ran = Vec::new();
    for family in &families {
        if interrupted.load(std::sync::atomic::Ordering::SeqCst) {
            break;
        }
        eprintln!("\nxtask certify: running the {family} family against {} ({})", cni.name, cni.source.display());
        let mut test = crate::util::cargo_command();
        if *family == "cni_spec" {
            test.envs(spec_subject(&cni));
        }
        test.args(["test", "--test", family])
            .env("CNICONF_CNI", &request.cni)
            .envs(request.upgrade.iter().map(|(_, to)| (harness::scenario::UPGRADE_TO_VARIABLE, to)))
            .env("CNICONF_REPORT_DIR", &out)
            // A certification writes the records it saw for review; it compares with none.
            .env("CNICONF_GOLDEN_DIR", out.join("golden"))
            .env("INSTA_UPDATE", "always")
            .env_remove("CI")
            // The merged report goes to the job summary once, not each family's.
            .env_remove(conformance::STEP_SUMMARY_VARIABLE);
        if let Some(provider) = &request.provider {
            test.env("CNICONF_PROVIDER", provider);
        }
        if !test.status().map_err(|e| format!("failed to run `cargo test --test {family}`: {e}"))?.success() {
            failed.push(*family);
        }
        if out.join(family).join("conformance.yaml").is_file() {
            ran.push(*family);
        }
    }
    let interrupted = interrupted.load(std::sync::atomic::Ordering::SeqCst);
    let not_run: Vec<&str> = match interrupted {
        true => families.iter().copied().filter(|family| !ran.contains(family)).chain(not_asked.iter().copied()).collect(),
        false => not_asked.clone(),
    };
    let families = if interrupted { ran } else { families };
    for family in &families {
        let path = out.join(family).join("summary.json");
        match std::fs::read(&path).map_err(|e| e.to_string()).and_then(|b| serde_json::from_slice::<SuiteSummary>(&b).map_err(|e| e.to_string())) {
            Ok(summary) => println!("{}", summary.render()),
            Err(e) => println!("\n{family}: no summary at {} ({e})", path.display()),
        }
    }
    let certified = match &upgrade_to {
        Some(to) => CniProfile { name: format!("{} -> {}", cni.name, to.name), version: format!("{} -> {}", cni.version, to.version), ..cni.clone() },
        None => cni.clone(),
    };
    let report = write_certification(&out, &families, &not_run, &certified)?;
    println!(
        "conformance report of {} {}: {:?}, {}",
        report.implementation.name,
        report.implementation.version,
        report.outcome(),
        out.join("conformance.yaml").display()
    );
    println!("  {}\n  {}", out.join("report.md").display(), out.join("report.html").display());
    if interrupted {
        return Err(format!(
            "certification of {} interrupted ({:?}): the report holds the families that finished ({}) and names those that never ran ({})",
            cni.name,
            report.outcome(),
            families.join(", "),
            not_run.join(", ")
        ));
    }
    match (failed.is_empty(), report.outcome()) {
        (true, Outcome::Success | Outcome::Partial) => Ok(()),
        // Incomplete only because fewer families were asked: those asked passed.
        (true, Outcome::Incomplete) if !not_asked.is_empty() => {
            println!("  only {} of the profile's families were asked for (--families); not run: {}", families.join(", "), not_asked.join(", "));
            Ok(())
        }
        _ => Err(format!("certification of {} failed: {}", cni.name, if failed.is_empty() { "see the report".into() } else { failed.join(", ") })),
    }
}

/// The families to run of `all` (the profile's, in their order): those `asked` (each one
/// the profile claims), and those left out; all of them when none are asked.
fn chosen<'a>(all: Vec<&'a str>, asked: Option<&[String]>, cni: &str) -> Result<(Vec<&'a str>, Vec<&'a str>), String> {
    let Some(asked) = asked else { return Ok((all, Vec::new())) };
    if let Some(unknown) = asked.iter().find(|family| !all.contains(&family.as_str())) {
        return Err(format!("--families: `{unknown}` is not a family profile {cni} claims; expected some of {}", all.join(", ")));
    }
    if asked.is_empty() {
        return Err(format!("--families names none; expected some of {}", all.join(", ")));
    }
    Ok(all.into_iter().partition(|family| asked.iter().any(|a| a == family)))
}

/// Merges the families' reports into `conformance.yaml`, `report.md` and `report.html` in
/// `out`, named after the profile (not after a family's subject: `cni_spec` calls its
/// subject by its conflist), naming the families an interruption kept from running (the
/// outcome is then Incomplete); the Markdown also goes to `$GITHUB_STEP_SUMMARY` when set.
pub fn write_certification(out: &Path, families: &[&str], not_run: &[&str], cni: &CniProfile) -> Result<ConformanceReport, String> {
    let reports = families
        .iter()
        .map(|family| {
            let path = out.join(family).join("conformance.yaml");
            std::fs::read_to_string(&path)
                .map_err(|e| format!("{}: {e}", path.display()))
                .and_then(|text| ConformanceReport::from_yaml(&text).map_err(|e| format!("{}: {e}", path.display())))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut report = ConformanceReport::merge(reports).ok_or("no family ran")?;
    report.implementation = conformance::Implementation {
        name: cni.name.clone(),
        version: cni.version.clone(),
        version_source: format!("the profile {} (each plugin's own version under components)", cni.source.display()),
    };
    report.purpose = Some(cni.purpose());
    report.not_run = not_run.iter().map(|family| family.to_string()).collect();
    let write = |name: &str, text: &str| harness::report::write_atomically(&out.join(name), text.as_bytes()).map_err(|e| e.to_string());
    write("conformance.yaml", &report.to_yaml())?;
    let markdown = render::markdown(&report);
    write("report.md", &markdown)?;
    write("report.html", &render::html(&report))?;
    if let Some(summary) = std::env::var_os(conformance::STEP_SUMMARY_VARIABLE) {
        conformance::append(Path::new(&summary), &markdown).map_err(|e| format!("{}: {e}", PathBuf::from(&summary).display()))?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_name_the_profile_and_the_provider() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            Request::parse(&args(&[])).unwrap(),
            Request { cni: "reference-tsn-proxy".into(), provider: None, upgrade: None, families: None, help: false }
        );
        assert_eq!(
            Request::parse(&args(&["--cni", "./vendor/profile.yaml", "--provider", "lab"])).unwrap(),
            Request { cni: "./vendor/profile.yaml".into(), provider: Some("lab".into()), upgrade: None, families: None, help: false }
        );
        assert_eq!(
            Request::parse(&args(&["--upgrade-from", "reference", "--to", "./v2/profile.yaml"])).unwrap(),
            Request { cni: "reference".into(), provider: None, upgrade: Some(("reference".into(), "./v2/profile.yaml".into())), families: None, help: false }
        );
        assert!(Request::parse(&args(&["--upgrade-from", "reference"])).unwrap_err().contains("--upgrade-from needs --to"));
        assert!(Request::parse(&args(&["--to", "reference-1.9.1"])).unwrap_err().contains("--to needs --upgrade-from"));
        assert!(Request::parse(&args(&["--cni", "x", "--upgrade-from", "a", "--to", "b"])).unwrap_err().contains("name the profile twice"));
        assert!(Request::parse(&args(&["--help"])).unwrap().help);
        assert!(Request::parse(&args(&["-h", "--cni", "x"])).unwrap().help);
        assert!(Request::parse(&args(&["--cni"])).unwrap_err().contains("--cni needs a value"));
        assert!(Request::parse(&args(&["--flavour", "x"])).unwrap_err().contains("unknown certify argument `--flavour`"));
        assert_eq!(Request::parse(&args(&["--families", "egress, perf"])).unwrap().families, Some(vec!["egress".to_owned(), "perf".to_owned()]));
    }

    /// `--families` keeps the profile's order and says which it left out; a family the
    /// profile does not claim, or none, is refused naming what it claims.
    #[test]
    fn asked_families_are_run_in_the_profile_s_order_and_the_rest_named() {
        let all = vec!["cni_spec", "egress", "canary", "perf"];
        assert_eq!(chosen(all.clone(), None, "x").unwrap(), (all.clone(), vec![]));
        let asked = ["perf".to_owned(), "egress".to_owned()];
        assert_eq!(chosen(all.clone(), Some(&asked), "x").unwrap(), (vec!["egress", "perf"], vec!["cni_spec", "canary"]));
        let error = chosen(all.clone(), Some(&["tsn".to_owned()]), "reference").unwrap_err();
        assert!(error.contains("`tsn` is not a family profile reference claims; expected some of cni_spec, egress, canary, perf"), "{error}");
        assert!(chosen(all, Some(&[]), "x").unwrap_err().contains("names none"));
    }

    #[test]
    fn a_profile_without_a_gateway_or_services_is_certified_for_egress_only() {
        let mut cni = load_profile("reference").unwrap();
        assert_eq!(families(&cni), ["cni_spec", "egress", "canary", "perf"]);
        cni.gateway = None;
        cni.features.retain(|f| *f != Feature::LoadBalancerService);
        assert_eq!(families(&cni), ["cni_spec", "egress", "perf"]);
        assert_eq!(families(&load_profile(DEFAULT_PROFILE).unwrap()), ["cni_spec", "egress", "canary", "tsn", "perf"]);
        assert_eq!(families(&load_profile("antrea").unwrap()), ["egress", "canary", "perf"], "kind profiles have no plugin binaries here to hold to the spec");
    }

    #[test]
    fn a_conflist_at_a_version_its_plugins_do_not_claim_is_refused_naming_the_file_and_field() {
        let vendor = tempfile::tempdir().unwrap();
        std::fs::write(
            vendor.path().join("10-vendor.conflist"),
            r#"{"cniVersion": "1.1.0", "name": "vendor", "plugins": [{"type": "bridge", "bridge": "cni0", "ipam": {"type": "host-local", "subnet": "{nodePodCIDR}"}}]}"#,
        )
        .unwrap();
        std::fs::write(
            vendor.path().join("profile.yaml"),
            "name: vendor
version: 0.1.0
install:
  lab:
    conflist: 10-vendor.conflist
    pluginDir: /usr/lib/cni
features: []
",
        )
        .unwrap();
        let profile = load_profile(&vendor.path().join("profile.yaml").display().to_string()).unwrap();
        // Debian's bookworm plugins (1.1.1) claim up to 1.0.0.
        let refused = plugins_claim_the_conflist_version(&profile).unwrap_err();
        assert!(
            refused.contains("10-vendor.conflist")
                && refused.contains("cniVersion")
                && refused.contains("\"1.1.0\"")
                && refused.contains("bridge claims 0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0"),
            "{refused}"
        );
        assert_eq!(plugins_claim_the_conflist_version(&load_profile("reference").unwrap()), Ok(()));
    }
}
