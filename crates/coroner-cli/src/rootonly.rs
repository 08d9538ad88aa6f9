//! "Only root can change this path": the check for what root uses on
//! behalf of every user (the handler program the kernel runs, the directory
//! of the coredump socket).
//!
//! Must not: follow symlinks (every component is `lstat`ed: a symlink is
//! mode 0777, so it never passes) or create anything.

use anyhow::Context;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The first component from `start` up to `/` that someone other than root
/// could change: not owned by root, or writable by group or others. A
/// root-owned sticky directory (like `/tmp`) above `start` passes: nobody
/// else may rename or remove what root put there.
pub fn first_unsafe_component(start: &Path) -> anyhow::Result<Option<(PathBuf, Metadata)>> {
    let mut p = Some(start);
    while let Some(cur) = p {
        let m = std::fs::symlink_metadata(cur)
            .with_context(|| format!("cannot stat {}", cur.display()))?;
        let sticky_ok = cur != start && m.uid() == 0 && m.mode() & 0o1000 != 0;
        if m.uid() != 0 || (m.mode() & 0o022 != 0 && !sticky_ok) {
            return Ok(Some((cur.to_path_buf(), m)));
        }
        p = cur.parent();
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn root_owned_chain_passes_and_a_writable_or_foreign_component_is_named() {
        if coroner_sys::uids().1 == 0 {
            let t = tempfile::tempdir().unwrap();
            let d = t.path().join("d");
            std::fs::create_dir(&d).unwrap();
            std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
            // /tmp above is root's and sticky: fine.
            assert!(first_unsafe_component(&d).unwrap().is_none());
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o775)).unwrap();
            assert_eq!(first_unsafe_component(&d).unwrap().unwrap().0, d);
            // Sticky is fine above `start`, not for `start` itself.
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o1777)).unwrap();
            assert_eq!(first_unsafe_component(&d).unwrap().unwrap().0, d);
            let s = d.join("s");
            std::fs::create_dir(&s).unwrap();
            std::fs::set_permissions(&s, std::fs::Permissions::from_mode(0o755)).unwrap();
            assert!(first_unsafe_component(&s).unwrap().is_none());
            let link = t.path().join("link");
            std::os::unix::fs::symlink(&s, &link).unwrap();
            assert_eq!(first_unsafe_component(&link).unwrap().unwrap().0, link);
        }
        assert!(first_unsafe_component(Path::new("/nonexistent/x")).is_err());
    }
}
