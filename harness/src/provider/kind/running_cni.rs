//! Which CNI a kind cluster runs when it is not the one it was installed with, kept in the
//! cluster's state directory so that a rollback lost to a killed process is repaired by
//! the next process on a kept or shared cluster, or by teardown.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file in a cluster's state directory holding its [`RunningCni`]; absent while the
/// cluster runs what it was installed with.
pub const RUNNING_CNI: &str = "running-cni.json";

/// The profiles (by their files) the cluster was installed with and runs now, and the one
/// a replacement under way is taking it to: set before the replacement's first step, so a
/// process killed in the middle leaves it said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunningCni {
    pub installed: PathBuf,
    pub running: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacing_to: Option<PathBuf>,
}

impl RunningCni {
    /// The record in state directory `dir`, if there is one; one that does not parse is
    /// reported as it is, never taken for "nothing to repair".
    pub fn read(dir: &Path) -> crate::Result<Option<Self>> {
        let path = dir.join(RUNNING_CNI);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| crate::HarnessError::FixtureMalformed { path: path.clone(), detail: format!("expected installed, running, replacingTo: {e}") }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(crate::HarnessError::Command { command: format!("read {}", path.display()), detail: e.to_string() }),
        }
    }

    /// Writes it to state directory `dir` (atomically), or removes the file when the
    /// cluster runs what it was installed with and nothing is under way.
    pub fn write(&self, dir: &Path) -> crate::Result<()> {
        let path = dir.join(RUNNING_CNI);
        let done = if self.restoration().is_none() {
            std::fs::remove_file(&path).or_else(|e| if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e) })
        } else {
            crate::files::write_atomically(&path, &serde_json::to_vec_pretty(self).expect("a record serializes"))
        };
        done.map_err(|e| crate::HarnessError::Command { command: format!("write {}", path.display()), detail: e.to_string() })
    }

    /// What must be replaced to bring the cluster back to its installed CNI: `(installed,
    /// from)`, `from` being what runs (or, for a replacement cut short, what it was taking
    /// the cluster to: its steps may all have run); `None` when it runs what it was
    /// installed with.
    pub fn restoration(&self) -> Option<(&Path, &Path)> {
        let now = self.replacing_to.as_deref().unwrap_or(&self.running);
        (now != self.installed || self.replacing_to.is_some()).then_some((self.installed.as_path(), now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(running: &str, replacing_to: Option<&str>) -> RunningCni {
        RunningCni { installed: "fixtures/cni/antrea-2.1/profile.yaml".into(), running: running.into(), replacing_to: replacing_to.map(PathBuf::from) }
    }

    #[test]
    fn what_to_restore_follows_what_runs_and_what_was_under_way() {
        let (old, new) = ("fixtures/cni/antrea-2.1/profile.yaml", "fixtures/cni/antrea/profile.yaml");
        assert_eq!(record(old, None).restoration(), None, "it runs what it was installed with");
        assert_eq!(record(new, None).restoration(), Some((Path::new(old), Path::new(new))), "upgraded, never rolled back");
        assert_eq!(record(old, Some(new)).restoration(), Some((Path::new(old), Path::new(new))), "killed while upgrading");
        assert_eq!(record(new, Some(old)).restoration(), Some((Path::new(old), Path::new(old))), "killed while rolling back: the rollback again");
    }

    #[test]
    fn the_record_is_there_exactly_while_something_is_to_restore() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(RunningCni::read(dir.path()).unwrap(), None);
        let upgraded = record("fixtures/cni/antrea/profile.yaml", None);
        upgraded.write(dir.path()).unwrap();
        assert_eq!(RunningCni::read(dir.path()).unwrap(), Some(upgraded));
        record("fixtures/cni/antrea-2.1/profile.yaml", None).write(dir.path()).unwrap();
        assert!(!dir.path().join(RUNNING_CNI).exists(), "rolled back: nothing to restore");
        std::fs::write(dir.path().join(RUNNING_CNI), "{").unwrap();
        let error = RunningCni::read(dir.path()).unwrap_err().to_string();
        assert!(error.contains(RUNNING_CNI) && error.contains("expected installed, running"), "{error}");
    }
}
