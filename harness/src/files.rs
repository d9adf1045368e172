//! Writing files so that a reader never sees half of one: a temporary file in the same
//! directory, synced, then renamed over the target.

use std::path::Path;

/// Writes `contents` to `path` atomically, creating its directory (tested through
/// `report::write_atomically`, which wraps it).
pub fn write_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let dir =
        path.parent().filter(|d| !d.as_os_str().is_empty()).ok_or_else(|| std::io::Error::other(format!("{} has no parent directory", path.display())))?;
    std::fs::create_dir_all(dir)?;
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut file, contents)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}
