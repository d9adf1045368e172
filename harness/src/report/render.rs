//! Renderings of a conformance report a person would rather look at: Markdown (for a pull
//! request's `$GITHUB_STEP_SUMMARY`) and one self-contained HTML page with inline SVG
//! plots (no script, nothing fetched): per canary stage each backend's observed share with
//! its interval against its weight, per egress scenario the source role seen against the
//! one expected, per TSN scenario each talker's packets per traffic class at the NIC.
//! Families added later (performance figures) get a section of their own from the same report.

use std::fmt::Write;

use super::conformance::{ConformanceReport, ScenarioResult};
use crate::provider::components::Purpose;
use crate::verdict::Estimate;

/// Titled by the profile, with its version only where the profile pins one: a profile of
/// installed plugins is not Debian's package version (each plugin's is under components).
fn title(report: &ConformanceReport) -> String {
    let implementation = &report.implementation;
    let pinned = match implementation.version.as_str() {
        "" | "as installed" => String::new(),
        version => format!(" {version}"),
    };
    match report.purpose {
        Some(Purpose::SelfTest) => format!("Self-test of the suites with the {} profile{pinned}", implementation.name),
        _ => format!("Conformance of the {} profile{pinned}", implementation.name),
    }
}

fn outcome_mark(result: &str) -> &'static str {
    match result {
        "passed" => "✅",
        "failed" => "❌",
        "inconclusive" => "❔",
        "deviates" => "🔶",
        "error" => "⚠️",
        _ => "⏭️",
    }
}

/// A badge in plain text: a page must not depend on an emoji font.
fn outcome_badge(result: &str) -> String {
    let label = match result {
        "passed" => "PASS",
        "failed" => "FAIL",
        "inconclusive" => "INCONCLUSIVE",
        "deviates" => "DEVIATES (SHOULD)",
        "error" => "ERROR",
        _ => "SKIP",
    };
    format!(r#"<span class="badge {result}">{label}</span>"#)
}

/// A suite's counts; deviations from a recommendation only where there are some.
fn counts(s: &super::conformance::Statistics) -> String {
    let deviated = if s.deviated > 0 { format!(", {} deviate from a recommendation (SHOULD, not failed)", s.deviated) } else { String::new() };
    format!("{} passed, {} failed{deviated}, {} errors, {} skipped", s.passed, s.failed, s.errored, s.skipped)
}

/// What a scenario's row says: the evidence, the error, or why it was skipped.
fn scenario_line(scenario: &ScenarioResult) -> String {
    match (&scenario.verdict, &scenario.skip_reason, &scenario.error) {
        (Some(v), _, _) => format!("expected {} ({}), observed {} ({})", v.expected.role, v.expected.detail, v.observed.role, v.observed.detail),
        (_, Some(reason), _) => format!("skipped: {reason}"),
        (_, _, Some(error)) => format!("error: {error}"),
        _ => String::new(),
    }
}

/// The report as Markdown.
pub fn markdown(report: &ConformanceReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## {}\n", title(report));
    if report.purpose == Some(Purpose::SelfTest) {
        let _ = writeln!(out, "> This run proves the suites with the harness's reference parts; it certifies no plugin.\n");
    }
    let commit = report.harness.git_commit.as_deref().map(|c| format!(" ({})", &c[..c.len().min(12)])).unwrap_or_default();
    let _ = writeln!(
        out,
        "Outcome: **{:?}** · provider `{}` · kernel `{}` · {} · harness {}{commit}\n",
        report.outcome(),
        report.provider,
        report.kernel,
        report.date,
        report.harness.version
    );
    if !report.not_run.is_empty() {
        let _ = writeln!(out, "> Interrupted: these never ran, so this report judges none of their scenarios: {}.\n", report.not_run.join(", "));
    }
    let _ = writeln!(out, "| role | component | version | origin |\n| --- | --- | --- | --- |");
    for c in &report.components {
        let _ = writeln!(out, "| {} | {} | {} | {} |", c.role.label(), c.name, c.version.replace('|', "\\|"), c.origin.replace('|', "\\|"));
    }
    for suite in &report.suites {
        let s = &suite.statistics;
        let _ = writeln!(out, "\n### {} — {:?} ({})\n", suite.name, suite.result, counts(s));
        if let Some(error) = &suite.provisioning_error {
            let _ = writeln!(out, "Cluster could not be provisioned: {error}\n");
        }
        let _ = writeln!(out, "| | scenario | evidence |\n| --- | --- | --- |");
        for scenario in &suite.scenarios {
            let harness = match scenario.provided_by_harness.is_empty() {
                true => String::new(),
                false => format!(" _(provided by the harness: {})_", scenario.provided_by_harness.join(", ")),
            };
            let bundle = scenario.bundle.as_ref().map(|b| format!(" · diagnostics bundle: `{b}`")).unwrap_or_default();
            let _ = writeln!(
                out,
                "| {} | `{}` | {}{harness}{bundle} |",
                outcome_mark(&scenario.result),
                scenario.name,
                scenario_line(scenario).replace('|', "\\|").replace('\n', " ")
            );
        }
    }
    out
}

/// Escapes text for HTML element content and attribute values.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// Horizontal bars: each backend's observed share with its interval, the expected share
/// as a vertical mark.
fn shares_plot(estimates: &[Estimate]) -> String {
    let (width, row, label) = (500.0, 34.0, 190.0);
    let scale = |share: f64| label + share.clamp(0.0, 1.0) * (width - label - 20.0);
    let height = 30.0 + row * estimates.len() as f64;
    let mut svg =
        format!(r#"<svg class="plot" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">"#);
    for tick in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let x = scale(tick);
        let _ = write!(
            svg,
            r##"<line x1="{x}" y1="4" x2="{x}" y2="{}" stroke="#ddd"/><text x="{x}" y="{}" font-size="10" text-anchor="middle">{:.0}%</text>"##,
            height - 16.0,
            height - 4.0,
            tick * 100.0
        );
    }
    for (i, e) in estimates.iter().enumerate() {
        let y = 8.0 + row * i as f64;
        let inside = e.low <= e.expected && e.expected <= e.high;
        let colour = if inside { "#3b82f6" } else { "#dc2626" };
        let _ = write!(
            svg,
            r##"<text x="{}" y="{}" font-size="11" text-anchor="end">{}</text><rect x="{}" y="{y}" width="{}" height="16" fill="{colour}" opacity="0.35"><title>{}: {} requests, observed {:.1}%, interval {:.1}%..{:.1}%, expected {:.1}%</title></rect><line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{colour}" stroke-width="2"/><line x1="{ex}" y1="{}" x2="{ex}" y2="{}" stroke="#111" stroke-width="2"/>"##,
            label - 6.0,
            y + 12.0,
            escape(&e.name),
            label,
            scale(e.observed) - label,
            escape(&e.name),
            e.count,
            e.observed * 100.0,
            e.low * 100.0,
            e.high * 100.0,
            e.expected * 100.0,
            scale(e.low),
            y + 8.0,
            scale(e.high),
            y + 8.0,
            y - 2.0,
            y + 18.0,
            ex = scale(e.expected),
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Performance figures, one row each on its own scale (units differ): a bar to the
/// estimate, the interval as a whisker, the budget as a dashed line.
fn figures_plot(figures: &[crate::verdict::performance::Figure]) -> String {
    use crate::verdict::performance::FigureOutcome;
    let (width, row, label) = (640.0, 30.0, 330.0);
    let height = 8.0 + row * figures.len() as f64;
    let mut svg =
        format!(r#"<svg class="plot" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">"#);
    for (i, f) in figures.iter().enumerate() {
        let y = 6.0 + row * i as f64;
        let finite = [f.estimate, f.low, f.high, f.budget.as_ref().map_or(0.0, |b| b.limit)].into_iter().filter(|x| x.is_finite()).fold(0.0_f64, f64::max);
        let top = if finite > 0.0 { finite * 1.15 } else { 1.0 };
        let scale = |x: f64| {
            label
                + (if x.is_finite() {
                    x
                } else if x > 0.0 {
                    top
                } else {
                    0.0
                })
                .clamp(0.0, top)
                    / top
                    * (width - label - 70.0)
        };
        let colour = match f.outcome {
            FigureOutcome::Passed => "#16a34a",
            FigureOutcome::Failed => "#dc2626",
            FigureOutcome::Inconclusive => "#7c3aed",
            FigureOutcome::Measured => "#3b82f6",
        };
        let _ = write!(
            svg,
            r##"<text x="{}" y="{}" font-size="10" text-anchor="end">{}</text><rect x="{label}" y="{y}" width="{}" height="14" fill="{colour}" opacity="0.35"><title>{}: {}; budget {}; {}</title></rect><line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{colour}" stroke-width="2"/><text x="{}" y="{}" font-size="10">{:.3} {}</text>"##,
            label - 6.0,
            y + 11.0,
            escape(&f.name),
            scale(f.estimate) - label,
            escape(&f.name),
            escape(&f.summary()),
            escape(&f.budget_text()),
            f.outcome_text(),
            scale(f.low),
            y + 7.0,
            scale(f.high),
            y + 7.0,
            width - 66.0,
            y + 11.0,
            f.estimate,
            escape(&f.unit),
        );
        if let Some(budget) = &f.budget {
            let x = scale(budget.limit);
            let _ = write!(
                svg,
                r##"<line class="budget" x1="{x}" y1="{}" x2="{x}" y2="{}" stroke="#111" stroke-width="2" stroke-dasharray="3,2"/>"##,
                y - 3.0,
                y + 17.0
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// Pod start-up p95 against the number of pods started together (from the start-up
/// figures: the single-pod samples and each batch's p95 figure).
fn startup_plot(figures: &[crate::verdict::performance::Figure]) -> Option<String> {
    let mut points: Vec<(f64, f64)> = Vec::new();
    for f in figures {
        let Some(name) = f.name.strip_prefix("startup.pod-network.") else { continue };
        if name == "1-pod" {
            let mut sorted = f.samples.clone();
            sorted.sort_by(f64::total_cmp);
            points.push((1.0, crate::verdict::performance::nearest_rank(&sorted, 0.95)));
        } else if let Some(n) = name.strip_suffix("-pods.p95").and_then(|n| n.parse::<f64>().ok()) {
            points.push((n, f.estimate));
        }
    }
    if points.len() < 2 {
        return None;
    }
    let (width, height, left, bottom) = (420.0, 180.0, 50.0, 24.0);
    let max_n = points.iter().map(|p| p.0).fold(1.0, f64::max);
    let max_ms = points.iter().map(|p| p.1).fold(1.0, f64::max) * 1.15;
    let x = |n: f64| left + n / max_n * (width - left - 20.0);
    let y = |ms: f64| height - bottom - ms / max_ms * (height - bottom - 10.0);
    let mut svg =
        format!(r#"<svg class="plot startup" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">"#);
    let _ = write!(
        svg,
        r##"<line x1="{left}" y1="{}" x2="{}" y2="{}" stroke="#999"/><line x1="{left}" y1="10" x2="{left}" y2="{}" stroke="#999"/><text x="{}" y="{}" font-size="10" text-anchor="middle">pods started together</text><text x="4" y="12" font-size="10">p95 ms</text>"##,
        height - bottom,
        width - 20.0,
        height - bottom,
        height - bottom,
        width / 2.0,
        height - 4.0
    );
    let line: Vec<String> = points.iter().map(|&(n, ms)| format!("{:.1},{:.1}", x(n), y(ms))).collect();
    let _ = write!(svg, r##"<polyline points="{}" fill="none" stroke="#3b82f6" stroke-width="2"/>"##, line.join(" "));
    for &(n, ms) in &points {
        let _ = write!(
            svg,
            r##"<circle cx="{:.1}" cy="{:.1}" r="3" fill="#3b82f6"><title>{n} pod(s): p95 {ms:.1} ms</title></circle><text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle">{n}: {ms:.0} ms</text>"##,
            x(n),
            y(ms),
            x(n),
            y(ms) - 6.0
        );
    }
    svg.push_str("</svg>");
    Some(svg)
}

/// Rows of scenarios, columns of roles: a ring where the expected role is, a dot where the
/// observed one is (a dot in its ring is a pass).
fn roles_plot(scenarios: &[&ScenarioResult]) -> String {
    let mut roles: Vec<&str> = Vec::new();
    for v in scenarios.iter().filter_map(|s| s.verdict.as_ref()) {
        for role in [v.expected.role.as_str(), v.observed.role.as_str()] {
            if !roles.contains(&role) {
                roles.push(role);
            }
        }
    }
    let (label, column, row) = (470.0, 100.0, 26.0);
    let width = label + column * roles.len() as f64 + 10.0;
    let height = 40.0 + row * scenarios.len() as f64;
    let mut svg =
        format!(r#"<svg class="plot" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">"#);
    for (j, role) in roles.iter().enumerate() {
        let _ = write!(svg, r#"<text x="{}" y="14" font-size="11" text-anchor="middle">{}</text>"#, label + column * (j as f64 + 0.5), escape(role));
    }
    for (i, scenario) in scenarios.iter().enumerate() {
        let y = 34.0 + row * i as f64;
        let _ = write!(svg, r#"<text x="{}" y="{}" font-size="11" text-anchor="end">{}</text>"#, label - 8.0, y + 4.0, escape(&scenario.name));
        let Some(v) = &scenario.verdict else { continue };
        let x = |role: &str| label + column * (roles.iter().position(|r| *r == role).unwrap_or(0) as f64 + 0.5);
        let colour = if v.passed { "#16a34a" } else { "#dc2626" };
        let _ = write!(
            svg,
            r##"<circle cx="{}" cy="{y}" r="9" fill="none" stroke="#111" stroke-width="1.5"><title>expected {}</title></circle><circle cx="{}" cy="{y}" r="5" fill="{colour}"><title>observed {}</title></circle>"##,
            x(&v.expected.role),
            escape(&v.expected.role),
            x(&v.observed.role),
            escape(&v.observed.role)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The report as one self-contained HTML page.
pub fn html(report: &ConformanceReport) -> String {
    let mut body = String::new();
    let _ = write!(body, "<h1>{}</h1>", escape(&title(report)));
    if report.purpose == Some(Purpose::SelfTest) {
        body.push_str(r#"<p class="banner">This run proves the suites with the harness's reference parts; it certifies no plugin.</p>"#);
    }
    let commit = report.harness.git_commit.clone().unwrap_or_else(|| "unknown".into());
    let _ = write!(
        body,
        r#"<p class="meta">Outcome <b>{:?}</b> · provider {} · kernel {} · cluster {} · {} · cni-harness {} ({}) · report {}</p>"#,
        report.outcome(),
        escape(&report.provider),
        escape(&report.kernel),
        escape(&report.cluster),
        escape(&report.date),
        escape(&report.harness.version),
        escape(&commit),
        escape(&report.api_version)
    );
    if !report.not_run.is_empty() {
        let _ = write!(
            body,
            r#"<p class="banner">Interrupted: these never ran, so this report judges none of their scenarios: {}.</p>"#,
            escape(&report.not_run.join(", "))
        );
    }
    body.push_str("<h2>Components</h2><table><tr><th>role</th><th>component</th><th>version</th><th>origin</th><th>provides</th></tr>");
    for c in &report.components {
        let provides = c.provides.iter().map(|f| f.name()).collect::<Vec<_>>().join(", ");
        let _ = write!(
            body,
            r#"<tr class="{}"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
            escape(&format!("{:?}", c.role)),
            c.role.label(),
            escape(&c.name),
            escape(&c.version),
            escape(&c.origin),
            escape(&provides)
        );
    }
    body.push_str("</table>");
    for suite in &report.suites {
        let s = &suite.statistics;
        let _ = write!(body, r#"<h2>{} <span class="result">{:?}: {}</span></h2>"#, escape(&suite.name), suite.result, counts(s));
        if let Some(error) = &suite.provisioning_error {
            let _ = write!(body, r#"<p class="error">Cluster could not be provisioned: {}</p>"#, escape(error));
        }
        let with_roles: Vec<&ScenarioResult> = suite.scenarios.iter().filter(|s| s.verdict.as_ref().is_some_and(|v| v.statistics.is_empty())).collect();
        if !with_roles.is_empty() {
            let _ = write!(body, "<h3>Roles seen</h3><figure>{}</figure>", roles_plot(&with_roles));
        }
        body.push_str("<table><tr><th></th><th>scenario</th><th>evidence</th></tr>");
        for scenario in &suite.scenarios {
            let harness = match scenario.provided_by_harness.is_empty() {
                true => String::new(),
                false => format!(r#"<div class="harness">provided by the harness: {}</div>"#, escape(&scenario.provided_by_harness.join(", "))),
            };
            let harness = match &scenario.bundle {
                Some(bundle) => format!(
                    r#"{harness}<div class="bundle">diagnostics bundle: <a href="file://{}">{}</a> (start with <code>bundle.txt</code> and <code>path-trace.txt</code>)</div>"#,
                    escape(bundle),
                    escape(bundle)
                ),
                None => harness,
            };
            let mut plots = String::new();
            let figures = scenario.verdict.as_ref().map(|v| v.figures.as_slice()).unwrap_or_default();
            if !figures.is_empty() {
                let caption = scenario
                    .verdict
                    .iter()
                    .flat_map(|v| &v.statistics)
                    .map(|p| format!("{}; false-fail rate {:.1}% per figure", p.test, p.false_fail_rate * 100.0))
                    .collect::<Vec<_>>()
                    .join("; ");
                let _ = write!(plots, r#"<figure>{}<figcaption>{}</figcaption></figure>"#, figures_plot(figures), escape(&caption));
                if let Some(startup) = startup_plot(figures) {
                    let _ = write!(plots, r#"<figure>{startup}<figcaption>pod network start-up p95 against pods started together</figcaption></figure>"#);
                }
            }
            for parameters in scenario.verdict.iter().filter(|v| v.figures.is_empty()).flat_map(|v| &v.statistics) {
                let _ = write!(
                    plots,
                    r#"<figure>{}<figcaption>{}: {} requests{}; false-fail rate {:.2}%{}, power {:.1}% against a {:.0}-point deviation</figcaption></figure>"#,
                    shares_plot(&parameters.estimates),
                    escape(&parameters.test),
                    parameters.sample_size,
                    match &parameters.sequential {
                        Some(stopping) => escape(&format!(
                            " (stopped at look {} of {}, {}; at worst {}{})",
                            stopping.look,
                            stopping.looks,
                            stopping.bound,
                            stopping.worst_case_requests,
                            stopping.average_requests_when_correct.map(|a| format!(", {a:.0} on average for a correct split")).unwrap_or_default()
                        )),
                        None => String::new(),
                    },
                    parameters.false_fail_rate * 100.0,
                    match (parameters.family_false_fail_rate, parameters.family_verdicts) {
                        (Some(suite), Some(verdicts)) => format!(
                            " (a share of the suite's {:.1}% over its {verdicts} split verdicts; the suite's timed and exact checks, such as liveness within its budget, every request answered and mirror copies, are outside it)",
                            suite * 100.0
                        ),
                        _ => String::new(),
                    },
                    parameters.power * 100.0,
                    parameters.detectable_deviation * 100.0
                );
            }
            if let Some(verdict) = scenario.verdict.as_ref().filter(|v| !v.counters.is_empty()) {
                match gaps_plot(&verdict.counters) {
                    Some(plot) => {
                        let _ = write!(plots, "<figure>{plot}<figcaption>each long-lived connection's longest gap between echoes through the upgrade, against the budget (the dashed line)</figcaption></figure>");
                    }
                    None => plots.push_str(&counters_table(&verdict.counters)),
                }
            }
            let _ = write!(
                body,
                r#"<tr class="{}"><td>{}</td><td><code>{}</code><div class="sentence">{}</div></td><td>{}{harness}{plots}</td></tr>"#,
                escape(&scenario.result),
                outcome_badge(&scenario.result),
                escape(&scenario.name),
                escape(&scenario.sentence),
                escape(&scenario_line(scenario))
            );
        }
        body.push_str("</table>");
    }
    let families: Vec<&str> = report.suites.iter().map(|s| s.name.as_str()).collect();
    for (family, name) in [("tsn", "TSN priority preservation (class counters)"), ("perf", "Performance budgets (figures against budgets)")] {
        if family == "tsn" && families.iter().any(|f| f.starts_with(family)) {
            continue;
        }
        if !families.iter().any(|f| f.starts_with(family)) {
            let _ = write!(body, r#"<h2>{name}</h2><p class="absent">Not part of this run.</p>"#);
        }
    }
    format!(
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{}</title><style>{STYLE}</style></head><body>{body}</body></html>
"#,
        escape(&title(report))
    )
}

/// Horizontal bars of each connection's longest gap (counters named
/// [`LONGEST_GAP`](crate::verdict::upgrade::LONGEST_GAP)), the budget a dashed line; red past
/// it. `None` when the counters carry no gaps.
fn gaps_plot(counters: &[crate::verdict::Counter]) -> Option<String> {
    use crate::verdict::upgrade::{GAP_BUDGET_SUBJECT, LONGEST_GAP};
    let gaps: Vec<&crate::verdict::Counter> = counters.iter().filter(|c| c.name == LONGEST_GAP && c.subject != GAP_BUDGET_SUBJECT).collect();
    let budget = counters.iter().find(|c| c.name == LONGEST_GAP && c.subject == GAP_BUDGET_SUBJECT)?.value as f64;
    if gaps.is_empty() {
        return None;
    }
    let (width, row, label) = (640.0, 26.0, 330.0);
    let top = gaps.iter().map(|c| c.value as f64).fold(budget * 1.25, f64::max).max(1.0);
    let scale = |ms: f64| label + ms / top * (width - label - 40.0);
    let height = 24.0 + row * gaps.len() as f64;
    let mut svg =
        format!(r#"<svg class="plot" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">"#);
    for (i, c) in gaps.iter().enumerate() {
        let y = 4.0 + row * i as f64;
        let colour = if c.value as f64 > budget { "#dc2626" } else { "#3b82f6" };
        let _ = write!(
            svg,
            r##"<text x="{}" y="{}" font-size="11" text-anchor="end">{}</text><rect x="{label}" y="{y}" width="{}" height="16" fill="{colour}" opacity="0.6"><title>{}: longest gap {} ms</title></rect><text x="{}" y="{}" font-size="10">{} ms</text>"##,
            label - 6.0,
            y + 12.0,
            escape(&c.subject),
            (scale(c.value as f64) - label).max(1.0),
            escape(&c.subject),
            c.value,
            scale(c.value as f64) + 4.0,
            y + 12.0,
            c.value
        );
    }
    let x = scale(budget);
    let _ = write!(
        svg,
        r##"<line x1="{x}" y1="0" x2="{x}" y2="{}" stroke="#111" stroke-dasharray="4 3"/><text x="{x}" y="{}" font-size="10" text-anchor="middle">budget {budget} ms</text></svg>"##,
        height - 14.0,
        height - 2.0
    );
    Some(svg)
}

/// A verdict's counts as a table: one row per subject (a talker), one column per name (a
/// traffic class), in the order they came.
fn counters_table(counters: &[crate::verdict::Counter]) -> String {
    let mut subjects: Vec<&str> = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for c in counters {
        if !subjects.contains(&c.subject.as_str()) {
            subjects.push(&c.subject);
        }
        if !names.contains(&c.name.as_str()) {
            names.push(&c.name);
        }
    }
    let mut table = String::from(r#"<table class="counters"><tr><th>packets at the NIC</th>"#);
    for name in &names {
        let _ = write!(table, "<th>{}</th>", escape(name));
    }
    table.push_str("</tr>");
    for subject in &subjects {
        let _ = write!(table, "<tr><td>{}</td>", escape(subject));
        for name in &names {
            let value = counters.iter().find(|c| c.subject == *subject && c.name == *name).map(|c| c.value.to_string()).unwrap_or_default();
            let _ = write!(table, "<td>{value}</td>");
        }
        table.push_str("</tr>");
    }
    table.push_str("</table>");
    table
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#111;max-width:1100px}table{border-collapse:collapse;width:100%;margin:1em 0}td,th{border:1px solid #ddd;padding:6px;vertical-align:top;font-size:13px;text-align:left}tr.failed td,tr.error td{background:#fef2f2}tr.ignored td{color:#666}.banner{background:#fff7ed;border:1px solid #fdba74;padding:8px}.meta{color:#444}.sentence{color:#555;font-size:12px;margin-top:4px}.harness{color:#92400e;font-size:12px;margin-top:4px}.result{font-size:14px;font-weight:normal;color:#444}figure{margin:8px 0}figcaption{font-size:11px;color:#555}.absent{color:#888}.error{color:#b91c1c}.badge{font-size:11px;font-weight:bold;padding:2px 5px;border-radius:3px;color:#fff}.badge.passed{background:#16a34a}.badge.failed{background:#dc2626}.badge.error{background:#d97706}.badge.ignored{background:#9ca3af}.badge.inconclusive{background:#7c3aed}tr.inconclusive td{background:#f5f3ff}.badge.deviates{background:#ca8a04}tr.deviates td{background:#fefce8}td:nth-child(2){width:34%}";

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ConformanceReport {
        crate::report::conformance::example_report()
    }

    #[test]
    fn an_interrupted_certification_is_incomplete_and_names_what_never_ran() {
        let mut report = sample();
        use crate::report::conformance::Outcome;
        assert_ne!(report.outcome(), Outcome::Incomplete);
        report.not_run = vec!["tsn".into(), "perf".into()];
        assert_eq!(report.outcome(), Outcome::Incomplete);
        assert!(
            markdown(&report).contains("Outcome: **Incomplete**")
                && markdown(&report).contains("these never ran, so this report judges none of their scenarios: tsn, perf.")
        );
        assert!(html(&report).contains("Outcome <b>Incomplete</b>") && html(&report).contains("tsn, perf."));
        let read_back = ConformanceReport::from_yaml(&report.to_yaml()).unwrap();
        assert_eq!(read_back.not_run, report.not_run);
        // A failure found before the interruption stays the outcome.
        report.suites[0].statistics.failed = 1;
        assert_eq!(report.outcome(), Outcome::Failure);
    }

    #[test]
    fn a_tsn_verdict_s_class_counters_are_a_table_per_talker() {
        let grew = std::collections::BTreeMap::from([("1:3".to_owned(), 50)]);
        let verdict = crate::verdict::priority::talker_kept_its_class("tsn-t1/talker-1", 1, 50, &grew, "eth0");
        let mut report = sample();
        report.suites[0].name = "tsn_lab".into();
        report.suites[0].scenarios[0].verdict = Some(verdict);
        let page = html(&report);
        assert!(page.contains("<th>class-1</th><th>class-2</th><th>best-effort</th><th>not-a-talker</th></tr><tr><td>tsn-t1/talker-1</td><td>0</td><td>0</td><td>50</td><td>0</td></tr>"), "{page}");
        assert!(!page.contains("TSN priority preservation (class counters)</h2><p class=\"absent\""), "the TSN family ran");
    }

    #[test]
    fn an_upgrade_s_held_connections_are_plotted_by_their_longest_gap_against_the_budget() {
        use cni_probe::hold::{HoldEnd, HoldReport};
        let held = |gap| HoldReport { to: "10.244.1.3:8090".parse().unwrap(), exchanges: 140, longest_gap_ms: gap, held_ms: 3000, ended: HoldEnd::Held };
        let verdict = crate::verdict::upgrade::connections_held(
            "1.9.1",
            "1.1.1",
            &[("pod-to-pod-on-one-node".into(), held(20)), ("pod-to-the-external-host".into(), held(1400))],
            std::time::Duration::from_millis(1000),
        );
        let mut report = sample();
        report.suites[0].scenarios[0].verdict = Some(verdict);
        let page = html(&report);
        assert!(
            page.contains("<title>pod-to-pod-on-one-node: longest gap 20 ms</title>")
                && page.contains("<title>pod-to-the-external-host: longest gap 1400 ms</title>"),
            "{page}"
        );
        assert!(
            page.contains("budget 1000 ms</text>") && page.contains(r##"fill="#dc2626" opacity="0.6"><title>pod-to-the-external-host"##),
            "the gap past the budget is red: {page}"
        );
        assert!(!page.contains("packets at the NIC"), "no counter table for gaps");
    }

    #[test]
    fn a_performance_verdict_is_bars_with_intervals_against_budget_lines_and_start_up_against_n() {
        use crate::verdict::performance::{self, Better, BudgetLine, FigureSpec, Looks, SequentialPlan};
        let looks = Looks::calibrate(0.5, SequentialPlan { initial: 10, batch: 5, cap: 30, false_fail: 0.01 }).unwrap();
        let spec = |name: &str, better, quantile| FigureSpec { name: name.into(), unit: "ms".into(), better, quantile, path: "node lab-worker".into() };
        let floor = BudgetLine {
            limit: 2.0,
            better: Better::Higher,
            relative_to: None,
            machine_class: Some("2-core x86_64".into()),
            source: "budgets/performance.yaml budgets[3]".into(),
        };
        let tens: Vec<f64> = (0..10).map(|i| 9.0 + f64::from(i) * 0.1).collect();
        let slow: Vec<f64> = tens.iter().map(|x| x / 10.0).collect();
        let figures = vec![
            performance::judge(
                &FigureSpec { unit: "Gbit/s".into(), ..spec("throughput.pod-to-pod.across-nodes", Better::Higher, 0.5) },
                &slow,
                &looks,
                Some(&floor),
            ),
            performance::judge(&spec("startup.pod-network.1-pod", Better::Lower, 0.5), &tens.iter().map(|x| x * 8.0).collect::<Vec<_>>(), &looks, None),
            performance::judge(&spec("startup.pod-network.10-pods.p95", Better::Lower, 0.95), &tens.iter().map(|x| x * 60.0).collect::<Vec<_>>(), &looks, None),
        ];
        let verdict = performance::figures_within_budget("throughput", "paths", figures, &looks, "the NIC");
        let mut report = sample();
        report.suites[0].name = "perf_lab".into();
        report.suites[0].scenarios[0].result = "failed".into();
        report.suites[0].scenarios[0].verdict = Some(verdict);
        // The figures survive the YAML report (an unbounded interval end as null).
        let report = ConformanceReport::from_yaml(&report.to_yaml()).unwrap();
        let page = html(&report);
        assert!(page.contains("throughput.pod-to-pod.across-nodes</text>") && page.contains(r#"class="budget""#) && page.contains("0.940 Gbit/s"), "{page}");
        assert!(page.contains("false-fail rate 1.0% per figure"), "{page}");
        assert!(page.contains(r#"class="plot startup""#) && page.contains("10: 594 ms"), "{page}");
        assert!(!page.contains("Performance budgets (figures against budgets)</h2><p class=\"absent\""), "the performance family ran");
    }

    #[test]
    fn markdown_says_what_the_run_was_and_what_each_scenario_saw() {
        let text = markdown(&sample());
        assert!(text.starts_with("## Self-test of the suites with the reference profile"), "{text}");
        assert!(text.contains("certifies no plugin") && text.contains("| harness reference | lab reference egress gateway |"), "{text}");
        assert!(text.contains("| ✅ | `canary_stage_at_5_percent_is_honoured` | expected split-as-weighted"), "{text}");
        assert!(text.contains("skipped: no mirror"), "{text}");
    }

    #[test]
    fn the_html_page_is_self_contained_and_escapes_what_it_quotes() {
        let mut report = sample();
        report.suites[0].scenarios[1].skip_reason = Some("<script>alert(1)</script> & more".into());
        let page = html(&report);
        assert!(!page.contains("<script"), "no script, not even a quoted one");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; more"));
        assert!(!page.contains("http://") || page.matches("http://").all(|_| page.contains("xmlns=\"http://www.w3.org/2000/svg\"")), "nothing fetched");
        assert_eq!(page.matches("<svg").count(), 1, "one plot: the canary stage's shares");
        assert!(page.contains("current-weather-pod-2: 23 requests, observed 5.2%"), "{page}");
    }
}
