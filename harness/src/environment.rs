//! The environment variables a run reads, each with what it means: one list, from which
//! the guide's reference page is generated (`docs/src/reference/environment.md`, by
//! `cargo xtask docs`) and against which a test checks every variable the code reads.

/// A variable (or a few read together) and what it means to a user.
pub struct Variable {
    pub names: &'static [&'static str],
    /// Markdown, one sentence or a few.
    pub meaning: &'static str,
}

/// Every variable a user may set, in the order a reader meets them.
pub const VARIABLES: &[Variable] = &[
    Variable {
        names: &["CNICONF_CNI"],
        meaning: "the CNI profile: a name under `fixtures/cni/` or a profile file's path (default: the suite's)",
    },
    Variable {
        names: &["CNICONF_UPGRADE_TO"],
        meaning: "an upgrade suite's second profile: the one the cluster is upgraded to in place (default: the suite's; `upgrade_lab`'s is `reference-portmap-firewall-1.9.1`)",
    },
    Variable {
        names: &["CNICONF_PROVIDER"],
        meaning: "`lab`, `kind` or `existing` (default: `lab` for lab profiles, `kind` for CNIs installed on a cluster)",
    },
    Variable {
        names: &["RUST_LOG"],
        meaning: "log filter (default `info`)",
    },
    Variable {
        names: &["CNICONF_SPEC_SUBJECT"],
        meaning: "`cni_spec`: the plugin under test, a `.conflist` or one plugin's `.conf` (default: every conflist in `fixtures/cni-spec/`)",
    },
    Variable {
        names: &["CNICONF_SPEC_PLUGIN_DIR"],
        meaning: "`cni_spec`: where its binaries are, colon-separated (default `/usr/lib/cni`)",
    },
    Variable {
        names: &["CNICONF_SPEC_PROFILE"],
        meaning: "`cni_spec`: the profile file the subject comes from; each check's node gets its `install.lab.nodeFiles` and `diagnostics.logs` (set by `certify`)",
    },
    Variable {
        names: &["CNICONF_SPEC_KNOWN_FAILURES"],
        meaning: "`cni_spec`: the reviewed known-failures list (default `fixtures/cni-spec/known-failures.yaml`)",
    },
    Variable {
        names: &["CNICONF_SPEC_STRICT"],
        meaning: "`cni_spec`: `1` makes a recommendation (SHOULD) not met fail like a violation",
    },
    Variable {
        names: &["CNICONF_RUNTIME_PATH"],
        meaning: "the `PATH` every CNI plugin runs with (default containerd's as a systemd service, `/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`, not yours)",
    },
    Variable {
        names: &["CNICONF_PLUGIN_BUDGET_SECONDS"],
        meaning: "how long one CNI plugin call may take before its process group is killed (default 30)",
    },
    Variable {
        names: &["CNICONF_REQUIRE_TOOLS"],
        meaning: "`1`: a missing kind/docker/kubectl/helm fails scenarios instead of ignoring them",
    },
    Variable {
        names: &["CNICONF_KEEP_CLUSTER"],
        meaning: "`1`: keep the kind cluster and reuse it next run",
    },
    Variable {
        names: &["CNICONF_GATEWAY"],
        meaning: "the Gateway API implementation in place of the profile's default (`nginx-gateway-fabric`, `cilium`)",
    },
    Variable {
        names: &["NEXTEST_RUN_ID", "CNICONF_RUN_ID"],
        meaning: "set by nextest (or by you for another one-process-per-test runner): processes share one kind cluster and merge their reports",
    },
    Variable {
        names: &["CNICONF_KUBECONFIG", "CNICONF_KUBE_CONTEXT"],
        meaning: "the existing cluster (default: every file of `$KUBECONFIG`, merged, then `~/.kube/config`)",
    },
    Variable {
        names: &["CNICONF_EXTERNAL_ECHO"],
        meaning: "existing provider: `address:port` of the echo outside the cluster",
    },
    Variable {
        names: &["CNICONF_EGRESS_IPS"],
        meaning: "existing provider: egress IPs for the policies, comma-separated",
    },
    Variable {
        names: &["CNICONF_PROBE_IMAGE"],
        meaning: "existing provider: the probe image reference to pull",
    },
    Variable {
        names: &["CNICONF_LAB_FAULTS"],
        meaning: "faults to inject into the lab (see above)",
    },
    Variable {
        names: &["CNICONF_COLLECT"],
        meaning: "which trials leave a diagnostics bundle: `failures` (default), `always`, `never`",
    },
    Variable {
        names: &["CNICONF_MACHINE_CLASS"],
        meaning: "the machine class absolute performance budgets are looked up for (default `<cores>-core <arch>`)",
    },
    Variable {
        names: &["CNICONF_TSN_PROXY_IMAGE", "CNICONF_TSN_PROXY_ENTRY"],
        meaning: "kind: your own TSN metadata proxy image and its conflist entry (JSON) instead of the reference one",
    },
    Variable {
        names: &["CNICONF_KIND_CONFIG"],
        meaning: "the kind cluster config the lab copies and kind uses (default `fixtures/cluster/kind.yaml`)",
    },
    Variable {
        names: &["CNICONF_REPORT_DIR"],
        meaning: "where JUnit and summaries go (default `target/cni-conformance`)",
    },
    Variable {
        names: &["CNICONF_GOLDEN_DIR"],
        meaning: "where golden records live (default `golden`)",
    },
    Variable {
        names: &["CNICONF_FIXTURES"],
        meaning: "the fixtures directory (default `fixtures`)",
    },
    Variable {
        names: &["CNICONF_PROJECT_DIR"],
        meaning: "the project the suites run for (its `fixtures/` first, its reports, golden records and builds); default: the package cargo runs the test from",
    },
    Variable {
        names: &["CNI_PATH"],
        meaning: "the plugin directories, in order, instead of the profile's `pluginDirs`: what each lab node's one `/opt/cni/bin` is made of",
    },
    Variable {
        names: &["CNI_PROBE"],
        meaning: "the probe binary (default: `cni-probe` next to the suite binary, as cargo builds it)",
    },
    Variable {
        names: &["CNICONF_UPDATE_DOCS"],
        meaning: "contributors: `1` makes the docs test (`suites/docs.rs`) write the guide's reference pages instead of comparing them; `cargo xtask docs` sets it",
    },
    Variable {
        names: &["CNICONF_REPORT_PNG"],
        meaning: "tests only: where `suites/report_html.rs` writes its rendering of the HTML report (default: a temporary directory)",
    },
];
