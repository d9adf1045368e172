//! Acceptance tests: the suite binaries used as a user would use them — listing without
//! root, running without root, a faulty datapath's JUnit report, Ctrl-C, and SIGKILL
//! followed by gc. They run the `egress_lab` binary that `cargo test` built beside them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use harness::provider::lab::gc;
use harness::provider::runs;

/// The newest `egress_lab-<hash>` test binary next to this one.
fn egress_lab_binary() -> PathBuf {
    suite_binary("egress_lab")
}

/// The newest `<suite>-<hash>` test binary next to this one.
fn suite_binary(suite: &str) -> PathBuf {
    let deps = std::env::current_exe().unwrap().parent().unwrap().to_owned();
    std::fs::read_dir(&deps)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with(&format!("{suite}-")) && p.extension().is_none()
        })
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).unwrap())
        .unwrap_or_else(|| panic!("no {suite} binary in {}; build it with `cargo test --no-run`", deps.display()))
}

/// A suite binary's command. The runs here are the tests' own (faults injected on purpose):
/// they never write to a GitHub job summary this test process may have been given, and each
/// is a run of its own, not a part of the nextest run this test may be one process of.
fn suite_command(binary: &Path) -> Command {
    let mut command = Command::new(binary);
    own_run(&mut command);
    command
}

/// [`suite_command`]'s environment: no job summary, no multi-process run id.
fn own_run(command: &mut Command) {
    command.env_remove("GITHUB_STEP_SUMMARY");
    for variable in harness::provider::runs::RUN_ID_VARIABLES {
        command.env_remove(variable);
    }
}

/// Runs `binary args` as the unprivileged user `nobody`.
fn as_nobody(binary: &Path) -> Command {
    let mut command = Command::new("setpriv");
    own_run(&mut command);
    command.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]).arg(binary);
    command
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// A report directory `nobody` can write to, removed at the end of the test.
fn report_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    dir
}

/// Runs egress_lab with `env` and reports in a fresh directory; returns its output and
/// the directory (its JUnit file is at `egress_lab/junit.xml`).
fn run_egress_lab(env: &[(&str, &std::ffi::OsStr)]) -> (Output, tempfile::TempDir) {
    run_suite("egress_lab", env)
}

/// Runs a suite binary with `env` and reports in a fresh directory.
fn run_suite(suite: &str, env: &[(&str, &std::ffi::OsStr)]) -> (Output, tempfile::TempDir) {
    let reports = report_dir();
    let output = assert_cmd::Command::from_std(suite_command(&suite_binary(suite)))
        .env("CNICONF_REPORT_DIR", reports.path())
        .env("CNICONF_GOLDEN_DIR", reports.path().join("golden"))
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (output, reports)
}

/// JUnit parsed by Python's XML parser, independent of the crate that wrote it:
/// returns one `name|status|message` line per testcase.
fn junit_cases(path: &Path) -> Vec<String> {
    junit_cases_of(path, "lab")
}

/// As [`junit_cases`], for a run on `provider`.
fn junit_cases_of(path: &Path, provider: &str) -> Vec<String> {
    let script = r#"
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == "testsuites", root.tag
for suite in root.iter("testsuite"):
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props.get("provider") == sys.argv[2], props
    for case in suite.iter("testcase"):
        status = "passed"
        message = ""
        for kind in ("failure", "error", "skipped"):
            node = case.find(kind)
            if node is not None:
                status, message = kind, node.get("message") or ""
        print(f"{case.get('name')}|{status}|{message}")
"#;
    let output = Command::new("python3").args(["-c", script]).arg(path).arg(provider).output().expect("python3 runs");
    assert!(output.status.success(), "JUnit {} is not valid: {}", path.display(), text(&output));
    String::from_utf8(output.stdout).unwrap().lines().map(str::to_owned).collect()
}

/// The `<properties>` of a JUnit file's suite, read by Python's XML parser.
fn junit_properties(path: &Path) -> Vec<(String, String)> {
    let script = "import sys, xml.etree.ElementTree as ET\nfor p in ET.parse(sys.argv[1]).getroot().iter('property'):\n    print(p.get('name') + '\\t' + p.get('value'))";
    let output = Command::new("python3").args(["-c", script]).arg(path).output().expect("python3 runs");
    assert!(output.status.success(), "{}", text(&output));
    String::from_utf8(output.stdout).unwrap().lines().filter_map(|l| l.split_once('\t')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

/// Names of lab namespaces whose owner is this child process.
fn clusters_of(pid: u32) -> Vec<String> {
    std::fs::read_dir(runs::state_root())
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| std::fs::read_to_string(e.path().join("owner.pid")).is_ok_and(|p| p.split_whitespace().next() == Some(pid.to_string().as_str())))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn namespaces_of(cluster: &str) -> usize {
    std::fs::read_dir("/run/netns")
        .map(|entries| entries.filter_map(|e| e.ok()).filter(|e| e.file_name().to_string_lossy().starts_with(&format!("{cluster}-"))).count())
        .unwrap_or(0)
}

/// Starts egress_lab with traffic that hangs (the external host drops everything) and
/// waits until its cluster exists; returns the child and its cluster's name (its callers
/// signal and wait it).
#[allow(clippy::zombie_processes)]
fn start_hanging_run(reports: &Path) -> (std::process::Child, String) {
    let child = suite_command(&egress_lab_binary())
        .env("CNICONF_LAB_FAULTS", "external-unreachable")
        .env("CNICONF_REPORT_DIR", reports)
        .env("CNICONF_GOLDEN_DIR", reports.join("golden"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(cluster) = clusters_of(child.id()).into_iter().next() {
            if namespaces_of(&cluster) >= 5 {
                // Let the scenarios start their pods and requests.
                std::thread::sleep(Duration::from_millis(700));
                return (child, cluster);
            }
        }
        assert!(Instant::now() < deadline, "egress_lab built no cluster within 20s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn listing_needs_no_root_and_builds_nothing() {
    let reports = report_dir();
    let list = |extra: &[&str]| {
        let output = as_nobody(&egress_lab_binary()).arg("--list").args(extra).env("CNICONF_REPORT_DIR", reports.path()).output().unwrap();
        assert!(output.status.success(), "{}", text(&output));
        // Nothing ran: as nobody a cluster could not even be attempted without an error.
        assert!(!text(&output).contains("cluster"), "{}", text(&output));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let listed = list(&[]);
    for scenario in ["selected_pod_leaves_with_the_egress_ip", "pod_without_egress_policy_leaves_with_its_node_ip"] {
        assert!(listed.contains(&format!("{scenario}: test")), "{listed}");
    }
    let terse = list(&["--format", "terse"]);
    assert_eq!(terse.lines().count(), 6, "nextest's terse listing: {terse}");
    assert!(!reports.path().join("egress_lab").exists(), "listing writes no reports");
}

#[test]
fn an_exact_filter_that_matches_nothing_builds_nothing() {
    let reports = report_dir();
    let output = suite_command(&egress_lab_binary()).args(["--exact", "no_such_scenario"]).env("CNICONF_REPORT_DIR", reports.path()).output().unwrap();
    assert!(output.status.success(), "{}", text(&output));
    assert!(!text(&output).contains("cluster ready"), "{}", text(&output));
}

#[test]
fn a_run_without_root_fails_clearly_and_still_writes_junit() {
    let reports = report_dir();
    let output =
        as_nobody(&egress_lab_binary()).env("CNICONF_REPORT_DIR", reports.path()).env("CNICONF_GOLDEN_DIR", reports.path().join("golden")).output().unwrap();
    assert!(!output.status.success());
    assert!(text(&output).contains("the lab provider needs root"), "{}", text(&output));
    let cases = junit_cases(&reports.path().join("egress_lab/junit.xml"));
    assert!(cases.iter().any(|c| c.starts_with("Infrastructure/Provisioning|error|the lab provider needs root")), "{cases:#?}");
}

#[test]
fn an_unknown_fault_name_is_refused_with_the_known_ones() {
    let (output, _reports) = run_egress_lab(&[("CNICONF_LAB_FAULTS", "snat-off".as_ref())]);
    assert!(!output.status.success());
    assert!(text(&output).contains("unknown lab fault `snat-off` in CNICONF_LAB_FAULTS; expected one of: node-masquerade-off"), "{}", text(&output));
}

#[test]
fn an_unknown_collection_mode_errors_every_scenario_with_the_known_ones() {
    let (output, reports) = run_egress_lab(&[("CNICONF_COLLECT", "sometimes".as_ref())]);
    assert!(!output.status.success());
    let expected = "unknown collection mode `sometimes` in CNICONF_COLLECT; expected one of: failures (the default), always, never";
    let cases = junit_cases(&reports.path().join("egress_lab/junit.xml"));
    assert!(cases.iter().all(|c| c.contains("|error|") && c.contains(expected)), "{cases:#?}");
}

#[test]
fn a_faulty_datapath_fails_the_run_and_junit_carries_the_evidence() {
    let (output, reports) = run_egress_lab(&[("CNICONF_LAB_FAULTS", "gateway-snat-missing".as_ref())]);
    assert!(!output.status.success(), "{}", text(&output));
    let cases = junit_cases(&reports.path().join("egress_lab/junit.xml"));
    let selected = cases.iter().find(|c| c.starts_with("selected_pod_leaves_with_the_egress_ip|")).unwrap();
    assert!(selected.contains("|failure|") && selected.contains("expected egress-ip") && selected.contains("observed pod"), "{selected}");
    // The failover scenario's pod is selected too: it leaves unSNATed through the new gateway.
    let failover = cases.iter().find(|c| c.starts_with("egress_ip_moves_to_another_node_when_its_node_fails|")).unwrap();
    assert!(failover.contains("|failure|") && failover.contains("observed pod"), "{failover}");
    let others: Vec<_> = cases.iter().filter(|c| !c.starts_with("selected_pod") && !c.starts_with("egress_ip_moves")).collect();
    assert!(others.iter().all(|c| c.contains("|passed|")), "{others:#?}");
    // Each failure carries its diagnostics bundle, as the JUnit attachment line GitHub's
    // and Jenkins's reporters read; a pass carries none (CNICONF_COLLECT=failures).
    let attachments = junit_attachments(&reports.path().join("egress_lab/junit.xml"));
    let bundles = reports.path().join("egress_lab/bundles");
    for scenario in ["selected_pod_leaves_with_the_egress_ip", "egress_ip_moves_to_another_node_when_its_node_fails"] {
        let bundle = attachments
            .iter()
            .find(|(case, _)| case == scenario)
            .map(|(_, path)| PathBuf::from(path))
            .unwrap_or_else(|| panic!("{scenario} has no attachment: {attachments:?}"));
        assert!(bundle.starts_with(&bundles) && bundle.join("bundle.txt").is_file() && bundle.join("path-trace.txt").is_file(), "{}", bundle.display());
    }
    assert_eq!(attachments.len(), 2, "{attachments:?}");
    let summary = std::fs::read_to_string(reports.path().join("egress_lab/conformance.yaml")).unwrap();
    assert!(summary.contains("bundle: ") && summary.contains("egress_lab/bundles/selected_pod_leaves_with_the_egress_ip-t"), "{summary}");
    // The next run's reports are its own: a healthy run leaves no bundle, and the earlier
    // run's are gone with it.
    let again = suite_command(&egress_lab_binary())
        .env("CNICONF_REPORT_DIR", reports.path())
        .env("CNICONF_GOLDEN_DIR", reports.path().join("golden-again"))
        .output()
        .unwrap();
    assert!(again.status.success(), "{}", text(&again));
    assert!(std::fs::read_dir(&bundles).map_or(true, |mut entries| entries.next().is_none()), "an earlier run's bundles remain in {}", bundles.display());
}

/// (test case, attached path) for each `[[ATTACHMENT|path]]` line in a JUnit file's cases.
fn junit_attachments(path: &Path) -> Vec<(String, String)> {
    let script = "import sys, re, xml.etree.ElementTree as ET\nfor case in ET.parse(sys.argv[1]).getroot().iter('testcase'):\n    out = case.find('system-out')\n    for m in re.finditer(r'\\[\\[ATTACHMENT\\|([^\\]]+)\\]\\]', out.text if out is not None and out.text else ''):\n        print(case.get('name') + '\\t' + m.group(1))";
    let output = Command::new("python3").args(["-c", script]).arg(path).output().expect("python3 runs");
    assert!(output.status.success(), "{}", text(&output));
    String::from_utf8(output.stdout).unwrap().lines().filter_map(|l| l.split_once('\t')).map(|(a, b)| (a.to_owned(), b.to_owned())).collect()
}

fn interrupting_leaves_nothing_behind(signal: &str) {
    let reports = report_dir();
    let (mut child, cluster) = start_hanging_run(reports.path());
    Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "interrupted runs exit with 130");
    assert_eq!(namespaces_of(&cluster), 0, "namespaces of {cluster} remain");
    assert!(!runs::state_dir(&cluster).exists());
}

#[test]
fn ctrl_c_leaves_nothing_behind() {
    interrupting_leaves_nothing_behind("-INT");
}

#[test]
fn sigterm_leaves_nothing_behind() {
    interrupting_leaves_nothing_behind("-TERM");
}

#[test]
fn a_killed_run_is_removed_by_gc() {
    let reports = report_dir();
    let (mut child, cluster) = start_hanging_run(reports.path());
    child.kill().unwrap();
    // Not reaped: as under a PID 1 that never reaps, the killed run is a zombie while gc runs.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(format!("/proc/{}/stat", child.id()))
        .is_ok_and(|stat| stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')))
    {
        assert!(Instant::now() < deadline, "the killed run never became a zombie");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(namespaces_of(&cluster) > 0, "SIGKILL cannot clean up; gc must");
    let leftover = gc::leftovers().into_iter().find(|l| l.cluster == cluster).expect("gc sees the killed run's cluster");
    assert!(!leftover.owner_alive, "a zombie owner is dead");
    // What `cargo xtask gc` does; live runs of the other tests are left alone.
    let collected = gc::collect(false);
    child.wait().unwrap();
    assert!(collected.iter().any(|(l, c)| l.cluster == cluster && matches!(c, gc::Collected::Removed { .. })), "{collected:?}");
    assert_eq!(namespaces_of(&cluster), 0);
    assert!(!runs::state_dir(&cluster).exists());
}

/// Killed while its nodes' CNI is being replaced (the moment a run's state is most spread
/// out: both versions' plugins, pods of each, connections held through the switch), a run
/// leaves what `cargo xtask gc` removes entirely: namespaces, the state directory and the
/// mounts in it (node BPF filesystems, runtime-style namespace views).
#[test]
fn a_run_killed_mid_upgrade_is_removed_by_gc() {
    use std::io::BufRead;
    let reports = report_dir();
    let mut child = suite_command(&suite_binary("upgrade_lab"))
        .args(["--exact", "long_lived_connections_stay_open_through_the_upgrade"])
        .env("CNICONF_REPORT_DIR", reports.path())
        .env("CNICONF_GOLDEN_DIR", reports.path().join("golden"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.map_while(Result::ok) {
        let upgrading = line.contains("CNI replaced by reference-portmap-firewall-1.9.1");
        seen.push(line);
        if upgrading {
            break;
        }
    }
    let cluster = clusters_of(child.id()).into_iter().next().unwrap_or_else(|| panic!("no cluster of the run; it printed:\n{}", seen.join("\n")));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(seen.last().is_some_and(|l| l.contains("CNI replaced by")), "killed before the upgrade began:\n{}", seen.join("\n"));
    assert!(namespaces_of(&cluster) > 0, "SIGKILL cannot clean up; gc must");
    let collected = gc::collect(false);
    assert!(collected.iter().any(|(l, c)| l.cluster == cluster && matches!(c, gc::Collected::Removed { .. })), "{collected:?}");
    assert_eq!(namespaces_of(&cluster), 0);
    assert!(!runs::state_dir(&cluster).exists());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&cluster), "mounts of {cluster} remain:\n{mounts}");
}

#[test]
fn missing_tools_plugins_and_malformed_fixtures_are_named() {
    let empty = tempfile::tempdir().unwrap();
    let broken = empty.path().join("kind.yaml");
    std::fs::write(&broken, "kind: Cluster\nnodes: [\n").unwrap();
    let cases: [(&str, &std::ffi::OsStr, String); 3] = [
        ("PATH", empty.path().as_os_str(), "required tool `ip` was not found on PATH".into()),
        ("CNI_PATH", empty.path().as_os_str(), format!("CNI plugin `bridge` was not found in CNI_PATH {}", empty.path().display())),
        ("CNICONF_KIND_CONFIG", broken.as_os_str(), format!("malformed fixture {}", broken.display())),
    ];
    for (variable, value, expected) in cases {
        let (output, reports) = run_egress_lab(&[(variable, value)]);
        assert!(!output.status.success(), "{variable}: {}", text(&output));
        assert!(text(&output).contains(&expected), "{variable}: expected `{expected}` in:\n{}", text(&output));
        let cases = junit_cases(&reports.path().join("egress_lab/junit.xml"));
        assert!(cases.iter().any(|c| c.starts_with("Infrastructure/Provisioning|error|") && c.contains(&expected)), "{cases:#?}");
    }
}

#[test]
fn kind_suites_without_kind_are_ignored_with_the_reason_or_fail_when_required() {
    // A PATH without kind, whatever this machine has: the test never depends on the host.
    let no_tools = tempfile::tempdir().unwrap();
    let path = ("PATH", no_tools.path().as_os_str());
    let empty_golden = report_dir();
    let (output, reports) = run_suite("egress_antrea", &[path, ("CNICONF_GOLDEN_DIR", empty_golden.path().as_os_str())]);
    assert!(output.status.success(), "ignored scenarios do not fail the run: {}", text(&output));
    let cases = junit_cases_of(&reports.path().join("egress_antrea/junit.xml"), "kind");
    assert_eq!(cases.len(), 5, "{cases:#?}");
    assert!(cases.iter().all(|c| c.contains("|skipped|required tool `kind` was not found on PATH")), "{cases:#?}");
    assert!(cases.iter().any(|c| c.starts_with("egress_ip_moves_to_another_node_when_its_node_fails|")), "{cases:#?}");
    assert_eq!(std::fs::read_dir(empty_golden.path()).unwrap().count(), 0, "ignored scenarios write no golden records");

    let (output, reports) = run_suite("canary_cilium", &[path]);
    assert!(output.status.success(), "{}", text(&output));
    let cases = junit_cases_of(&reports.path().join("canary_cilium/junit.xml"), "kind");
    assert!(cases.len() == 9 && cases.iter().all(|c| c.contains("|skipped|required tool `kind`")), "{cases:#?}");

    let (output, reports) = run_suite("egress_cilium", &[path, ("CNICONF_REQUIRE_TOOLS", "1".as_ref())]);
    assert!(!output.status.success(), "with the switch, a missing tool fails: {}", text(&output));
    let cases = junit_cases_of(&reports.path().join("egress_cilium/junit.xml"), "kind");
    assert!(cases.iter().any(|c| c.starts_with("Infrastructure/Provisioning|error|required tool `kind`")), "{cases:#?}");
}

#[test]
fn a_lab_run_with_the_reference_plugins_is_titled_a_self_test() {
    let golden = harness::workspace_root().join("golden");
    let (output, reports) = run_egress_lab(&[("CNICONF_GOLDEN_DIR", golden.as_os_str())]);
    assert!(output.status.success(), "{}", text(&output));
    let properties = junit_properties(&reports.path().join("egress_lab/junit.xml"));
    assert!(properties.contains(&("run.purpose".into(), "self-test of the suites (not a certification of the plugins)".into())), "{properties:#?}");
    assert!(text(&output).contains("egress_lab on lab: self-test of the suites"), "{}", text(&output));
}

#[test]
fn the_lab_declines_real_cnis_with_the_reason() {
    let (output, reports) = run_suite("egress_antrea", &[("CNICONF_PROVIDER", "lab".as_ref())]);
    assert!(output.status.success(), "{}", text(&output));
    let cases = junit_cases_of(&reports.path().join("egress_antrea/junit.xml"), "lab");
    assert!(
        cases.iter().all(|c| c.contains("|skipped|the lab runs CNIs given as a conflist")
            && c.contains("antrea is installed on a cluster and needs the kind or existing provider")),
        "{cases:#?}"
    );
}

#[test]
fn the_existing_provider_names_what_it_needs() {
    let (output, _reports) = run_suite("egress_cilium", &[("CNICONF_PROVIDER", "existing".as_ref()), ("CNICONF_EGRESS_IPS", "192.0.2.7".as_ref())]);
    assert!(!output.status.success());
    assert!(text(&output).contains("set CNICONF_EXTERNAL_ECHO=<address:port>"), "{}", text(&output));
    let (output, _reports) = run_suite("egress_cilium", &[("CNICONF_PROVIDER", "existing".as_ref()), ("CNICONF_EXTERNAL_ECHO", "not-an-address".as_ref())]);
    assert!(text(&output).contains("CNICONF_EXTERNAL_ECHO: `not-an-address` is not an address:port"), "{}", text(&output));
    let (output, _reports) = run_suite("egress_cilium", &[("CNICONF_PROVIDER", "gke".as_ref())]);
    assert!(text(&output).contains("unknown provider `gke` in CNICONF_PROVIDER; expected one of: lab, kind, existing"), "{}", text(&output));
}

#[test]
fn a_run_of_one_process_per_scenario_writes_one_complete_report() {
    // As nextest runs a suite: `--exact <name>` per process, all with the same run id.
    let reports = report_dir();
    let list = suite_command(&egress_lab_binary()).args(["--list", "--format", "terse"]).output().unwrap();
    let scenarios: Vec<String> = String::from_utf8_lossy(&list.stdout).lines().filter_map(|l| l.strip_suffix(": test")).map(str::to_owned).collect();
    assert_eq!(scenarios.len(), 6, "{}", text(&list));
    let children: Vec<_> = scenarios
        .iter()
        .map(|scenario| {
            suite_command(&egress_lab_binary())
                .args(["--exact", scenario])
                .env("NEXTEST_RUN_ID", "3f1c2d4e-acceptance")
                .env("CNICONF_REPORT_DIR", reports.path())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", text(&output));
    }
    let cases = junit_cases(&reports.path().join("egress_lab/junit.xml"));
    let mut names: Vec<&str> = cases.iter().map(|c| c.split('|').next().unwrap()).collect();
    names.sort();
    let mut expected: Vec<&str> = scenarios.iter().map(String::as_str).collect();
    expected.sort();
    assert_eq!(names, expected, "every process's scenario, none overwritten: {cases:#?}");
    assert!(cases.iter().all(|c| c.contains("|passed|")), "{cases:#?}");
}

/// A vendor's profile: `ptp` + `host-local`, chained with `bandwidth`, from Debian's
/// plugins, written beside its conflist as a vendor would, with no Rust.
fn ptp_profile(dir: &Path) -> PathBuf {
    std::fs::write(
        dir.join("ptp.conflist"),
        r#"{"cniVersion": "1.0.0", "name": "ptp-lab", "plugins": [
            {"type": "ptp", "ipMasq": false, "ipam": {"type": "host-local", "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "bandwidth", "ingressRate": 1000000000, "ingressBurst": 100000000, "egressRate": 1000000000, "egressBurst": 100000000}]}"#,
    )
    .unwrap();
    let profile = dir.join("profile.yaml");
    std::fs::write(
        &profile,
        "name: ptp-vendor\nversion: 1.1.1\ninstall:\n  lab:\n    conflist: ptp.conflist\n    pluginDir: /usr/lib/cni\nfeatures: [egress-gateway]\negress: lab-reference\n",
    )
    .unwrap();
    profile
}

#[test]
fn a_conflist_at_a_version_its_plugins_do_not_claim_is_refused_before_any_lab_is_built() {
    let vendor = tempfile::tempdir().unwrap();
    let profile = ptp_profile(vendor.path());
    let conflist = vendor.path().join("ptp.conflist");
    let at_1_1_0 = std::fs::read_to_string(&conflist).unwrap().replacen(r#""cniVersion": "1.0.0""#, r#""cniVersion": "1.1.0""#, 1);
    assert!(at_1_1_0.contains("1.1.0"));
    std::fs::write(&conflist, at_1_1_0).unwrap();
    let (output, reports) = run_suite("egress_lab", &[("CNICONF_CNI", profile.as_os_str())]);
    assert!(!output.status.success(), "{}", text(&output));
    let expected = format!("malformed fixture {}: cniVersion: expected a version every plugin of the chain claims, found \"1.1.0\"", conflist.display());
    let cases = junit_cases(&reports.path().join("egress_lab/junit.xml"));
    assert!(cases.iter().any(|c| c.starts_with("Infrastructure/Provisioning|error|") && c.contains(&expected) && c.contains("ptp claims 0.1.0")), "{cases:#?}");
}

#[test]
fn a_routed_ptp_chain_from_a_profile_file_runs_every_egress_scenario() {
    let vendor = tempfile::tempdir().unwrap();
    let profile = ptp_profile(vendor.path());
    let golden = report_dir();
    let (output, reports) = run_suite(
        "egress_lab",
        &[("CNICONF_CNI", profile.as_os_str()), ("CNICONF_GOLDEN_DIR", golden.path().as_os_str()), ("INSTA_UPDATE", "always".as_ref()), ("CI", "".as_ref())],
    );
    assert!(output.status.success(), "{}", text(&output));
    let cases = junit_cases(&reports.path().join("egress_lab/junit.xml"));
    assert_eq!(cases.iter().filter(|c| c.contains("|passed|")).count(), 4, "{cases:#?}");
    assert!(
        std::fs::read_dir(golden.path().join("egress_lab")).unwrap().all(|e| e.unwrap().file_name().to_string_lossy().starts_with("ptp-vendor__")),
        "records are the vendor's"
    );
    let properties = junit_properties(&reports.path().join("egress_lab/junit.xml"));
    let value = |name: &str| properties.iter().filter(|(k, _)| k.starts_with(name)).map(|(_, v)| v.as_str()).collect::<Vec<_>>();
    assert_eq!(value("run.purpose"), ["certification"], "{properties:#?}");
    let source = format!("the profile {}", profile.display());
    assert_eq!(value("cni.version"), ["1.1.1", source.as_str()], "the vendor's version, and where it comes from: {properties:#?}");
    let components = value("component.");
    assert!(components.iter().any(|c| c.starts_with("under test: ptp ") && c.contains("/usr/lib/cni/ptp")), "{components:#?}");
    assert!(components.iter().any(|c| c.starts_with("under test: bandwidth ")), "{components:#?}");
    assert!(components.iter().any(|c| c.starts_with("harness reference: lab reference egress gateway")), "{components:#?}");
    assert!(
        properties.iter().any(|(k, v)| k == "provided-by-harness" && v == "lab reference egress gateway"),
        "the egress scenarios credit the harness's gateway: {properties:#?}"
    );
}

/// A plugin routed in Calico's style (`fixtures/cni/stand-ins/routed-proxy-arp`): a /32 per
/// pod and `default via 169.254.1.1`, answered by proxy ARP on the node, which answers only
/// for what the node can route, so it needs a node's default route, as a kind node has.
/// Its conflist names the node's range with `{nodePodCIDR}`. Every egress scenario passes
/// on it; its first run writes the golden records it had none of (no "does not match"),
/// with its reports, and the second run compares with them.
#[test]
fn a_plugin_routed_by_proxy_arp_passes_every_egress_scenario_from_its_first_run() {
    let profile = harness::workspace_root().join("fixtures/cni/stand-ins/routed-proxy-arp/profile.yaml");
    let reports = report_dir();
    let run = || {
        assert_cmd::Command::from_std(suite_command(&suite_binary("egress_lab")))
            .env_remove("CNICONF_GOLDEN_DIR")
            .env("CNICONF_REPORT_DIR", reports.path())
            .env("CNICONF_CNI", &profile)
            .output()
            .unwrap()
    };
    let first = run();
    assert!(first.status.success(), "{}", text(&first));
    assert!(!text(&first).contains("does not match"), "{}", text(&first));
    let records: Vec<_> =
        std::fs::read_dir(reports.path().join("golden/egress_lab")).unwrap().flatten().map(|e| e.file_name().into_string().unwrap()).collect();
    assert_eq!(records.len(), 4, "one record per scenario, with the reports: {records:?}");
    assert!(records.iter().all(|r| r.starts_with("routed-proxy-arp__") && r.ends_with(".snap")), "{records:?}");
    let second = run();
    assert!(second.status.success(), "{}", text(&second));
}

#[test]
fn an_unknown_cni_fails_every_scenario_listing_the_known_profiles() {
    let (output, reports) = run_suite("egress_lab", &[("CNICONF_CNI", "calico-typo".as_ref())]);
    assert!(!output.status.success());
    // Which provider would have run it depends on the profile, which did not load.
    let cases = junit_cases_of(&reports.path().join("egress_lab/junit.xml"), "unknown");
    assert!(cases.iter().any(|c| c.starts_with("Infrastructure/Provisioning|error|unknown CNI profile `calico-typo` in CNICONF_CNI; expected one of: antrea, antrea-2.1, calico, cilium, cilium-1.15, flannel, reference")), "{cases:#?}");
}

#[test]
fn a_vendors_own_chained_binary_runs_in_the_chain_with_its_prev_result() {
    // A plugin no one here ships: it records what the runtime gave it and passes the
    // previous result on, as a chained plugin must.
    let vendor = tempfile::tempdir().unwrap();
    let bin = vendor.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let log = vendor.path().join("calls.log");
    let plugin = bin.join("vendor-tag");
    std::fs::write(
        &plugin,
        format!(
            r#"#!/usr/bin/env python3
import json, os, sys
config = json.load(sys.stdin)
command = os.environ["CNI_COMMAND"]
with open("{log}", "a") as log:
    log.write(json.dumps({{"command": command, "has_prev_result": "prevResult" in config, "runtime_config": config.get("runtimeConfig")}}) + "\n")
if command == "ADD":
    json.dump(config["prevResult"], sys.stdout)
elif command == "VERSION":
    json.dump({{"cniVersion": "1.0.0", "supportedVersions": ["0.4.0", "1.0.0"]}}, sys.stdout)
"#,
            log = log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&plugin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(
        vendor.path().join("chain.conflist"),
        r#"{"cniVersion": "1.0.0", "name": "vendor", "plugins": [
            {"type": "ptp", "ipMasq": false, "ipam": {"type": "host-local", "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "vendor-tag", "capabilities": {"ipRanges": true}}]}"#,
    )
    .unwrap();
    let profile = vendor.path().join("profile.yaml");
    std::fs::write(&profile, "name: vendor\nversion: 0.1.0\ninstall:\n  lab:\n    conflist: chain.conflist\n    pluginDirs: [bin, /usr/lib/cni]\nfeatures: [egress-gateway]\negress: lab-reference\n").unwrap();
    let golden = report_dir();
    let (output, _reports) = run_suite(
        "egress_lab",
        &[("CNICONF_CNI", profile.as_os_str()), ("CNICONF_GOLDEN_DIR", golden.path().as_os_str()), ("INSTA_UPDATE", "always".as_ref()), ("CI", "".as_ref())],
    );
    assert!(output.status.success(), "{}", text(&output));
    let calls: Vec<serde_json::Value> = std::fs::read_to_string(&log).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let adds: Vec<_> = calls.iter().filter(|c| c["command"] == "ADD").collect();
    assert!(!adds.is_empty() && adds.iter().all(|c| c["has_prev_result"] == true), "every ADD got ptp's result as prevResult: {calls:#?}");
    assert!(
        adds.iter().all(|c| c["runtime_config"]["ipRanges"][0][0]["subnet"].as_str().is_some_and(|s| s.starts_with("10.244."))),
        "the capability it declared reached it: {calls:#?}"
    );
    assert!(calls.iter().any(|c| c["command"] == "DEL"), "torn down with DEL: {calls:#?}");
}

#[test]
fn in_github_actions_a_run_puts_its_report_on_the_job_summary() {
    let summary = tempfile::NamedTempFile::new().unwrap();
    let golden = harness::workspace_root().join("golden");
    let (output, _reports) = run_egress_lab(&[("GITHUB_STEP_SUMMARY", summary.path().as_os_str()), ("CNICONF_GOLDEN_DIR", golden.as_os_str())]);
    assert!(output.status.success(), "{}", text(&output));
    let markdown = std::fs::read_to_string(summary.path()).unwrap();
    assert!(
        markdown.starts_with("## Self-test of the suites with the reference profile") && markdown.contains("| ✅ | `selected_pod_leaves_with_the_egress_ip` |"),
        "{markdown}"
    );
}

/// cni_spec interrupted while a plugin hangs in ADD: every node it made is removed (the
/// hanging plugin killed with it) and it exits with 130.
#[test]
fn an_interrupted_cni_spec_run_leaves_no_nodes_behind() {
    let (mut child, _plugins, _reports) = cni_spec_of_a_hanging_plugin("60.0113", None);
    let deadline = Instant::now() + Duration::from_secs(20);
    let clusters = loop {
        let clusters = clusters_of(child.id());
        // Two checks in flight, each with its node and a container whose ADD hangs.
        if clusters.len() >= 2 && clusters.iter().all(|c| namespaces_of(c) >= 2) {
            break clusters;
        }
        assert!(Instant::now() < deadline, "cni_spec made no nodes within 20s: {clusters:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(300));
    assert!(!processes_running("sleep 60.0113").is_empty(), "the plugins hang in ADD");
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(130), "interrupted runs exit with 130");
    for cluster in clusters {
        assert_eq!(namespaces_of(&cluster), 0, "namespaces of {cluster} remain");
        assert!(!runs::state_dir(&cluster).exists(), "the state of {cluster} remains");
    }
    assert_eq!(processes_running("sleep 60.0113"), Vec::<u32>::new(), "no plugin the run started outlives it");
}

/// cni_spec started on a plugin that hangs (see [`hanging_plugin`]), with the plugin budget
/// given; the run, and the directories of its plugin and reports.
fn cni_spec_of_a_hanging_plugin(marker: &str, budget_seconds: Option<&str>) -> (std::process::Child, tempfile::TempDir, tempfile::TempDir) {
    let plugins = tempfile::tempdir().unwrap();
    hanging_plugin(&plugins.path().join("hang"), marker);
    let conflist = plugins.path().join("hang.conflist");
    std::fs::write(&conflist, r#"{"cniVersion": "1.0.0", "name": "hang", "plugins": [{"type": "hang"}]}"#).unwrap();
    let reports = report_dir();
    let mut command = suite_command(&suite_binary("cni_spec"));
    command
        .env("CNICONF_SPEC_SUBJECT", &conflist)
        .env("CNICONF_SPEC_PLUGIN_DIR", plugins.path())
        .env("CNICONF_REPORT_DIR", reports.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(seconds) = budget_seconds {
        command.env("CNICONF_PLUGIN_BUDGET_SECONDS", seconds);
    }
    (command.spawn().unwrap(), plugins, reports)
}

/// A plugin that answers VERSION and hangs in every other command, in a `sleep` whose
/// argument `marker` names its processes.
fn hanging_plugin(path: &Path, marker: &str) {
    std::fs::write(path, format!("#!/bin/sh\nif [ \"$CNI_COMMAND\" = VERSION ]; then echo '{{\"cniVersion\":\"1.0.0\",\"supportedVersions\":[\"0.4.0\",\"1.0.0\"]}}'; exit 0; fi\ncat > /dev/null\necho 'about to wait' >&2\nexec sleep {marker}\n")).unwrap();
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

/// The pids of processes whose command line is `command` (arguments joined by spaces).
fn processes_running(command: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).replace('\0', " ").trim() == command))
        .collect()
}

/// cni_spec killed outright (no cleanup can run) while its plugins hang in ADD, with a
/// budget longer than the test: the plugins outlive it, and `cargo xtask gc` (what it
/// calls) ends them by their recorded process groups, though their namespaces are gone.
#[test]
fn a_killed_run_s_hung_plugins_are_ended_by_gc() {
    let (mut child, _plugins, _reports) = cni_spec_of_a_hanging_plugin("61.0117", Some("300"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while processes_running("sleep 61.0117").len() < 2 {
        assert!(Instant::now() < deadline, "no plugin hung within 20s");
        std::thread::sleep(Duration::from_millis(50));
    }
    let clusters = clusters_of(child.id());
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!processes_running("sleep 61.0117").is_empty(), "SIGKILL cannot end them; gc must");
    let collected = gc::collect(false);
    for cluster in &clusters {
        assert!(collected.iter().any(|(l, c)| &l.cluster == cluster && matches!(c, gc::Collected::Removed { .. })), "{cluster}: {collected:?}");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !processes_running("sleep 61.0117").is_empty() {
        assert!(Instant::now() < deadline, "plugins left after gc: {:?}", processes_running("sleep 61.0117"));
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A vendor's chained plugin that hangs in ADD: every scenario errors within seconds
/// (not minutes) with "hung in ADD after 1 s", the pod, and what the plugin had printed,
/// and no plugin process outlives the run.
#[test]
fn a_plugin_hanging_in_add_errors_each_scenario_promptly_in_its_words() {
    let vendor = tempfile::tempdir().unwrap();
    let bin = vendor.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    hanging_plugin(&bin.join("vendor-hang"), "62.0119");
    std::fs::write(
        vendor.path().join("chain.conflist"),
        r#"{"cniVersion": "1.0.0", "name": "vendor", "plugins": [
            {"type": "ptp", "ipMasq": false, "ipam": {"type": "host-local", "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "vendor-hang"}]}"#,
    )
    .unwrap();
    let profile = vendor.path().join("profile.yaml");
    std::fs::write(&profile, "name: vendor-hang\nversion: 0.1.0\ninstall:\n  lab:\n    conflist: chain.conflist\n    pluginDirs: [bin, /usr/lib/cni]\nfeatures: [egress-gateway]\negress: lab-reference\n").unwrap();
    let started = Instant::now();
    let (output, reports) = run_suite("egress_lab", &[("CNICONF_CNI", profile.as_os_str()), ("CNICONF_PLUGIN_BUDGET_SECONDS", "1".as_ref())]);
    assert!(started.elapsed() < Duration::from_secs(60), "took {:?}", started.elapsed());
    assert!(!output.status.success());
    let junit = std::fs::read_to_string(reports.path().join("egress_lab/junit.xml")).unwrap();
    assert!(junit.contains("CNI ADD of plugin `vendor-hang` for pod ") && junit.contains("hung in ADD after 1 s: its process group was killed"), "{junit}");
    assert!(junit.contains("about to wait"), "what it printed on stderr is kept: {junit}");
    assert_eq!(processes_running("sleep 62.0119"), Vec::<u32>::new());
}

/// A chained plugin that needs what a real node gives its plugins (`fixtures/cni/stand-ins/
/// node-scoped`): `CNI_NETNS` as containerd and CRI-O spell it (`/var/run/netns/cni-<uuid>`),
/// a `/var/run/netns` of its node's pods alone, and a BPF filesystem of the node's own that
/// lasts from ADD to DEL. Every egress scenario passes on it, and on its variant expecting
/// the BPF filesystem every node shares (`bpffs: shared`); the per-node plugin given the
/// shared filesystem finds other nodes' pins and fails, so the sharing is real.
#[test]
fn a_plugin_that_needs_a_real_nodes_view_passes_and_a_shared_bpf_filesystem_is_one() {
    let stand_ins = harness::workspace_root().join("fixtures/cni/stand-ins");
    let run = |profile: &Path| {
        let reports = report_dir();
        let output = assert_cmd::Command::from_std(suite_command(&suite_binary("egress_lab")))
            .env_remove("CNICONF_GOLDEN_DIR")
            .env("CNICONF_REPORT_DIR", reports.path())
            .env("CNICONF_CNI", profile)
            .output()
            .unwrap();
        (output, reports)
    };
    for profile in ["node-scoped", "node-scoped-shared"] {
        let (output, _reports) = run(&stand_ins.join(profile).join("profile.yaml"));
        assert!(output.status.success(), "{profile}: {}", text(&output));
    }
    // The egress pods all land on one worker: pods on two nodes show whose pins meet.
    let dir = tempfile::tempdir().unwrap();
    let per_node = std::fs::read_to_string(stand_ins.join("node-scoped/profile.yaml")).unwrap();
    let shared = per_node
        .replace("conflist: node-scoped.conflist", &format!("conflist: {}", stand_ins.join("node-scoped/node-scoped.conflist").display()))
        .replace("pluginDirs: [bin,", &format!("pluginDirs: [{},", stand_ins.join("node-scoped/bin").display()));
    std::fs::write(dir.path().join("profile.yaml"), format!("{shared}bpffs: shared\n")).unwrap();
    let on_two_nodes = |profile: &Path| -> Vec<Result<(), String>> {
        use harness::provider::Cluster;
        let cni = harness::cni::load_profile(&profile.display().to_string()).unwrap();
        let lab = harness::provider::lab::Lab::provision(&cni, &Default::default()).unwrap();
        lab.create_namespace(&harness::model::NamespaceSpec { name: "pins".into(), labels: Default::default() }).unwrap();
        let outcomes = lab
            .nodes()
            .iter()
            .take(2)
            .map(|node| {
                let spec = harness::model::PodSpec {
                    name: format!("on-{}", node.name),
                    namespace: "pins".into(),
                    labels: Default::default(),
                    node: node.name.clone(),
                    host_ports: vec![],
                };
                lab.create_pod(&spec).map(drop).map_err(|e| e.to_string())
            })
            .collect();
        lab.teardown().unwrap();
        outcomes
    };
    assert!(on_two_nodes(&stand_ins.join("node-scoped/profile.yaml")).iter().all(Result::is_ok), "per node: each node's BPF filesystem its own");
    assert!(on_two_nodes(&stand_ins.join("node-scoped-shared/profile.yaml")).iter().all(Result::is_ok), "shared, as the plugin expects");
    let mismatched = on_two_nodes(&dir.path().join("profile.yaml"));
    assert!(mismatched[0].is_ok(), "{mismatched:?}");
    assert!(mismatched[1].as_ref().is_err_and(|e| e.contains("holds other nodes' marks")), "the nodes' pins meet in one BPF filesystem: {mismatched:?}");
}

/// A vendor's lab profile in `vendor`: an executable stand-in plugin `plugin` (a shell
/// script), a conflist named `name`, Debian's plugins after the vendor's directory; the lab
/// built from it, a worker, and a namespace `name` there.
fn vendor_lab(vendor: &Path, plugin: (&str, &str), name: &str, conflist: &str) -> (harness::provider::lab::Lab, harness::model::Node) {
    vendor_lab_with(vendor, plugin, name, conflist, "", "")
}

/// The same, with `lab_fields` (YAML lines, indented as `install.lab`'s) added to the
/// profile's `install.lab`, and `more` (YAML) appended to the profile.
fn vendor_lab_with(
    vendor: &Path,
    plugin: (&str, &str),
    name: &str,
    conflist: &str,
    lab_fields: &str,
    more: &str,
) -> (harness::provider::lab::Lab, harness::model::Node) {
    use harness::provider::Cluster;
    let script = vendor.join(plugin.0);
    std::fs::write(&script, plugin.1).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(vendor.join(format!("{name}.conflist")), conflist).unwrap();
    let profile = vendor.join("profile.yaml");
    std::fs::write(&profile, format!("name: {name}\nversion: 0.1.0\ninstall:\n  lab:\n    conflist: {name}.conflist\n    pluginDirs: [\"{}\", /usr/lib/cni]\n{lab_fields}features: []\n{more}", vendor.display())).unwrap();
    let cni = harness::cni::load_profile(&profile.display().to_string()).unwrap();
    let lab = harness::provider::lab::Lab::provision(&cni, &harness::provider::lab::LabOptions::from_env().unwrap()).unwrap();
    let node = lab.nodes().iter().find(|n| n.role == harness::model::NodeRole::Worker).unwrap().clone();
    lab.create_namespace(&harness::model::NamespaceSpec { name: name.into(), labels: harness::model::labels([]) }).unwrap();
    (lab, node)
}

/// A pod whose ADD fails (a chained plugin refuses it after bridge's host-local reserved an
/// address) gets the DEL a runtime sends before it drops the sandbox, with no prevResult:
/// the reservation is freed, and the node keeps nothing of the pod.
#[test]
fn a_failed_add_is_followed_by_del_and_frees_what_it_reserved() {
    use harness::model::{labels, PodSpec};
    use harness::provider::Cluster;
    let vendor = tempfile::tempdir().unwrap();
    let refuser = format!(
        "#!/bin/sh\ncat > /dev/null\ncase \"$CNI_COMMAND\" in\n  VERSION) echo '{{\"cniVersion\": \"1.0.0\", \"supportedVersions\": [\"0.4.0\", \"1.0.0\"]}}' ;;\n  ADD) echo '{{\"cniVersion\": \"1.0.0\", \"code\": 11, \"msg\": \"this plugin refuses every ADD\"}}'; exit 1 ;;\n  DEL) echo \"$CNI_CONTAINERID\" >> '{}/deleted' ;;\nesac\n",
        vendor.path().display()
    );
    let conflist = r#"{"cniVersion": "1.0.0", "name": "refused", "plugins": [
            {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipam": {"type": "host-local", "ranges": [[{"subnet": "{nodePodCIDR}"}]]}},
            {"type": "refuses-add"}]}"#;
    let (lab, node) = vendor_lab(vendor.path(), ("refuses-add", &refuser), "refused", conflist);
    let before = lab.node_state(&node).unwrap();
    let refused = lab
        .create_pod(&PodSpec { name: "p".into(), namespace: "refused".into(), labels: labels([]), node: node.name.clone(), host_ports: vec![] })
        .unwrap_err()
        .to_string();
    let after = lab.node_state(&node).unwrap();
    let deleted = std::fs::read_to_string(vendor.path().join("deleted")).unwrap_or_default();
    lab.teardown().unwrap();
    assert!(refused.contains("this plugin refuses every ADD"), "{refused}");
    assert_eq!(deleted.lines().count(), 1, "one DEL reached the chain after the failed ADD: {deleted:?}");
    let reserved: Vec<&String> = after.difference(&before).filter(|line| line.starts_with("file /var/lib/cni") && line.contains("10.244.")).collect();
    assert!(reserved.is_empty(), "the failed ADD's reservation is freed by its DEL: {reserved:?}");
}

/// The vendor's conflist is theirs: its host-local section reaches the plugin as written,
/// placeholders filled in (`subnet` kept, no `ranges` or `dataDir` added), and the IPAM's
/// reservations land in the node's own `/var/lib/cni`, not the host's.
#[test]
fn a_vendor_s_ipam_section_reaches_its_plugin_as_written() {
    use harness::model::{labels, PodSpec};
    use harness::provider::Cluster;
    let vendor = tempfile::tempdir().unwrap();
    let recorder = format!(
        "#!/bin/sh\nconfig=$(cat)\n[ \"$CNI_COMMAND\" = ADD ] && printf '%s' \"$config\" > '{}/add-config.json'\nprintf '%s' \"$config\" | exec /usr/lib/cni/bridge\n",
        vendor.path().display()
    );
    let conflist = r#"{"cniVersion": "1.0.0", "name": "old-style", "plugins": [{"type": "recorded-bridge", "bridge": "cni0", "isGateway": true, "ipam": {"type": "host-local", "subnet": "{nodePodCIDR}"}}]}"#;
    let (lab, node) = vendor_lab(vendor.path(), ("recorded-bridge", &recorder), "old-style", conflist);
    let pod = lab.create_pod(&PodSpec { name: "p".into(), namespace: "old-style".into(), labels: labels([]), node: node.name.clone(), host_ports: vec![] });
    let state = lab.node_state(&node).unwrap();
    lab.teardown().unwrap();
    let pod = pod.unwrap();
    let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(vendor.path().join("add-config.json")).unwrap()).unwrap();
    let ipam = config["ipam"].as_object().unwrap();
    // The node's /24, as the vendor's placeholder named it, and the pod's address in it.
    let subnet = ipam["subnet"].as_str().unwrap();
    let prefix = |address: &str| address.rsplit_once('.').map(|(network, _)| network.to_owned());
    assert!(subnet.ends_with("/24") && prefix(subnet) == prefix(&pod.address.to_string()), "{subnet} {}", pod.address);
    assert!(!ipam.contains_key("ranges") && !ipam.contains_key("dataDir"), "nothing added to the vendor's IPAM: {ipam:?}");
    let reservation = format!("file /var/lib/cni/networks/old-style/{}", pod.address);
    assert!(state.contains(&reservation), "{reservation} in the node's own /var/lib/cni: {state:?}");
    assert!(!std::path::Path::new("/var/lib/cni/networks/old-style").exists(), "nothing of it on the host");
}

/// Tuning keeps a backup of the interface attributes it changes (MTU here) under
/// `/run/cni/tuning`, its default `dataDir` (`defaultDataDir`, `createBackup` and
/// `restoreBackup` in plugins/meta/tuning/tuning.go of containernetworking/plugins): on a
/// lab node that is the node's own `/run/cni`, in its snapshot while the pod lives, gone
/// with its DEL, and never on the host.
#[test]
fn tuning_s_backups_land_in_the_node_s_own_run_cni() {
    use harness::model::{labels, PodSpec};
    use harness::provider::Cluster;
    let vendor = tempfile::tempdir().unwrap();
    let passthrough = "#!/bin/sh\nexec /usr/lib/cni/bridge\n";
    let conflist = r#"{"cniVersion": "1.0.0", "name": "tuned", "plugins": [
            {"type": "own-bridge", "bridge": "cni0", "isGateway": true, "ipam": {"type": "host-local", "ranges": [[{"subnet": "{nodePodCIDR}"}]]}},
            {"type": "tuning", "mtu": 1400}]}"#;
    let host_backups = || std::fs::read_dir("/run/cni/tuning").map(|d| d.count()).unwrap_or(0);
    let on_the_host = host_backups();
    let (lab, node) = vendor_lab(vendor.path(), ("own-bridge", passthrough), "tuned", conflist);
    let pod = lab.create_pod(&PodSpec { name: "p".into(), namespace: "tuned".into(), labels: labels([]), node: node.name.clone(), host_ports: vec![] });
    let with_pod = lab.node_state(&node).unwrap();
    let deleted = pod.as_ref().map(|pod| lab.delete_pod(pod).map_err(|e| e.to_string()));
    let after = lab.node_state(&node).unwrap();
    lab.teardown().unwrap();
    deleted.unwrap_or_else(|e| panic!("the pod should start: {e}")).unwrap();
    let backups: Vec<&String> = with_pod.iter().filter(|line| line.starts_with("file /run/cni/tuning/")).collect();
    assert_eq!(backups.len(), 1, "one backup in the node's own /run/cni while the pod lives: {with_pod:?}");
    assert!(!after.contains(backups[0]), "gone with the pod's DEL: {after:?}");
    assert_eq!(host_backups(), on_the_host, "nothing of it in the host's /run/cni/tuning");
}

/// A vendor's own crate outside this repository (`fixtures/vendor-crate`, the harness by
/// path) builds a suite in a few lines (the shipped egress scenarios and one of its own),
/// finds its profile in its own `fixtures/`, and runs on the lab with its suite binary as
/// the probe (a crate that depends on the harness builds no `cni-probe`: the binary runs
/// here from a directory of its own, nothing beside it), its reports and golden records in
/// its own tree, nothing written into this checkout. (Built into this checkout's target
/// directory, so the harness's dependencies are not compiled again; a vendor has its own.)
#[test]
fn a_vendor_s_own_crate_runs_the_shipped_scenarios_and_its_own_on_the_lab() {
    let checkout = harness::workspace_root();
    let vendor = tempfile::tempdir().unwrap();
    let template = checkout.join("fixtures/vendor-crate");
    copy_tree(&template, vendor.path());
    let manifest = std::fs::read_to_string(template.join("Cargo.toml.in")).unwrap().replace("{harness}", &checkout.join("harness").display().to_string());
    // This workspace's profile settings and lock file: the same builds of every dependency.
    let ours = std::fs::read_to_string(checkout.join("Cargo.toml")).unwrap();
    let profiles = &ours[ours.find("[profile.").unwrap()..];
    std::fs::write(vendor.path().join("Cargo.toml"), format!("{manifest}\n{profiles}")).unwrap();
    std::fs::remove_file(vendor.path().join("Cargo.toml.in")).unwrap();
    std::fs::copy(checkout.join("Cargo.lock"), vendor.path().join("Cargo.lock")).unwrap();
    let mut cargo = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    for (name, _) in std::env::vars_os().filter(|(n, _)| n.to_string_lossy().starts_with("CARGO_") && n != "CARGO_HOME") {
        cargo.env_remove(name);
    }
    let built = cargo
        .args(["test", "--no-run", "--message-format=json-render-diagnostics", "--test", "egress_mycni"])
        .env("CARGO_TARGET_DIR", checkout.join("target"))
        .current_dir(vendor.path())
        .output()
        .unwrap();
    assert!(built.status.success(), "the vendor's crate builds: {}", String::from_utf8_lossy(&built.stderr));
    let executable = String::from_utf8_lossy(&built.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|m| m["executable"].as_str().filter(|_| m["target"]["name"] == "egress_mycni").map(PathBuf::from))
        .expect("cargo names the suite's test binary");
    let alone = tempfile::tempdir().unwrap();
    let suite = alone.path().join("egress_mycni");
    std::fs::copy(&executable, &suite).unwrap();
    let mut run = Command::new(&suite);
    for name in
        ["CNI_PROBE", "CNI_PATH", "CNICONF_FIXTURES", "CNICONF_REPORT_DIR", "CNICONF_GOLDEN_DIR", "CNICONF_CNI", "CNICONF_PROJECT_DIR", "NEXTEST_RUN_ID"]
    {
        run.env_remove(name);
    }
    // As `cargo test` runs a test binary: in its package, which cargo names.
    let output = run.env("CARGO_MANIFEST_DIR", vendor.path()).current_dir(vendor.path()).output().unwrap();
    assert!(output.status.success(), "the vendor's suite passes: {}\n{}", text(&output), String::from_utf8_lossy(&output.stderr));
    let junit = std::fs::read_to_string(vendor.path().join("target/cni-conformance/egress_mycni/junit.xml")).expect("its JUnit in its own tree");
    for scenario in ["selected_pod_leaves_with_the_egress_ip", "a_pod_on_the_control_plane_leaves_with_its_node_ip"] {
        assert!(junit.contains(&format!("name=\"{scenario}\"")), "{scenario} in {junit}");
    }
    assert!(junit.contains("tests=\"5\"") && junit.contains("failures=\"0\""), "{junit}");
    let golden: Vec<String> =
        std::fs::read_dir(vendor.path().join("golden/egress_mycni")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(golden.iter().any(|g| g == "my-cni__a_pod_on_the_control_plane_leaves_with_its_node_ip.snap"), "its golden records in its own tree: {golden:?}");
    assert!(vendor.path().join("target/cni-harness/probe-of-egress_mycni/cni-probe").is_symlink(), "its suite binary was its probe");
    assert!(!checkout.join("target/cni-conformance/egress_mycni").exists() && !checkout.join("golden/egress_mycni").exists(), "nothing of it in this checkout");
}

/// The GitHub Action a vendor's pull request calls (`action.yml`), its steps run here as a
/// runner would run them against a stand-in vendor's repository (`fixtures/vendor-action`:
/// a profile, its conflist, a directory of built binaries): each `run` step in bash with
/// its `env`, `working-directory` and the expressions of its inputs filled in, a step
/// whose `if` is false skipped, the `uses` steps (toolchain, uploads) left to GitHub. The
/// certification of the asked family passes, its report is where the action says (the
/// step output `reports`) and on the job summary; the upgrade step is skipped without an
/// `upgrade-from`. The vendor's example workflow passes actionlint (`cargo xtask lint`)
/// and names only inputs the action has.
#[test]
fn the_github_action_certifies_a_stand_in_vendor_s_plugin_when_its_steps_run_here() {
    let checkout = harness::workspace_root();
    let action: serde_json::Value = serde_saphyr::from_str(&std::fs::read_to_string(checkout.join("action.yml")).unwrap()).unwrap();
    let workflow: serde_json::Value =
        serde_saphyr::from_str(&std::fs::read_to_string(checkout.join("fixtures/vendor-action/.github/workflows/cni-conformance.yml")).unwrap()).unwrap();
    let declared: Vec<&str> = action["inputs"].as_object().unwrap().keys().map(String::as_str).collect();
    let called = workflow["jobs"]["certify"]["steps"].as_array().unwrap().iter().find(|s| s["name"] == "Certify").expect("the example calls the action");
    for given in called["with"].as_object().unwrap().keys() {
        assert!(declared.contains(&given.as_str()), "the example gives `{given}`, which the action does not declare ({declared:?})");
    }
    let workspace = tempfile::tempdir().unwrap();
    copy_tree(&checkout.join("fixtures/vendor-action"), workspace.path());
    let summary = workspace.path().join("step-summary.md");
    let inputs = [("profile", "cni/profile.yaml"), ("plugin-dirs", "cni/bin:/usr/lib/cni"), ("families", "egress"), ("upgrade-from", "")];
    let mut outputs: Vec<(String, String)> = Vec::new();
    let fill = |text: &str, outputs: &[(String, String)]| {
        let mut text = text.replace("${{ github.action_path }}", &checkout.display().to_string());
        for (name, value) in inputs {
            text = text.replace(&format!("${{{{ inputs.{name} }}}}"), value);
        }
        for (name, value) in outputs {
            text = text.replace(&format!("${{{{ steps.paths.outputs.{name} }}}}"), value);
        }
        text
    };
    let mut ran = Vec::new();
    for step in action["runs"]["steps"].as_array().unwrap() {
        let name = step["name"].as_str().or(step["id"].as_str()).or(step["uses"].as_str()).unwrap_or("?").to_owned();
        if step.get("uses").is_some() {
            continue;
        }
        if step["if"] == "inputs.upgrade-from != ''" && inputs.iter().any(|(n, v)| *n == "upgrade-from" && v.is_empty()) {
            continue;
        }
        assert!(step["if"].is_null() || step["if"] == "inputs.upgrade-from != ''", "a condition this test cannot evaluate: {step}");
        let output_file = workspace.path().join("github-output");
        let mut bash = Command::new("bash");
        bash.args(["-eo", "pipefail", "-c", step["run"].as_str().unwrap()])
            .current_dir(step["working-directory"].as_str().map(|d| PathBuf::from(fill(d, &outputs))).unwrap_or_else(|| workspace.path().to_owned()))
            .env("GITHUB_WORKSPACE", workspace.path())
            .env("GITHUB_OUTPUT", &output_file)
            .env("GITHUB_STEP_SUMMARY", &summary);
        for name in ["CNI_PATH", "CNICONF_REPORT_DIR", "CNICONF_CNI", "CNICONF_FIXTURES", "CNICONF_GOLDEN_DIR", "CNI_PROBE", "NEXTEST_RUN_ID"] {
            bash.env_remove(name);
        }
        // A runner's step has none of this test package's cargo variables: given to the
        // cargo the step starts, they would change build scripts' inputs and rebuild.
        for (name, _) in std::env::vars_os().filter(|(n, _)| n.to_string_lossy().starts_with("CARGO_") && n != "CARGO_HOME") {
            bash.env_remove(name);
        }
        for (key, value) in step["env"].as_object().into_iter().flatten() {
            bash.env(key, fill(value.as_str().unwrap(), &outputs));
        }
        let output = bash.output().unwrap();
        assert!(output.status.success(), "step `{name}`: {}\n{}", text(&output), String::from_utf8_lossy(&output.stderr));
        for line in std::fs::read_to_string(&output_file).unwrap_or_default().lines() {
            if let Some((key, value)) = line.split_once('=') {
                outputs.push((key.to_owned(), value.to_owned()));
            }
        }
        let _ = std::fs::remove_file(&output_file);
        ran.push(name);
    }
    assert_eq!(ran, ["paths", "Certify the profile"], "the upgrade step is skipped without upgrade-from");
    let reports = PathBuf::from(&outputs.iter().find(|(k, _)| k == "reports").expect("the reports output").1);
    let report =
        std::fs::read_to_string(reports.join("certification/stand-in-vendor/conformance.yaml")).expect("the certification's report where the action says");
    assert!(report.contains("notRun") && report.contains("cni_spec"), "the families not asked are named: {report}");
    assert!(std::fs::read_to_string(&summary).unwrap_or_default().contains("stand-in-vendor"), "the report on the job summary");
    let junit = std::fs::read_to_string(reports.join("certification/stand-in-vendor/egress/junit.xml")).unwrap();
    assert!(junit.contains("failures=\"0\"") && junit.contains("selected_pod_leaves_with_the_egress_ip"), "{junit}");
}

/// Copies directory `from` into `to`, recursively.
fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let there = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&there).unwrap();
            copy_tree(&entry.path(), &there);
        } else {
            std::fs::copy(entry.path(), &there).unwrap();
        }
    }
}

/// On a lab node the profile's plugins are in one directory, `/opt/cni/bin`, as a vendor's
/// installer puts them on a real node, and that is `CNI_PATH`: a plugin that runs
/// `$CNI_PATH/host-local`-style paths (here `$CNI_PATH/bridge`) or a helper beside itself
/// (`$(dirname "$0")/helper`, in the vendor's directory) finds them, a node file installed
/// there wins, and what it writes beside itself stays on the node, in its snapshot.
#[test]
fn a_node_s_plugins_are_in_its_one_plugin_directory_which_is_cni_path() {
    use harness::model::{labels, PodSpec};
    use harness::provider::Cluster;
    let vendor = tempfile::tempdir().unwrap();
    let seen = vendor.path().join("seen");
    let plugin = format!(
        "#!/bin/sh\nconfig=$(cat)\nhere=$(dirname \"$0\")\n[ \"$CNI_COMMAND\" = ADD ] && {{ echo \"CNI_PATH=$CNI_PATH here=$here $(\"$here/helper\") $(cat \"$here/installed\")\" > '{}'; touch \"$here/left-beside-itself\"; }}\nprintf '%s' \"$config\" | exec \"$CNI_PATH/bridge\"\n",
        seen.display()
    );
    std::fs::write(vendor.path().join("helper"), "#!/bin/sh\necho helper-ran\n").unwrap();
    std::fs::set_permissions(vendor.path().join("helper"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(vendor.path().join("installed"), "from-the-vendor-directory\n").unwrap();
    std::fs::write(vendor.path().join("node-installed"), "from-the-node-files\n").unwrap();
    let conflist = r#"{"cniVersion": "1.0.0", "name": "one-dir", "plugins": [{"type": "finds-bridge", "bridge": "cni0", "isGateway": true, "ipam": {"type": "host-local", "ranges": [[{"subnet": "{nodePodCIDR}"}]]}}]}"#;
    let node_files = "    nodeFiles:\n      - from: node-installed\n        to: /opt/cni/bin/installed\n";
    let (lab, node) = vendor_lab_with(vendor.path(), ("finds-bridge", &plugin), "one-dir", conflist, node_files, "");
    let pod = lab.create_pod(&PodSpec { name: "p".into(), namespace: "one-dir".into(), labels: labels([]), node: node.name.clone(), host_ports: vec![] });
    let state = lab.node_state(&node).unwrap();
    lab.teardown().unwrap();
    pod.unwrap();
    let seen = std::fs::read_to_string(&seen).unwrap();
    assert_eq!(seen.trim(), "CNI_PATH=/opt/cni/bin here=/opt/cni/bin helper-ran from-the-node-files", "what the plugin saw of its node");
    assert!(state.contains("written /opt/cni/bin/left-beside-itself"), "what it wrote beside itself is the node's: {state:?}");
    assert!(!vendor.path().join("left-beside-itself").exists(), "and not in the vendor's directory on the host");
}

/// A plugin's own log, named in the profile (`diagnostics.logs`), is read on its node: a
/// failed ADD says what its last lines are, the trial's records hold it, and the node's own
/// `/tmp` and `/var/log` take what the plugin writes there, not the host's.
#[test]
fn a_plugin_s_log_is_named_in_its_add_error_and_written_on_its_node_not_the_host() {
    use harness::model::{labels, PodSpec};
    use harness::provider::Cluster;
    let vendor = tempfile::tempdir().unwrap();
    let marker = format!("vendor-cni-{}", std::process::id());
    let logger = format!(
        "#!/bin/sh\ncat > /dev/null\ncase \"$CNI_COMMAND\" in\n  VERSION) echo '{{\"cniVersion\": \"1.0.0\", \"supportedVersions\": [\"1.0.0\"]}}' ;;\n  ADD) echo \"ADD $CNI_CONTAINERID: cannot reach the datastore\" >> /tmp/{marker}.log; mkdir -p /var/log/{marker} && echo started >> /var/log/{marker}/cni.log; exit 234 ;;\nesac\n"
    );
    let conflist = r#"{"cniVersion": "1.0.0", "name": "logged", "plugins": [{"type": "logger"}]}"#;
    let (lab, node) = vendor_lab_with(vendor.path(), ("logger", &logger), "logged", conflist, "", &format!("diagnostics:\n  logs: [/tmp/{marker}.log]\n"));
    let refused = lab
        .create_pod(&PodSpec { name: "p".into(), namespace: "logged".into(), labels: labels([]), node: node.name.clone(), host_ports: vec![] })
        .unwrap_err()
        .to_string();
    let records = lab.own_records("t1");
    let state = lab.node_state(&node).unwrap();
    let on_the_host = (std::path::Path::new(&format!("/tmp/{marker}.log")).exists(), std::path::Path::new(&format!("/var/log/{marker}")).exists());
    lab.teardown().unwrap();
    assert!(refused.contains(&format!("its log /tmp/{marker}.log says: ADD ")) && refused.contains(": cannot reach the datastore"), "{refused}");
    let kept =
        records.iter().find(|(name, _)| *name == format!("nodes/{}/logs/tmp/{marker}.log", node.name)).map(|(_, text)| text.as_str()).unwrap_or_default();
    assert!(kept.contains("cannot reach the datastore"), "the trial's records hold the log: {:?}", records.iter().map(|(n, _)| n).collect::<Vec<_>>());
    assert!(!state.iter().any(|line| line.contains(&marker)), "a log is no plugin state: {state:?}");
    assert_eq!(on_the_host, (false, false), "nothing the plugin wrote is on the host");
}

/// What a DaemonSet would install on each node (`install.lab.nodeFiles`) is there before
/// the first ADD, in the node's own `/opt`, executable as it was; nothing of it on the
/// host. A `to` outside the node's own directories is refused naming the field.
#[test]
fn node_files_are_installed_in_each_node_s_own_opt_before_the_first_add() {
    use harness::model::{labels, PodSpec};
    use harness::provider::Cluster;
    let vendor = tempfile::tempdir().unwrap();
    let marker = format!("vendor-helpers-{}", std::process::id());
    std::fs::create_dir(vendor.path().join("helpers")).unwrap();
    let helper = vendor.path().join("helpers/say-helped");
    std::fs::write(&helper, "#!/bin/sh\necho helped\n").unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // A bridge that will not start a pod without its helper, as a vendor's plugin would not.
    let needs_helper = format!("#!/bin/sh\n[ \"$CNI_COMMAND\" = ADD ] && [ \"$(/opt/cni/bin/{marker}/say-helped)\" != helped ] && {{ cat > /dev/null; echo '{{\"cniVersion\": \"1.0.0\", \"code\": 11, \"msg\": \"no helper in /opt/cni/bin/{marker}\"}}'; exit 1; }}\nexec /usr/lib/cni/bridge\n");
    let conflist = r#"{"cniVersion": "1.0.0", "name": "helped", "plugins": [{"type": "helped-bridge", "bridge": "cni0", "isGateway": true, "ipam": {"type": "host-local", "ranges": [[{"subnet": "{nodePodCIDR}"}]]}}]}"#;
    let (lab, node) = vendor_lab_with(
        vendor.path(),
        ("helped-bridge", &needs_helper),
        "helped",
        conflist,
        &format!("    nodeFiles: [{{from: helpers, to: /opt/cni/bin/{marker}}}]\n"),
        "",
    );
    let pod = lab
        .create_pod(&PodSpec { name: "p".into(), namespace: "helped".into(), labels: labels([]), node: node.name.clone(), host_ports: vec![] })
        .map_err(|e| e.to_string());
    let on_the_host = std::path::Path::new(&format!("/opt/cni/bin/{marker}")).exists();
    lab.teardown().unwrap();
    pod.unwrap();
    assert!(!on_the_host, "nothing installed on the host's /opt");
    // A destination outside the node's own directories is refused before any lab exists.
    let profile = vendor.path().join("profile.yaml");
    std::fs::write(&profile, std::fs::read_to_string(&profile).unwrap().replace(&format!("to: /opt/cni/bin/{marker}"), "to: /etc/my-cni")).unwrap();
    let refused = harness::cni::load_profile(&profile.display().to_string()).unwrap_err().to_string();
    assert!(refused.contains("install.lab.nodeFiles[0].to") && refused.contains("/etc/my-cni") && refused.contains("/opt"), "{refused}");
}

/// What a plugin writes outside the node's CNI directories (a config under `/etc`, state
/// under `/var/lib/<plugin>`) lands on its node, not on the host: the node sees the host's
/// `/etc` and `/var` through overlays of its own. A later call of the plugin finds it there
/// (its DEL removes its state), and the node's snapshot names what is left (`written …`),
/// so the checks that compare snapshots find it.
#[test]
fn what_a_plugin_writes_outside_the_node_s_cni_directories_stays_on_its_node_and_is_in_its_snapshot() {
    use harness::model::{labels, PodSpec};
    use harness::provider::Cluster;
    let vendor = tempfile::tempdir().unwrap();
    let marker = format!("vendor-outside-{}", std::process::id());
    let writes_outside = format!(
        "#!/bin/sh
case \"$CNI_COMMAND\" in
  ADD) echo on > /etc/{marker}.conf; mkdir -p /var/lib/{marker}; echo \"$CNI_CONTAINERID\" > /var/lib/{marker}/state ;;
  DEL) [ -f /var/lib/{marker}/state ] || {{ cat > /dev/null; echo '{{\"cniVersion\": \"1.0.0\", \"code\": 11, \"msg\": \"no state of ADD in /var/lib/{marker}\"}}'; exit 1; }}; rm /var/lib/{marker}/state ;;
esac
exec /usr/lib/cni/bridge
"
    );
    let conflist = r#"{"cniVersion": "1.0.0", "name": "outside", "plugins": [{"type": "outside-bridge", "bridge": "cni0", "isGateway": true, "ipam": {"type": "host-local", "ranges": [[{"subnet": "{nodePodCIDR}"}]]}}]}"#;
    let (lab, node) = vendor_lab_with(vendor.path(), ("outside-bridge", &writes_outside), "outside", conflist, "", "");
    let before = lab.node_state(&node).unwrap();
    let pod = lab.create_pod(&PodSpec { name: "p".into(), namespace: "outside".into(), labels: labels([]), node: node.name.clone(), host_ports: vec![] });
    let with_the_pod = lab.node_state(&node).unwrap();
    let on_the_host =
        [format!("/etc/{marker}.conf"), format!("/var/lib/{marker}")].into_iter().filter(|p| std::path::Path::new(p).exists()).collect::<Vec<_>>();
    let deleted = pod.as_ref().map(|pod| lab.delete_pod(pod).map_err(|e| e.to_string()));
    let after = lab.node_state(&node).unwrap();
    lab.teardown().unwrap();
    deleted.map_err(|e| e.to_string()).unwrap().unwrap();
    assert!(on_the_host.is_empty(), "nothing on the host: {on_the_host:?}");
    let added: Vec<&String> = with_the_pod.difference(&before).filter(|l| l.starts_with("written") || l.starts_with("removed")).collect();
    assert_eq!(
        added,
        [&format!("written /etc/{marker}.conf"), &format!("written /var/lib/{marker}/"), &format!("written /var/lib/{marker}/state")],
        "the node's snapshot names what ADD wrote outside its CNI directories"
    );
    let left: Vec<&String> = after.difference(&before).filter(|l| l.starts_with("written") || l.starts_with("removed")).collect();
    assert_eq!(
        left,
        [&format!("written /etc/{marker}.conf"), &format!("written /var/lib/{marker}/")],
        "DEL found its state and removed it; the config and the directory are left, and named"
    );
}

/// Pods started together on one node get their ADDs at once, as containerd runs them (the
/// plugins' own locks serialise what must be): a bridge that waits, up to 5 s, for another
/// ADD to be running beside it sees one, for every pod. One ADD at a time per node (the
/// lab before issue 33) would have each wait alone.
#[test]
fn adds_of_pods_started_together_on_one_node_run_at_once() {
    use harness::model::{labels, PodSpec};
    use harness::provider::Cluster;
    let vendor = tempfile::tempdir().unwrap();
    let running = vendor.path().join("running");
    std::fs::create_dir(&running).unwrap();
    let waits_for_company = format!(
        "#!/bin/sh
if [ \"$CNI_COMMAND\" = ADD ]; then
  touch {r}/$CNI_CONTAINERID
  for _ in $(seq 100); do [ $(ls {r} | wc -l) -ge 2 ] && break; sleep 0.05; done
  ls {r} | wc -l >> {r}.seen
fi
exec /usr/lib/cni/bridge
",
        r = running.display()
    );
    let conflist = r#"{"cniVersion": "1.0.0", "name": "together", "plugins": [{"type": "company-bridge", "bridge": "cni0", "isGateway": true, "ipam": {"type": "host-local", "ranges": [[{"subnet": "{nodePodCIDR}"}]]}}]}"#;
    let (lab, node) = vendor_lab_with(vendor.path(), ("company-bridge", &waits_for_company), "together", conflist, "", "");
    let started: Vec<Result<harness::model::Pod, String>> = std::thread::scope(|scope| {
        let starting: Vec<_> = (0..3)
            .map(|i| {
                let (lab, spec) =
                    (&lab, PodSpec { name: format!("p{i}"), namespace: "together".into(), labels: labels([]), node: node.name.clone(), host_ports: vec![] });
                scope.spawn(move || lab.create_pod(&spec).map_err(|e| e.to_string()))
            })
            .collect();
        starting.into_iter().map(|h| h.join().unwrap()).collect()
    });
    lab.teardown().unwrap();
    for pod in started {
        pod.unwrap();
    }
    let seen: Vec<usize> = std::fs::read_to_string(vendor.path().join("running.seen")).unwrap().lines().map(|l| l.trim().parse().unwrap()).collect();
    assert_eq!(seen.len(), 3, "one ADD per pod: {seen:?}");
    assert!(seen.iter().all(|&n| n >= 2), "every ADD had another running beside it (counts of ADDs started when each went on): {seen:?}");
}

/// `cni_spec` on a certification's profile gives each check's node what the profile
/// installs, as the lab does: a plugin that will not ADD without its node file passes
/// `add_result_is_valid_for_its_version` with the profile (`CNICONF_SPEC_PROFILE`, which
/// `certify` sets), and fails it, naming the missing helper, without.
#[test]
fn cni_spec_checks_run_on_a_node_with_the_profile_s_node_files() {
    use harness::report::TrialOutcome;
    let vendor = tempfile::tempdir().unwrap();
    let marker = format!("vendor-spec-helpers-{}", std::process::id());
    std::fs::create_dir(vendor.path().join("helpers")).unwrap();
    let helper = vendor.path().join("helpers/say-helped");
    std::fs::write(&helper, "#!/bin/sh\necho helped\n").unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let needs_helper = format!("#!/bin/sh\n[ \"$CNI_COMMAND\" = ADD ] && [ \"$(/opt/cni/bin/{marker}/say-helped)\" != helped ] && {{ cat > /dev/null; echo '{{\"cniVersion\": \"1.0.0\", \"code\": 11, \"msg\": \"no helper in /opt/cni/bin/{marker}\"}}'; exit 1; }}\nexec /usr/lib/cni/ptp\n");
    let script = vendor.path().join("helped-ptp");
    std::fs::write(&script, needs_helper).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let conflist = vendor.path().join("helped.conflist");
    std::fs::write(&conflist, r#"{"cniVersion": "1.0.0", "name": "helped", "plugins": [{"type": "helped-ptp", "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.40.0.0/24"}]]}}]}"#).unwrap();
    let profile = vendor.path().join("profile.yaml");
    std::fs::write(&profile, format!("name: helped\nversion: 0.1.0\ninstall:\n  lab:\n    conflist: helped.conflist\n    pluginDirs: [\"{}\", /usr/lib/cni]\n    nodeFiles: [{{from: helpers, to: /opt/cni/bin/{marker}}}]\nfeatures: []\n", vendor.path().display())).unwrap();
    let judged = |with_profile: bool| {
        let mut subject = harness::spec::Subject::load(&conflist, vec![vendor.path().to_owned(), "/usr/lib/cni".into()]).unwrap();
        subject.profile = with_profile.then(|| harness::cni::load_profile(&profile.display().to_string()).unwrap());
        let check = harness::spec::checks().into_iter().find(|c| c.rule.name == "add_result_is_valid_for_its_version").unwrap();
        harness::spec::suite::run_check_keeping_evidence(&std::sync::Arc::new(subject), check, harness::diagnostics::Collect::Never).0
    };
    let with = judged(true);
    assert!(matches!(with, TrialOutcome::Passed(_)), "with the profile's node files: {with:?}");
    match judged(false) {
        TrialOutcome::Failed(verdict) => assert!(verdict.message().contains(&format!("no helper in /opt/cni/bin/{marker}")), "{}", verdict.message()),
        other => panic!("without them the ADD fails, naming the helper: {other:?}"),
    }
    assert!(!std::path::Path::new(&format!("/opt/cni/bin/{marker}")).exists(), "nothing installed on the host's /opt");
}

/// The generic suites (`egress`, `canary`, `tsn`, `perf`) with nothing chosen run what the
/// lab suites run: the same scenarios (their `--list`) with the same default profile (as
/// their sources name it) on the same provider. So CI runs each scenario once, in the lab
/// suite (`.config/nextest.toml`, profile `ci`, `default-filter`); this test fails the day
/// one of them drifts.
#[test]
fn the_generic_suites_are_the_lab_suites_when_nothing_is_chosen() {
    let default_profile = |suite: &str| {
        let source = std::fs::read_to_string(harness::workspace_root().join("suites").join(format!("{suite}.rs"))).unwrap();
        let call = &source[source.find("Suite::new(").unwrap_or_else(|| panic!("suites/{suite}.rs makes a Suite"))..];
        call.split('"').nth(3).unwrap_or_default().to_owned()
    };
    let listed = |suite: &str| {
        let mut command = suite_command(&suite_binary(suite));
        command.env_remove("CNICONF_CNI").env_remove("CNICONF_PROVIDER").args(["--list", "--format", "terse"]);
        let output = command.output().unwrap();
        assert!(output.status.success(), "{suite} --list: {}", text(&output));
        let mut names: Vec<String> = String::from_utf8_lossy(&output.stdout).lines().filter_map(|l| l.strip_suffix(": test")).map(str::to_owned).collect();
        names.sort();
        names
    };
    for generic in ["egress", "canary", "tsn", "perf"] {
        let lab = format!("{generic}_lab");
        assert_eq!(default_profile(generic), default_profile(&lab), "{generic} and {lab} default to one profile");
        assert!(!listed(generic).is_empty(), "{generic} lists its scenarios");
        assert_eq!(listed(generic), listed(&lab), "{generic} and {lab} list the same scenarios");
    }
    let ci = std::fs::read_to_string(harness::workspace_root().join(".config/nextest.toml")).unwrap();
    assert!(
        ci.contains("default-filter = 'not (binary(egress) | binary(canary) | binary(tsn) | binary(perf))'"),
        "the ci profile leaves exactly these to their lab suites"
    );
}
