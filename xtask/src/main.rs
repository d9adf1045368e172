//! `cargo xtask`: what cargo alone cannot express — installing the lab's packages,
//! the test and certification jobs, and removing what killed runs left behind.

mod certify;
mod compare;
mod deps;
mod docs;
mod gc;
mod image;
mod lint;
mod test;
mod util;

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <command>

commands:
  deps [--check]   install the lab's Debian packages (as root), or with --check only report what is missing
  test             deps, workflow lint, the probe image (when Docker is here), then the whole test suite (what CI runs)
  certify [--cni <name|path>] [--provider lab|kind|existing]
                   deps, then every scenario family the profile claims (default: the reference
                   plugins on the lab, a self-test), each verdict with its evidence, and one
                   conformance report (YAML, Markdown, HTML) in target/cni-conformance/certification/<cni>/
  lint             rustfmt, clippy, and the GitHub Actions workflows (actionlint)
  docs [--check]   regenerate the user guide's reference pages (docs/src/reference/) from the code, or only
                   compare them, and check the guide's links and commands
  image            build the FROM-scratch images (cni-probe, tsn-metadata-proxy, cni-iperf3, cni-nettools) with Docker
  gc [--force]     remove lab clusters left by killed runs (--force: also those of runs still alive)
  compare <baseline> <candidate> [--smallest-regression 0.10] [--alpha 0.05]
                   compare two runs' performance figures (figures.json, or the report directory
                   holding it): fails on a significant regression of more than the smallest one";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().skip(1).any(|a| a == name);
    let result = match args.first().map(String::as_str) {
        Some("deps") => deps::run(flag("--check")),
        Some("test") => deps::run(false).and_then(|()| test::run()),
        // Certification installs what its profiles need, once they are read.
        Some("certify") => certify::run(&args[1..]),
        Some("image") => image::run(),
        Some("lint") => lint::rust().and_then(|()| lint::run()),
        Some("docs") => docs::run(flag("--check")),
        Some("gc") => gc::run(flag("--force")),
        Some("compare") => compare::run(&args[1..]),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command {:?}\n\n{USAGE}", other.unwrap_or(""))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}
