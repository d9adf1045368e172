//! The HTML report in a real headless browser (Debian's Chromium): rendered to a PNG, its
//! DOM read back. It fails when the browser cannot render the page, reports a console or
//! load error, parses fewer plots than the page holds, or writes no image. Without
//! Chromium the check is ignored with the reason (`cargo xtask deps` installs it).

use std::path::{Path, PathBuf};
use std::process::Command;

use harness::report::conformance::example_report;
use harness::report::render;
use libtest_mimic::{Arguments, Completion, Failed, Trial};

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| std::env::var_os("PATH").and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join(name)).find(|p| p.is_file())))
}

fn browser(binary: &Path, page: &Path, extra: &[String]) -> Result<std::process::Output, Failed> {
    let profile = tempfile::tempdir()?;
    let output = Command::new(binary)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--enable-logging=stderr", "--v=0"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()?;
    Ok(output)
}

/// PNG width and height, from its IHDR chunk.
fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    (bytes.len() > 24 && bytes.starts_with(b"\x89PNG\r\n\x1a\n"))
        .then(|| (u32::from_be_bytes(bytes[16..20].try_into().unwrap()), u32::from_be_bytes(bytes[20..24].try_into().unwrap())))
}

fn renders_to_a_png_with_every_plot(binary: &Path) -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let page = dir.path().join("report.html");
    let html = render::html(&example_report());
    std::fs::write(&page, &html)?;
    let png = std::env::var_os("CNICONF_REPORT_PNG").map(PathBuf::from).unwrap_or_else(|| dir.path().join("report.png"));
    let shot = browser(binary, &page, &["--window-size=1200,1600".into(), format!("--screenshot={}", png.display())])?;
    let stderr = String::from_utf8_lossy(&shot.stderr);
    if !shot.status.success() {
        return Err(format!("chromium could not render the page ({}): {stderr}", shot.status).into());
    }
    if let Some(line) = stderr.lines().find(|l| l.contains(":CONSOLE") || l.contains("Uncaught") || l.contains("Failed to load")) {
        return Err(format!("the browser reported an error rendering the page: {line}").into());
    }
    match png_size(&std::fs::read(&png).map_err(|e| format!("no screenshot at {}: {e}", png.display()))?) {
        Some((1200, 1600)) => {}
        other => return Err(format!("the screenshot is not the 1200x1600 page: {other:?}").into()),
    }
    let dom = browser(binary, &page, &["--dump-dom".into()])?;
    let dom = String::from_utf8_lossy(&dom.stdout);
    let (written, parsed) = (html.matches("<svg").count(), dom.matches("<svg").count());
    if written == 0 || parsed != written || dom.matches("<rect").count() < 2 {
        return Err(format!("the browser parsed {parsed} of the page's {written} plots").into());
    }
    if !dom.contains("Self-test of the suites with the reference profile") {
        return Err("the page's title did not survive parsing".into());
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args = Arguments::from_args();
    let trial = Trial::ignorable_test("the_html_report_renders_in_chromium_with_every_plot", || match chromium() {
        Some(binary) => renders_to_a_png_with_every_plot(&binary).map(|()| Completion::Completed),
        None => Ok(Completion::ignored_with("Chromium is not on PATH; `cargo xtask deps` installs Debian's chromium")),
    });
    libtest_mimic::run(&args, vec![trial]).exit_code()
}
