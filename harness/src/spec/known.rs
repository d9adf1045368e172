//! The reviewed list of known failures of the `cni_spec` suite: per subject, plugin version
//! and check, a fault the plugin really has, with why it is one. It never changes a verdict
//! (the reports say failed, with the evidence); it only keeps the run's exit status green,
//! and a listed check that passes fails the run until its entry is removed.

use std::path::Path;

use serde::Deserialize;

use crate::error::{HarnessError, Result};

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct KnownFailuresFile {
    known_failures: Vec<KnownFailure>,
}

/// One reviewed fault.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KnownFailure {
    /// The subject's name (its conflist's file name without extension).
    pub subject: String,
    /// The plugins' version, as the reports state it, or its start up to a `+`, space or `-`
    /// ("containernetworking-plugins 1.9.1" covers every Debian revision of 1.9.1).
    pub version: String,
    /// The check's name.
    pub check: String,
    /// Why the plugin, not the check, is at fault (the specification's words).
    pub why: String,
}

/// Loads the list, naming the file and entry of anything malformed or unknown.
pub fn load(path: &Path, checks: &[&str]) -> Result<Vec<KnownFailure>> {
    let text = std::fs::read_to_string(path).map_err(|source| HarnessError::FixtureUnreadable { path: path.to_owned(), source })?;
    let malformed = |detail: String| HarnessError::FixtureMalformed { path: path.to_owned(), detail };
    let file: KnownFailuresFile = serde_saphyr::from_str(&text).map_err(|e| malformed(e.to_string()))?;
    for (i, entry) in file.known_failures.iter().enumerate() {
        if !checks.contains(&entry.check.as_str()) {
            return Err(malformed(format!("knownFailures[{i}].check: `{}` is not a check; expected one of {}", entry.check, checks.join(", "))));
        }
        if entry.why.trim().is_empty() {
            return Err(malformed(format!("knownFailures[{i}].why: expected the reviewed reason the plugin is at fault")));
        }
    }
    Ok(file.known_failures)
}

/// The entry for `subject` at `version` failing `check`, if reviewed.
pub fn find<'a>(known: &'a [KnownFailure], subject: &str, version: &str, check: &str) -> Option<&'a KnownFailure> {
    let same_version = |listed: &str| version.strip_prefix(listed).is_some_and(|rest| rest.is_empty() || rest.starts_with(['+', ' ', '-']));
    known.iter().find(|k| k.subject == subject && same_version(&k.version) && k.check == check)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_version_matches_itself_or_its_debian_revisions_only() {
        let entry = |version: &str| super::KnownFailure { subject: "bridge".into(), version: version.into(), check: "c".into(), why: "w".into() };
        let known = [entry("containernetworking-plugins 1.9.1")];
        assert!(super::find(&known, "bridge", "containernetworking-plugins 1.9.1+ds1-1 (Debian unstable)", "c").is_some());
        assert!(super::find(&known, "bridge", "containernetworking-plugins 1.9.1", "c").is_some());
        assert!(super::find(&known, "bridge", "containernetworking-plugins 1.9.10+ds1-1", "c").is_none());
        assert!(super::find(&known, "bridge", "containernetworking-plugins 1.9.2+ds1-1", "c").is_none());
    }

    #[test]
    fn an_unknown_check_or_a_missing_reason_names_the_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known-failures.yaml");
        std::fs::write(&path, "knownFailures:\n  - subject: portmap\n    version: v\n    check: no_such_check\n    why: x\n").unwrap();
        let error = super::load(&path, &["del_twice_succeeds"]).unwrap_err().to_string();
        assert!(error.contains("known-failures.yaml") && error.contains("knownFailures[0].check") && error.contains("del_twice_succeeds"), "{error}");
        std::fs::write(&path, "knownFailures:\n  - subject: portmap\n    version: v\n    check: del_twice_succeeds\n    why: ''\n").unwrap();
        assert!(super::load(&path, &["del_twice_succeeds"]).unwrap_err().to_string().contains("knownFailures[0].why"));
        std::fs::write(&path, "knownFailures:\n  - subject: portmap\n    versoin: v\n").unwrap();
        assert!(super::load(&path, &["del_twice_succeeds"]).unwrap_err().to_string().contains("known-failures.yaml"));
    }
}
