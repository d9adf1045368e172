//! `cargo xtask compare <baseline> <candidate>`: the regression check of a CNI upgrade,
//! figure by figure, from two runs' `figures.json` (or the report directories holding them).

use harness::report::figures::FiguresFile;
use harness::verdict::regression::{self, RegressionCriteria};

const COMPARE_USAGE: &str =
    "expected: compare <baseline figures.json or report dir> <candidate figures.json or report dir> [--smallest-regression 0.10] [--alpha 0.05]";

pub fn run(args: &[String]) -> Result<(), String> {
    let mut paths = Vec::new();
    let mut criteria = RegressionCriteria::default();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let mut share = |name: &str| -> Result<f64, String> {
            let value = rest.next().ok_or_else(|| format!("{name} needs a value; {COMPARE_USAGE}"))?;
            match value.parse::<f64>() {
                Ok(v) if v > 0.0 && v < 1.0 => Ok(v),
                _ => Err(format!("{name} {value}: expected a share between 0 and 1 (0.10 for 10 %)")),
            }
        };
        match arg.as_str() {
            "--smallest-regression" => criteria.smallest_regression = share("--smallest-regression")?,
            "--alpha" => criteria.alpha = share("--alpha")?,
            flag if flag.starts_with("--") => return Err(format!("unknown compare argument `{flag}`; {COMPARE_USAGE}")),
            path => paths.push(std::path::PathBuf::from(path)),
        }
    }
    let [baseline, candidate] = <[_; 2]>::try_from(paths).map_err(|p| format!("{} paths given; {COMPARE_USAGE}", p.len()))?;
    let (baseline, candidate) = (FiguresFile::read(&baseline)?, FiguresFile::read(&candidate)?);
    println!("baseline:  {} {} on {} ({}, kernel {})", baseline.cni, baseline.cni_version, baseline.provider, baseline.machine_class, baseline.kernel);
    println!("candidate: {} {} on {} ({}, kernel {})", candidate.cni, candidate.cni_version, candidate.provider, candidate.machine_class, candidate.kernel);
    if baseline.machine_class != candidate.machine_class || baseline.provider != candidate.provider {
        println!("note: the runs differ in machine class or provider; absolute figures compare machines as much as versions");
    }
    let (comparisons, unmatched) = regression::compare(&baseline.figures, &candidate.figures, criteria);
    println!("{}", regression::table(&comparisons, &unmatched, criteria));
    match comparisons.iter().filter(|c| c.regression).map(|c| c.name.as_str()).collect::<Vec<_>>() {
        regressed if regressed.is_empty() => Ok(()),
        regressed => Err(format!("significant regression of more than {:.0}% in {}", criteria.smallest_regression * 100.0, regressed.join(", "))),
    }
}
