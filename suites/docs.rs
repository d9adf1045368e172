//! The user guide (`docs/`) against the code: its reference pages are generated from the
//! code and must be what it says (`cargo xtask docs` rewrites them), every page is in the
//! book's summary and every link resolves, every command it shows parses and names what
//! exists, and its scenario tables name only real scenarios. rust-analyzer's sourcegen
//! tests work this way: the check is a test, the update the same test with a switch.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use harness::environment::VARIABLES;
use harness::scenario::Scenario;
use harness::scenarios::{canary, egress, performance, tsn, upgrade};
use harness::spec::rules::Keyword;

/// Set to `1` to write the reference pages instead of comparing them (`cargo xtask docs`).
const UPDATE: &str = "CNICONF_UPDATE_DOCS";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn guide() -> PathBuf {
    root().join("docs/src")
}

/// The families, their suites and their scenarios, as a reader looks them up.
fn families() -> Vec<(&'static str, &'static str, Vec<Scenario>)> {
    vec![
        (
            "Egress",
            "`egress_lab` and `egress` (any profile) run them all; `egress_antrea` all but the excluded destination, `egress_cilium` all but the failover (`harness::scenarios::egress`: `all`, `excluded_destinations`, `failover`)",
            [egress::all(), egress::excluded_destinations(), egress::failover()].concat(),
        ),
        ("Canary", "`canary_lab`, `canary_antrea`, `canary_cilium`; `canary` for any profile (`harness::scenarios::canary`)", canary::all()),
        ("TSN", "`tsn_lab`, `tsn_flannel`, `tsn_calico`; `tsn` for any profile (`harness::scenarios::tsn`)", tsn::all()),
        ("Performance", "`perf_lab`, `perf_antrea`, `perf_cilium`; `perf` for any profile (`harness::scenarios::performance`)", performance::all()),
        ("Upgrade", "`upgrade_lab`, `upgrade_antrea`, `upgrade_cilium`; `upgrade` for any pair (`harness::scenarios::upgrade`)", upgrade::all()),
    ]
}

/// A table cell: one line, its pipes escaped.
fn cell(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "\\|")
}

const GENERATED: &str = "<!-- Generated from the code by `cargo xtask docs`; `cargo xtask test` fails when it differs. Do not edit. -->";

fn scenarios_page() -> String {
    let mut page = format!(
        "{GENERATED}\n\n# Scenarios\n\nEvery scenario of every family, with the sentence it tests, as the code states it. A suite of a \
         family runs all of them; a provider or profile that cannot host one (a feature it lacks) reports it ignored, with the \
         reason. A disruptive scenario breaks the cluster on purpose (a node fails, the CNI is replaced) and runs alone.\n"
    );
    for (family, suites, scenarios) in families() {
        page += &format!("\n## {family}\n\nSuites: {suites}.\n\n| scenario | the sentence it tests | needs | disruptive |\n| --- | --- | --- | --- |\n");
        for scenario in scenarios {
            let needs: Vec<String> = scenario
                .requires
                .iter()
                .map(|feature| format!("`{}`", serde_json::to_value(feature).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()))
                .collect();
            page +=
                &format!("| `{}` | {} | {} | {} |\n", scenario.name, cell(scenario.sentence), needs.join(", "), if scenario.disruptive { "yes" } else { "" });
        }
    }
    page
}

fn checks_page() -> String {
    let mut page = format!(
        "{GENERATED}\n\n# CNI specification checks\n\nEvery check `cni_spec` runs on a plugin or chain, with the keyword of the \
         specification's sentence it enforces: a MUST not met *violates* the specification (failed), a SHOULD not met \
         *deviates* from a recommendation (shown apart; failed only under `CNICONF_SPEC_STRICT=1`). Sections are SPEC.md \
         1.0.0's unless they say 1.1.0. How each is judged: [CNI specification conformance](../cni-spec.md).\n\n\
         | check | keyword | section | rule |\n| --- | --- | --- | --- |\n"
    );
    for check in harness::spec::checks() {
        let keyword = match check.rule.keyword {
            Keyword::Must => "MUST",
            Keyword::Should => "SHOULD",
        };
        page += &format!("| `{}` | {keyword} | {} | {} |\n", check.rule.name, cell(check.rule.section), cell(check.rule.sentence));
    }
    page
}

fn environment_page() -> String {
    let mut page = format!(
        "{GENERATED}\n\n# Environment variables\n\nWhat a run reads from its environment (`harness::environment::VARIABLES`; a \
         test fails when the code reads a `CNICONF_` variable this page does not name).\n\n| variable | meaning |\n| --- | --- |\n"
    );
    for variable in VARIABLES {
        let names: Vec<String> = variable.names.iter().map(|n| format!("`{n}`")).collect();
        page += &format!("| {} | {} |\n", names.join(", "), cell(variable.meaning));
    }
    page
}

fn budgets_page() -> String {
    let dir = root().join("fixtures/budgets");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "yaml")).collect();
    files.sort();
    let mut page = format!(
        "{GENERATED}\n\n# Budgets\n\nThe budgets every family is judged against, as shipped (`fixtures/budgets/`). A project of \
         its own overrides a file by putting one of the same name in its own `fixtures/budgets/`.\n"
    );
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        page += &format!("\n## `{name}`\n\n```yaml\n{}\n```\n", std::fs::read_to_string(&file).unwrap().trim_end());
    }
    page
}

/// A field of the profile file, as its type in `harness/src/cni/profile.rs` declares it.
struct ProfileField {
    /// As written in YAML (serde's `rename_all = "camelCase"` applied).
    name: String,
    /// The Rust type, paths left out (`Vec<Workload>`).
    ty: String,
    optional: bool,
    doc: String,
}

/// `snake_case` (a field) or `PascalCase` (a variant) as serde's camelCase writes it.
fn camel_case(ident: &str) -> String {
    let mut words = ident.split('_');
    let first = words.next().unwrap_or_default();
    let mut out: String = first.chars().take(1).flat_map(char::to_lowercase).chain(first.chars().skip(1)).collect();
    for word in words {
        out.extend(word.chars().take(1).flat_map(char::to_uppercase).chain(word.chars().skip(1)));
    }
    out
}

fn doc_of(attrs: &[syn::Attribute]) -> String {
    let lines: Vec<String> = attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(syn::MetaNameValue { value: syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(text), .. }), .. }) => Some(text.value()),
            _ => None,
        })
        .collect();
    lines.iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ")
}

/// Whether `#[serde(...)]` among `attrs` says `word` (`default`) or `rename_all = "camelCase"`.
fn serde_says(attrs: &[syn::Attribute], word: &str) -> bool {
    attrs.iter().filter(|a| a.path().is_ident("serde")).any(|a| {
        let mut found = false;
        let _ = a.parse_nested_meta(|meta| {
            if meta.path.is_ident(word) {
                found = true;
            }
            if meta.input.peek(syn::Token![=]) {
                let _: syn::Expr = meta.value()?.parse()?;
            }
            Ok(())
        });
        found
    })
}

fn type_name(ty: &syn::Type) -> String {
    use quote::ToTokens;
    let spelled = ty.to_token_stream().to_string().replace(' ', "");
    // Keep each path's last segment: `Option<super::NodePlugins>` is `Option<NodePlugins>`.
    let mut out = String::new();
    for piece in spelled.split_inclusive(['<', '>', ',']) {
        let (path, delimiter) = piece.split_at(piece.trim_end_matches(['<', '>', ',']).len());
        out.push_str(path.rsplit("::").next().unwrap_or(path));
        out.push_str(delimiter);
    }
    out
}

/// The profile file's types: each struct (or enum of one-value variants) deserialized from
/// it, by name, with its fields.
fn profile_types() -> BTreeMap<String, Vec<ProfileField>> {
    let source = std::fs::read_to_string(root().join("harness/src/cni/profile.rs")).unwrap();
    let file = syn::parse_file(&source).unwrap();
    let mut types = BTreeMap::new();
    for item in file.items {
        let (name, fields) = match item {
            syn::Item::Struct(s) => {
                let camel = serde_says(&s.attrs, "rename_all");
                let fields = s
                    .fields
                    .iter()
                    .filter_map(|f| {
                        let ident = f.ident.as_ref()?.to_string();
                        let ty = type_name(&f.ty);
                        Some(ProfileField {
                            name: if camel { camel_case(&ident) } else { ident },
                            optional: serde_says(&f.attrs, "default") || ty.starts_with("Option<"),
                            ty,
                            doc: doc_of(&f.attrs),
                        })
                    })
                    .collect();
                (s.ident.to_string(), fields)
            }
            syn::Item::Enum(e) => {
                let fields = e
                    .variants
                    .iter()
                    .filter_map(|v| {
                        let ty = type_name(&v.fields.iter().next()?.ty);
                        Some(ProfileField { name: camel_case(&v.ident.to_string()), ty, optional: true, doc: doc_of(&v.attrs) })
                    })
                    .collect();
                (e.ident.to_string(), fields)
            }
            _ => continue,
        };
        types.insert(name, fields);
    }
    types
}

fn profile_page() -> String {
    let types = profile_types();
    let mut page = format!(
        "{GENERATED}\n\n# Profile fields\n\nEvery field of a CNI profile file (`profile.yaml`), from the types it is read \
         into and their doc comments (`harness/src/cni/profile.rs`). Unknown fields are refused, naming the file and the \
         field. How to write one: [Certify your plugin](../certify.md).\n"
    );
    // Each type where the file puts it, from the top: (YAML path, type).
    let mut queue = std::collections::VecDeque::from([(String::new(), "ProfileFile".to_owned())]);
    while let Some((path, name)) = queue.pop_front() {
        let fields = &types[&name];
        let title = if path.is_empty() { "The top level".to_owned() } else { format!("`{path}`") };
        page += &format!("\n## {title}\n\n| field | type | | meaning |\n| --- | --- | --- | --- |\n");
        for field in fields {
            page += &format!("| `{}` | `{}` | {} | {} |\n", field.name, field.ty, if field.optional { "optional" } else { "required" }, cell(&field.doc));
            let inner = field.ty.trim_start_matches("Option<").trim_start_matches("Vec<").trim_end_matches('>');
            if types.contains_key(inner) {
                let child = if path.is_empty() { field.name.clone() } else { format!("{path}.{}", field.name) };
                let child = if field.ty.starts_with("Vec<") { format!("{child}[]") } else { child };
                queue.push_back((child, inner.to_owned()));
            }
        }
    }
    page
}

/// Every field a profile may have is documented where it is declared: the generated page
/// would otherwise have a field no one explains.
#[test]
fn every_profile_field_has_a_doc_comment() {
    let missing: Vec<String> =
        profile_types().iter().flat_map(|(ty, fields)| fields.iter().filter(|f| f.doc.is_empty()).map(move |f| format!("{ty}::{}", f.name))).collect();
    assert!(missing.is_empty(), "fields of the profile file without a doc comment in harness/src/cni/profile.rs: {missing:?}");
}

/// Each reference page and what the code says it is.
fn reference_pages() -> Vec<(&'static str, String)> {
    vec![
        ("reference/scenarios.md", scenarios_page()),
        ("reference/cni-spec-checks.md", checks_page()),
        ("reference/environment.md", environment_page()),
        ("reference/profile.md", profile_page()),
        ("reference/budgets.md", budgets_page()),
    ]
}

#[test]
fn the_reference_pages_are_what_the_code_says() {
    let update = std::env::var(UPDATE).is_ok_and(|v| v == "1");
    let mut stale = Vec::new();
    for (page, text) in reference_pages() {
        let path = guide().join(page);
        if std::fs::read_to_string(&path).ok().as_deref() == Some(text.as_str()) {
            continue;
        }
        if update {
            harness::files::write_atomically(&path, text.as_bytes()).unwrap();
        } else {
            stale.push(path.display().to_string());
        }
    }
    assert!(stale.is_empty(), "out of date with the code: {}; run `cargo xtask docs` and commit the result", stale.join(", "));
}

/// Every `CNICONF_*` name in the given text, in order of appearance.
fn variables_in(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("CNICONF_") {
        let tail = &rest[at..];
        let end = tail.find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')).unwrap_or(tail.len());
        let name = tail[..end].trim_end_matches('_');
        if name.len() > "CNICONF_".len() {
            found.push(name.to_owned());
        }
        rest = &tail[end..];
    }
    found
}

/// The files under `dir` whose names end in `.<extension>`, sorted.
fn files_under(dir: &Path, extension: &str) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .flatten()
        .map(walkdir::DirEntry::into_path)
        .filter(|path| path.is_file() && path.extension().is_some_and(|e| e == extension))
        .collect()
}

#[test]
fn every_variable_the_code_reads_is_in_the_reference_and_every_one_there_is_read() {
    let documented: BTreeSet<&str> = VARIABLES.iter().flat_map(|v| v.names.iter().copied()).collect();
    let mut read = BTreeSet::new();
    for dir in ["harness/src", "harness/tests", "suites", "xtask/src", "probe/src", "tsn-proxy/src"] {
        for file in files_under(&root().join(dir), "rs") {
            // The registry is the list itself.
            if file.ends_with("harness/src/environment.rs") {
                continue;
            }
            read.extend(variables_in(&std::fs::read_to_string(&file).unwrap()));
        }
    }
    let undocumented: Vec<&String> = read.iter().filter(|name| !documented.contains(name.as_str())).collect();
    assert!(undocumented.is_empty(), "read by the code but not in harness::environment::VARIABLES: {undocumented:?}");
    let unread: Vec<&&str> = documented.iter().filter(|name| name.starts_with("CNICONF_") && !read.contains(**name)).collect();
    assert!(unread.is_empty(), "in harness::environment::VARIABLES but read nowhere: {unread:?}");
}

/// The guide's pages and the README, each with its text.
fn pages() -> Vec<(PathBuf, String)> {
    let mut pages: Vec<PathBuf> = files_under(&guide(), "md");
    pages.push(root().join("README.md"));
    pages.into_iter().map(|p| (p.clone(), std::fs::read_to_string(&p).unwrap())).collect()
}

/// The targets of the Markdown links in `text` (`[label](target)`), outside code.
fn links(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
        }
        if fenced {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            let tail = &rest[at + 2..];
            let end = tail.find(')').unwrap_or(tail.len());
            found.push(tail[..end].to_owned());
            rest = &tail[end..];
        }
    }
    found
}

#[test]
fn the_summary_lists_every_page_and_every_link_between_pages_resolves() {
    let summary = std::fs::read_to_string(guide().join("SUMMARY.md")).unwrap();
    let listed: BTreeSet<PathBuf> = links(&summary).iter().map(|l| guide().join(l)).collect();
    let on_disk: BTreeSet<PathBuf> = files_under(&guide(), "md").into_iter().filter(|p| !p.ends_with("SUMMARY.md")).collect();
    let missing: Vec<_> = on_disk.difference(&listed).collect();
    assert!(missing.is_empty(), "pages the summary does not list: {missing:?}");
    let mut broken = Vec::new();
    // The summary is one of the guide's pages: its links are checked with theirs.
    for (page, text) in pages() {
        for link in links(&text) {
            if link.starts_with("http://") || link.starts_with("https://") || link.starts_with('#') || link.starts_with("mailto:") {
                continue;
            }
            let file = link.split('#').next().unwrap_or_default();
            if !page.parent().unwrap().join(file).exists() {
                broken.push(format!("{}: {link}", page.display()));
            }
        }
    }
    assert!(broken.is_empty(), "links to nothing: {broken:?}");
}

/// The shell blocks of a page (```sh), each with the line it starts on.
fn shell_blocks(text: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (number, line) in text.lines().enumerate() {
        match (&mut current, line.trim_start()) {
            (None, fence) if fence == "```sh" || fence == "```bash" || fence == "```shell" => current = Some((number + 1, String::new())),
            (Some(_), "```") => blocks.push(current.take().expect("in a block")),
            (Some((_, block)), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

/// The test targets cargo knows in this workspace (`cargo test --test <name>`), and in the
/// vendor crate's template the guide walks through.
fn test_targets() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let mut in_test = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_test = line == "[[test]]";
        } else if let (true, Some(value)) = (in_test, line.strip_prefix("name = ")) {
            names.insert(value.trim_matches('"').to_owned());
        }
    }
    for dir in ["harness/tests", "xtask/tests", "fixtures/vendor-crate/tests"] {
        for file in files_under(&root().join(dir), "rs") {
            names.insert(file.file_stem().unwrap().to_string_lossy().into_owned());
        }
    }
    names
}

/// The commands `cargo xtask` knows, from its usage text.
fn xtask_commands() -> BTreeSet<String> {
    let main = std::fs::read_to_string(root().join("xtask/src/main.rs")).unwrap();
    main.lines().filter_map(|line| line.strip_prefix("        Some(\"")).filter_map(|rest| rest.split('"').next()).map(str::to_owned).collect()
}

#[test]
fn every_command_the_guide_shows_parses_and_names_what_exists() {
    let (targets, commands) = (test_targets(), xtask_commands());
    let documented: BTreeSet<&str> = VARIABLES.iter().flat_map(|v| v.names.iter().copied()).collect();
    let mut wrong = Vec::new();
    for (page, text) in pages() {
        for (line, block) in shell_blocks(&text) {
            let at = format!("{}:{line}", page.display());
            let parsed = std::process::Command::new("bash")
                .args(["-n", "-c", &block])
                .output()
                .map(|o| if o.status.success() { None } else { Some(String::from_utf8_lossy(&o.stderr).into_owned()) })
                .unwrap();
            if let Some(error) = parsed {
                wrong.push(format!("{at}: does not parse: {error}"));
            }
            let words: Vec<&str> = block.split_whitespace().collect();
            for pair in words.windows(2) {
                if pair[0] == "--test" && !pair[1].contains(['$', '<']) && !targets.contains(pair[1]) {
                    wrong.push(format!("{at}: no test target `{}`", pair[1]));
                }
            }
            for triple in words.windows(3) {
                if triple[..2] == ["cargo", "xtask"] && !triple[2].starts_with(['-', '<']) && !commands.contains(triple[2]) {
                    wrong.push(format!("{at}: `cargo xtask {}` is no xtask command ({commands:?})", triple[2]));
                }
            }
            for name in variables_in(&block) {
                if !documented.contains(name.as_str()) {
                    wrong.push(format!("{at}: {name} is no variable the harness reads"));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// A hand-written table whose first column is "scenario" or "check" names each by its code
/// name: every backticked name there must be one the code has (the README's tables once
/// named scenarios that had been renamed).
#[test]
fn the_guide_s_scenario_and_check_tables_name_only_what_the_code_has() {
    let scenarios: BTreeSet<&str> = families().iter().flat_map(|(_, _, s)| s.iter().map(|s| s.name)).collect();
    let checks: BTreeSet<&str> = harness::spec::checks().iter().map(|c| c.rule.name).collect();
    let mut wrong = Vec::new();
    for (page, text) in pages() {
        let mut known: Option<&BTreeSet<&str>> = None;
        for line in text.lines() {
            if !line.starts_with('|') {
                known = None;
                continue;
            }
            let first = line.trim_start_matches('|').split(" | ").next().unwrap_or_default().trim();
            match first {
                "scenario" => known = Some(&scenarios),
                "check" => known = Some(&checks),
                _ => {
                    let Some(known) = known else { continue };
                    for name in first.split('`').skip(1).step_by(2) {
                        if name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') && !known.contains(name) {
                            wrong.push(format!("{}: `{name}` is not in the code", page.display()));
                        }
                    }
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The guide's walk-through of a vendor's own crate shows the template's files as they
/// are (`fixtures/vendor-crate/`, which `suites/acceptance.rs` builds and runs).
#[test]
fn the_vendor_crate_page_shows_the_template_that_is_built_and_run() {
    let page = std::fs::read_to_string(guide().join("own-crate.md")).unwrap().replace("\n   ", "\n");
    for file in ["tests/egress_mycni.rs", "fixtures/cni/my-cni/profile.yaml"] {
        let text = std::fs::read_to_string(root().join("fixtures/vendor-crate").join(file)).unwrap();
        assert!(page.contains(text.trim_end()), "docs/src/own-crate.md does not show fixtures/vendor-crate/{file} as it is");
    }
}
