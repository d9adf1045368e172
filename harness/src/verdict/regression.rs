//! Regression gating: a candidate run's figures (a CNI upgrade) against a baseline run's
//! (the current version), figure by figure.
//!
//! The test is one-sided and exact: Mann–Whitney's U of the candidate's samples against
//! the baseline's moved by the smallest regression worth failing for (δ, e.g. 10 %). A
//! figure regresses when its candidate samples are significantly worse than the baseline's
//! made δ worse: so a change smaller than δ is never significant more often than the test's
//! level, however many samples, and a run compared with itself reports a regression with
//! probability well under it. The level is split over the compared figures (Bonferroni), so
//! a same-version comparison of a whole run fails at most `alpha` of the time. A figure of
//! one exact count (rules traversed) regresses when it is worse by more than δ.

use serde::Serialize;

use super::performance::{Better, Figure};

/// How two runs are compared.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RegressionCriteria {
    /// The smallest regression worth failing for, as a share (0.10: 10 % worse).
    pub smallest_regression: f64,
    /// The chance that comparing a version with itself reports any regression.
    pub alpha: f64,
}

impl Default for RegressionCriteria {
    fn default() -> Self {
        Self { smallest_regression: 0.10, alpha: 0.05 }
    }
}

/// One figure of both runs, compared.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub name: String,
    pub unit: String,
    pub better: Better,
    pub baseline: f64,
    pub candidate: f64,
    /// Candidate over baseline, minus one (+0.05: 5 % higher).
    pub change: f64,
    /// The one-sided p-value of "worse by more than δ" (none for an exact count).
    pub p_value: Option<f64>,
    pub regression: bool,
}

/// The number of arrangements of `m` and `n` samples with each value of U (the count of
/// pairs where the first sample is above), exactly: Mann–Whitney's null distribution.
pub fn mann_whitney_null(m: usize, n: usize) -> Vec<f64> {
    // ways[j][u]: arrangements of i first samples and j second samples with U = u.
    let mut ways: Vec<Vec<f64>> = (0..=n).map(|_| vec![1.0]).collect();
    for i in 1..=m {
        let mut next: Vec<Vec<f64>> = Vec::with_capacity(n + 1);
        next.push(vec![1.0]);
        for j in 1..=n {
            // The largest sample is a first one (above all j second ones: U + j) or a second one.
            let mut row = vec![0.0; i * j + 1];
            for (u, w) in ways[j].iter().enumerate() {
                row[u + j] += w;
            }
            for (u, w) in next[j - 1].iter().enumerate() {
                row[u] += w;
            }
            next.push(row);
        }
        ways = next;
    }
    ways.pop().unwrap_or_default()
}

/// P(U >= u) under the null for `m` and `n` samples (ties count a half, so `u` may be x.5).
fn upper_tail(m: usize, n: usize, u: f64) -> f64 {
    let ways = mann_whitney_null(m, n);
    let total: f64 = ways.iter().sum();
    ways.iter().enumerate().filter(|(k, _)| *k as f64 >= u - 1e-9).map(|(_, w)| w).sum::<f64>() / total
}

fn median(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// Compares one figure measured in both runs at `level` (alpha over the figures compared).
pub fn compare_figure(baseline: &Figure, candidate: &Figure, criteria: RegressionCriteria, level: f64) -> Comparison {
    let (b, c) = (median(&baseline.samples), median(&candidate.samples));
    let delta = criteria.smallest_regression;
    // The baseline made δ worse: the boundary of a regression worth failing for.
    let worse = |x: f64| match baseline.better {
        Better::Higher => x * (1.0 - delta),
        Better::Lower => x * (1.0 + delta),
    };
    let (p_value, regression) = if baseline.samples.len() < 2 || candidate.samples.len() < 2 {
        let regressed = match baseline.better {
            Better::Higher => c < worse(b),
            Better::Lower => c > worse(b),
        };
        (None, regressed)
    } else {
        // U: pairs where the candidate is worse than the moved baseline (ties a half).
        let mut u = 0.0;
        for &x in &candidate.samples {
            for &y in &baseline.samples {
                let y = worse(y);
                let past = match baseline.better {
                    Better::Higher => x < y,
                    Better::Lower => x > y,
                };
                u += if past {
                    1.0
                } else if x == y {
                    0.5
                } else {
                    0.0
                };
            }
        }
        let p = upper_tail(candidate.samples.len(), baseline.samples.len(), u);
        (Some(p), p <= level)
    };
    Comparison {
        name: baseline.name.clone(),
        unit: baseline.unit.clone(),
        better: baseline.better,
        baseline: b,
        candidate: c,
        change: c / b - 1.0,
        p_value,
        regression,
    }
}

/// Compares every figure both runs measured; figures only one run has are listed apart.
pub fn compare(baseline: &[Figure], candidate: &[Figure], criteria: RegressionCriteria) -> (Vec<Comparison>, Vec<String>) {
    let pairs: Vec<(&Figure, &Figure)> = baseline.iter().filter_map(|b| Some((b, candidate.iter().find(|c| c.name == b.name)?))).collect();
    let level = criteria.alpha / pairs.len().max(1) as f64;
    let compared = pairs.iter().map(|(b, c)| compare_figure(b, c, criteria, level)).collect();
    let unmatched = baseline.iter().chain(candidate).filter(|f| !pairs.iter().any(|(b, _)| b.name == f.name)).map(|f| f.name.clone()).collect();
    (compared, unmatched)
}

/// The comparison as a table for a terminal or a PR comment.
pub fn table(comparisons: &[Comparison], unmatched: &[String], criteria: RegressionCriteria) -> String {
    let mut out = format!(
        "Regression check: one-sided exact Mann–Whitney test of each figure's candidate samples against its baseline samples made {:.0}% worse, at alpha {} over {} figure(s) (Bonferroni: {:.4} each)\n\n",
        criteria.smallest_regression * 100.0,
        criteria.alpha,
        comparisons.len(),
        criteria.alpha / comparisons.len().max(1) as f64
    );
    out.push_str(&format!("{:<90} {:>12} {:>12} {:>8} {:>9}  {}\n", "figure (median)", "baseline", "candidate", "change", "p", "verdict"));
    for c in comparisons {
        let p = c.p_value.map_or("exact".to_owned(), |p| format!("{p:.4}"));
        let verdict = if c.regression { "REGRESSION" } else { "ok" };
        out.push_str(&format!(
            "{:<90} {:>12} {:>12} {:>+7.1}% {:>9}  {verdict}\n",
            format!("{} ({}, {} better)", c.name, c.unit, if c.better == Better::Higher { "higher" } else { "lower" }),
            format!("{:.3}", c.baseline),
            format!("{:.3}", c.candidate),
            c.change * 100.0,
            p
        ));
    }
    for name in unmatched {
        out.push_str(&format!("{name}: in one run only, not compared\n"));
    }
    let regressions = comparisons.iter().filter(|c| c.regression).count();
    out.push_str(&match regressions {
        0 => "\nno significant regression\n".to_owned(),
        n => format!("\n{n} significant regression(s) of more than {:.0}%\n", criteria.smallest_regression * 100.0),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::performance::FigureOutcome;
    use rand::{Rng, SeedableRng};

    fn figure(samples: Vec<f64>, better: Better) -> Figure {
        Figure {
            name: "f".into(),
            unit: "u".into(),
            better,
            quantile: 0.5,
            path: "p".into(),
            samples,
            estimate: 0.0,
            low: 0.0,
            high: 0.0,
            level: 0.0,
            budget: None,
            outcome: FigureOutcome::Measured,
        }
    }

    #[test]
    fn the_null_distribution_counts_every_arrangement() {
        // C(m + n, m) arrangements, symmetric around mn/2.
        let ways = mann_whitney_null(4, 3);
        assert_eq!(ways.iter().sum::<f64>(), 35.0);
        assert_eq!(ways.len(), 13);
        assert!(ways.iter().zip(ways.iter().rev()).all(|(a, b)| a == b));
        assert_eq!(mann_whitney_null(10, 10).iter().sum::<f64>(), 184_756.0);
        assert!((upper_tail(10, 10, 0.0) - 1.0).abs() < 1e-12);
        assert!((upper_tail(10, 10, 100.0) - 1.0 / 184_756.0).abs() < 1e-12);
    }

    fn noisy(rng: &mut impl Rng, n: usize, median: f64) -> Vec<f64> {
        (0..n).map(|_| median * (0.15 * (rng.random::<f64>() - 0.5) * 2.0).exp()).collect()
    }

    /// Exactly on the boundary (the candidate δ worse) the test reports a regression at its
    /// level (within simulation error), and no more: the level is what it says. 20,000 runs:
    /// a standard error of 0.15 points at 5 %.
    #[test]
    fn on_the_boundary_the_false_regression_rate_is_the_level_in_both_directions() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let criteria = RegressionCriteria { smallest_regression: 0.10, alpha: 0.05 };
        for better in [Better::Higher, Better::Lower] {
            let boundary = match better {
                Better::Higher => 0.9,
                Better::Lower => 1.1,
            };
            let runs = 20_000;
            let regressions = (0..runs)
                .filter(|_| {
                    let baseline = figure(noisy(&mut rng, 10, 10.0), better);
                    let candidate = figure(noisy(&mut rng, 10, 10.0 * boundary), better);
                    compare_figure(&baseline, &candidate, criteria, 0.05).regression
                })
                .count();
            let rate = regressions as f64 / runs as f64;
            // The exact test's size for 10 and 10 samples is the largest tail under 5 %.
            assert!(rate <= 0.05 + 3.0 * (0.05f64 * 0.95 / runs as f64).sqrt() && rate > 0.035, "{better:?}: {rate}");
        }
    }

    #[test]
    fn the_same_version_rarely_regresses_and_a_real_regression_is_caught() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(12);
        let criteria = RegressionCriteria::default();
        let (mut same, mut caught) = (0, 0);
        for _ in 0..2_000 {
            let baseline = figure(noisy(&mut rng, 10, 10.0), Better::Higher);
            let again = figure(noisy(&mut rng, 10, 10.0), Better::Higher);
            let slower = figure(noisy(&mut rng, 10, 7.0), Better::Higher);
            same += usize::from(compare(std::slice::from_ref(&baseline), &[again], criteria).0[0].regression);
            caught += usize::from(compare(&[baseline], &[slower], criteria).0[0].regression);
        }
        assert!(same <= 2, "{same} of 2000 same-version comparisons regressed");
        assert!(caught >= 1_990, "a 30% slowdown was caught in {caught} of 2000");
    }

    #[test]
    fn an_exact_count_regresses_when_worse_by_more_than_the_smallest_regression() {
        let criteria = RegressionCriteria::default();
        let rules = |n: f64| figure(vec![n], Better::Lower);
        assert!(compare_figure(&rules(10.0), &rules(12.0), criteria, 0.05).regression);
        assert!(!compare_figure(&rules(10.0), &rules(11.0), criteria, 0.05).regression);
        assert!(!compare_figure(&rules(10.0), &rules(2.0), criteria, 0.05).regression);
    }

    #[test]
    fn the_table_says_which_figures_regressed_and_which_were_not_compared() {
        let mut a = figure(vec![10.0; 10], Better::Higher);
        a.samples = (0..10).map(|i| 10.0 + f64::from(i) * 0.01).collect();
        let b = figure(a.samples.iter().map(|x| x / 2.0).collect(), Better::Higher);
        let mut only = figure(vec![1.0], Better::Lower);
        only.name = "rules.traversed.x".into();
        let (comparisons, unmatched) = compare(&[a, only], &[b], RegressionCriteria::default());
        let text = table(&comparisons, &unmatched, RegressionCriteria::default());
        assert!(
            text.contains("REGRESSION")
                && text.contains("-50.0%")
                && text.contains("rules.traversed.x: in one run only")
                && text.contains("1 significant regression(s) of more than 10%"),
            "{text}"
        );
    }
}
