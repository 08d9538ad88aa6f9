//! The kernel-tier dump folder: created and owned by root, reached without
//! following any symlink, written only through `O_TMPFILE` + `linkat`, so a
//! dump is either complete under its final name or not there at all.
//!
//! Peers' history this answers (spec/peers.md §2.4): root writes into a
//! directory the crashing user controls (CVE-2015-1324, CVE-2019-11482),
//! symlink and TOCTOU attacks on report files (CVE-2015-1338, CVE-2015-3315,
//! CVE-2020-8833), report files re-opened by name (CVE-2015-1325).
//!
//! Must not: trust an existing folder it did not check (owner, mode, type
//! are checked on the opened descriptor), build a path from a name the
//! crashing process chose (names are sanitized by the caller), or grant a
//! user read access the caller did not decide on.

use anyhow::{bail, Context};
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// An opened, checked dump folder.
#[derive(Debug)]
pub struct DumpDir {
    fd: OwnedFd,
    path: PathBuf,
}

/// How the folder may be reached by others.
#[derive(Clone, Copy, Debug)]
pub struct FolderMode {
    /// This group may list the folder and read every dump (0750).
    pub group: Option<u32>,
    /// Others may traverse (not list) it, so a user granted read access to
    /// one dump by ACL can open it by name (0701 / 0751).
    pub traverse: bool,
}

impl FolderMode {
    fn bits(self) -> u32 {
        0o700 | if self.group.is_some() { 0o050 } else { 0 } | if self.traverse { 0o001 } else { 0 }
    }
}

fn stat_fd(fd: &OwnedFd) -> io::Result<std::fs::Metadata> {
    File::from(fd.try_clone()?).metadata()
}

impl DumpDir {
    /// Open `path` (absolute) as the dump folder, creating what is missing
    /// of its last component with `mode`. Every component is opened with
    /// `O_NOFOLLOW`: a symlink anywhere is refused. The folder itself must
    /// end up owned by `owner` and not writable by group or others; its
    /// mode is then reset to `mode` (a folder whose permissions were
    /// loosened is repaired, not trusted as found).
    pub fn open(path: &Path, owner: u32, mode: FolderMode) -> anyhow::Result<DumpDir> {
        if !path.is_absolute() {
            bail!("dump folder {} is not an absolute path", path.display());
        }
        let mut fd = coroner_sys::fs::open_dir_path(OsStr::new("/"))
            .context("cannot open / (the root directory)")?;
        let mut so_far = PathBuf::from("/");
        let comps: Vec<&OsStr> = path
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(Ok(n)),
                Component::RootDir | Component::CurDir => None,
                Component::ParentDir | Component::Prefix(_) => Some(Err(())),
            })
            .collect::<Result<_, _>>()
            .map_err(|_| anyhow::anyhow!("dump folder {} contains '..'", path.display()))?;
        let last = comps.len().saturating_sub(1);
        for (i, name) in comps.iter().enumerate() {
            so_far.push(name);
            let opened = coroner_sys::fs::open_dir_at(fd.as_fd(), name);
            let next = match opened {
                Ok(f) => f,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) && i == last => {
                    match coroner_sys::fs::mkdir_at(fd.as_fd(), name, 0o700) {
                        Ok(()) => {}
                        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                        Err(e) => {
                            return Err(e)
                                .with_context(|| format!("cannot create {}", so_far.display()))
                        }
                    }
                    coroner_sys::fs::open_dir_at(fd.as_fd(), name)
                        .with_context(|| refused(&so_far))?
                }
                Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
                    bail!("{}", refused(&so_far))
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot open {}", so_far.display()))
                }
            };
            fd = next;
        }
        let m = stat_fd(&fd).with_context(|| format!("cannot stat {}", path.display()))?;
        if m.uid() != owner {
            bail!(
                "dump folder {} is owned by uid {}, not {owner}: refusing to write there",
                path.display(),
                m.uid()
            );
        }
        if m.mode() & 0o022 != 0 {
            bail!(
                "dump folder {} is group- or world-writable (mode {:o}): refusing to write there",
                path.display(),
                m.mode() & 0o7777
            );
        }
        coroner_sys::fs::fchmod(fd.as_fd(), mode.bits())
            .with_context(|| format!("cannot set the mode of {}", path.display()))?;
        if let Some(g) = mode.group {
            coroner_sys::fs::fchown(fd.as_fd(), owner, g)
                .with_context(|| format!("cannot set the group of {}", path.display()))?;
        }
        Ok(DumpDir {
            fd,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A nameless file in the folder, mode 0600.
    pub fn tmpfile(&self) -> io::Result<File> {
        coroner_sys::fs::tmpfile_in(self.fd.as_fd(), 0o600)
    }

    /// Give `file` the first free name of `stem.ext`, `stem-1.ext`, ...;
    /// returns the name. Nothing existing is ever replaced.
    pub fn publish(&self, file: &File, stem: &str, ext: &str) -> io::Result<String> {
        for n in 0..1000 {
            let name = if n == 0 {
                format!("{stem}.{ext}")
            } else {
                format!("{stem}-{n}.{ext}")
            };
            match coroner_sys::fs::link_at(file.as_fd(), self.fd.as_fd(), OsStr::new(&name)) {
                Ok(()) => return Ok(name),
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::from_raw_os_error(libc::EEXIST))
    }

    /// (available, total) bytes of the folder's file system.
    pub fn free_space(&self) -> io::Result<(u64, u64)> {
        coroner_sys::fs::free_space(self.fd.as_fd())
    }
}

fn refused(p: &Path) -> String {
    format!(
        "{} is a symlink or not a directory: refusing to follow it for a dump folder",
        p.display()
    )
}

/// The POSIX ACL `system.posix_acl_access` value granting `uid` read access
/// (owner rw, group `group_read`, others nothing).
fn acl_grant_read(uid: u32, group_read: bool) -> Vec<u8> {
    const UNDEFINED: u32 = u32::MAX;
    let mut v = 2u32.to_le_bytes().to_vec();
    let mut entry = |tag: u16, perm: u16, id: u32| {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    };
    entry(0x01, 6, UNDEFINED); // ACL_USER_OBJ rw
    entry(0x02, 4, uid); // ACL_USER r
    entry(0x04, if group_read { 4 } else { 0 }, UNDEFINED); // ACL_GROUP_OBJ
    entry(0x10, 4, UNDEFINED); // ACL_MASK r
    entry(0x20, 0, UNDEFINED); // ACL_OTHER
    v
}

/// Set who may read a published dump: owner root, `group` (0640) if any,
/// and `reader` through an ACL if given.
pub fn set_access(
    file: &File,
    owner: u32,
    group: Option<u32>,
    reader: Option<u32>,
) -> io::Result<()> {
    coroner_sys::fs::fchown(file.as_fd(), owner, group.unwrap_or(0))?;
    coroner_sys::fs::fchmod(file.as_fd(), if group.is_some() { 0o640 } else { 0o600 })?;
    if let Some(uid) = reader {
        coroner_sys::fs::set_xattr(
            file.as_fd(),
            "system.posix_acl_access",
            &acl_grant_read(uid, group.is_some()),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    fn me() -> u32 {
        coroner_sys::uids().1
    }

    #[test]
    fn creates_checks_and_publishes_without_replacing() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("dumps");
        let mode = FolderMode {
            group: None,
            traverse: true,
        };
        let d = DumpDir::open(&p, me(), mode).unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777,
            0o701
        );
        let mut f = d.tmpfile().unwrap();
        f.write_all(b"one").unwrap();
        assert_eq!(
            std::fs::read_dir(&p).unwrap().count(),
            0,
            "nameless until published"
        );
        assert_eq!(d.publish(&f, "a", "dmp").unwrap(), "a.dmp");
        let g = d.tmpfile().unwrap();
        assert_eq!(d.publish(&g, "a", "dmp").unwrap(), "a-1.dmp");
        assert_eq!(std::fs::read(p.join("a.dmp")).unwrap(), b"one");
        // Loosened permissions are repaired on the next open.
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        DumpDir::open(&p, me(), mode).unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777,
            0o701
        );
    }

    #[test]
    fn symlinks_foreign_owners_and_writable_folders_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let real = t.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let mode = FolderMode {
            group: None,
            traverse: false,
        };
        let e = DumpDir::open(&link, me(), mode).unwrap_err().to_string();
        assert!(e.contains("symlink"), "{e}");
        // A symlink in the middle of the path, too.
        let e = DumpDir::open(&link.join("sub"), me(), mode)
            .unwrap_err()
            .to_string();
        assert!(e.contains("symlink"), "{e}");
        let e = DumpDir::open(&real, me() + 1, mode)
            .unwrap_err()
            .to_string();
        assert!(e.contains("owned by uid"), "{e}");
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = DumpDir::open(&real, me(), mode).unwrap_err().to_string();
        assert!(e.contains("world-writable"), "{e}");
        assert!(DumpDir::open(Path::new("rel/dir"), me(), mode).is_err());
    }

    #[test]
    fn acl_layout() {
        let a = acl_grant_read(1000, false);
        assert_eq!(a.len(), 4 + 5 * 8);
        assert_eq!(&a[..4], &2u32.to_le_bytes());
        assert_eq!(&a[12..14], &2u16.to_le_bytes());
        assert_eq!(&a[16..20], &1000u32.to_le_bytes());
    }
}
