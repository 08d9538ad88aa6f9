//! Dumping a live process to a named file, atomically.
//!
//! Owns: [`dump_live`] and [`dump_attached`]: attach (or use the caller's
//! attachment), snapshot, write the dump to a hidden temporary file in the
//! destination directory, detach, fsync when `DumpOptions::durable`, and
//! publish it under the final name; and the temporary-file discipline behind them.
//!
//! The temporary file is `.<name>.<pid>.<n>.tmp` next to the destination,
//! created with `O_EXCL` and mode 0600 (dumps hold secrets). Publishing
//! without `overwrite` hard-links it to the destination, which fails
//! atomically if the name exists (on file systems without hard links it
//! falls back to check-then-rename); with `overwrite` it is renamed over
//! the destination. Then, when durable, the directory is fsynced. On any error the
//! temporary file is removed, so no half-written file ever appears under
//! the destination name. (`O_TMPFILE` + `linkat` would avoid the visible
//! temporary name, but needs `linkat(AT_SYMLINK_FOLLOW)`, which std does
//! not offer and this crate may not call unsafely.)
//!
//! The process is stopped from attach to the end of the memory copy only:
//! it is detached before the fsync and the publish.
//!
//! Must not: choose dump names or folders (the caller does), or leave the
//! target stopped on any path (detach runs on errors too; `Attached` also
//! detaches on drop).

use crate::copy::Progress;
use crate::{write_dump, DumpError, DumpOptions, DumpStats};
use coroner_proc::Attached;
use coroner_types::Pid;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long attaching may take before giving up.
pub const ATTACH_TIMEOUT: Duration = Duration::from_secs(10);

/// A dump being written under a temporary name.
struct TempDump {
    dir: PathBuf,
    tmp: PathBuf,
    dest: PathBuf,
    overwrite: bool,
    file: File,
    published: bool,
}

impl TempDump {
    fn create(dest: &Path, overwrite: bool) -> Result<TempDump, DumpError> {
        let name = dest.file_name().ok_or_else(|| DumpError::File {
            what: "use as a dump file name",
            path: dest.to_owned(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"),
        })?;
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        if !overwrite && dest.symlink_metadata().is_ok() {
            return Err(DumpError::Exists {
                path: dest.to_owned(),
            });
        }
        let mut n = 0u32;
        loop {
            let mut tmp_name = std::ffi::OsString::from(".");
            tmp_name.push(name);
            tmp_name.push(format!(".{}.{n}.tmp", std::process::id()));
            let tmp = dir.join(tmp_name);
            match OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
            {
                Ok(file) => {
                    return Ok(TempDump {
                        dir,
                        tmp,
                        dest: dest.to_owned(),
                        overwrite,
                        file,
                        published: false,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
                Err(source) => {
                    return Err(DumpError::File {
                        what: "create the temporary dump",
                        path: tmp,
                        source,
                    })
                }
            }
        }
    }

    /// fsync (when `durable`), move to the final name, fsync the directory
    /// (when `durable`). Either way the name appears only once the dump is
    /// complete.
    fn publish(mut self, durable: bool) -> Result<(), DumpError> {
        if durable {
            self.file.sync_all().map_err(|source| DumpError::File {
                what: "fsync",
                path: self.tmp.clone(),
                source,
            })?;
        }
        let renamed = |s: &TempDump| {
            std::fs::rename(&s.tmp, &s.dest).map_err(|source| DumpError::File {
                what: "publish the dump as",
                path: s.dest.clone(),
                source,
            })
        };
        if self.overwrite {
            renamed(&self)?;
        } else {
            match std::fs::hard_link(&self.tmp, &self.dest) {
                Ok(()) => {
                    // The dump is published; a leftover temp name is only untidy.
                    let _ = std::fs::remove_file(&self.tmp);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(DumpError::Exists {
                        path: self.dest.clone(),
                    });
                }
                Err(_) if self.dest.symlink_metadata().is_ok() => {
                    return Err(DumpError::Exists {
                        path: self.dest.clone(),
                    });
                }
                Err(_) => renamed(&self)?,
            }
        }
        self.published = true;
        if !durable {
            return Ok(());
        }
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| DumpError::File {
                what: "fsync the directory",
                path: self.dir.clone(),
                source,
            })
    }
}

impl Drop for TempDump {
    fn drop(&mut self) {
        if !self.published {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Attach to `pid` (seize and stop all threads), snapshot it, write the dump
/// to a temporary file next to `dest`, detach, fsync, and publish it as
/// `dest` (refusing to replace an existing file unless `overwrite`).
pub fn dump_live(
    pid: Pid,
    dest: &Path,
    overwrite: bool,
    opts: &DumpOptions,
    progress: &dyn Progress,
) -> Result<DumpStats, DumpError> {
    let mut tmp = TempDump::create(dest, overwrite)?;
    let att = Attached::seize(pid, ATTACH_TIMEOUT).map_err(|source| DumpError::Proc {
        what: "attach to",
        pid,
        source,
    })?;
    let written = att
        .snapshot()
        .map_err(|source| DumpError::Proc {
            what: "snapshot",
            pid,
            source,
        })
        .and_then(|snap| write_dump(&mut tmp.file, &snap, att.memory(), opts, progress));
    let detached = att.detach();
    let stats = written?;
    detached.map_err(|source| DumpError::Proc {
        what: "detach from",
        pid,
        source,
    })?;
    tmp.publish(opts.durable)?;
    Ok(stats)
}

/// Like [`dump_live`] for a process the caller already traces and has
/// stopped (debugger `.dump`, test harness): does not attach or detach.
pub fn dump_attached(
    att: &Attached,
    dest: &Path,
    overwrite: bool,
    opts: &DumpOptions,
    progress: &dyn Progress,
) -> Result<DumpStats, DumpError> {
    let pid = att.pid();
    let mut tmp = TempDump::create(dest, overwrite)?;
    let snap = att.snapshot().map_err(|source| DumpError::Proc {
        what: "snapshot",
        pid,
        source,
    })?;
    let stats = write_dump(&mut tmp.file, &snap, att.memory(), opts, progress)?;
    tmp.publish(opts.durable)?;
    Ok(stats)
}

/// Write a dump with `write` (handed the empty temporary file) and publish
/// it as `dest` under the same discipline as [`dump_attached`]: for dumps
/// made from something other than a stopped process (a debugger's `.dump`
/// on a dump target: converted from a core, shrunk or copied from a
/// minidump).
pub fn write_published(
    dest: &Path,
    overwrite: bool,
    durable: bool,
    write: impl FnOnce(&mut File) -> Result<DumpStats, DumpError>,
) -> Result<DumpStats, DumpError> {
    let mut tmp = TempDump::create(dest, overwrite)?;
    let stats = write(&mut tmp.file)?;
    tmp.publish(durable)?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect()
    }

    #[test]
    fn publish_refuses_existing_without_overwrite() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("x.dmp");
        std::fs::write(&dest, b"old").unwrap();
        assert!(matches!(
            TempDump::create(&dest, false),
            Err(DumpError::Exists { .. })
        ));
        // Created meanwhile: the link fails, the temp file goes away.
        let other = d.path().join("y.dmp");
        let mut t = TempDump::create(&other, false).unwrap();
        t.file.write_all(b"new").unwrap();
        std::fs::write(&other, b"raced").unwrap();
        assert!(matches!(t.publish(false), Err(DumpError::Exists { .. })));
        assert_eq!(std::fs::read(&other).unwrap(), b"raced");
        assert!(leftovers(d.path()).is_empty());
    }

    #[test]
    fn publish_and_overwrite() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("x.dmp");
        let mut t = TempDump::create(&dest, false).unwrap();
        t.file.write_all(b"one").unwrap();
        t.publish(true).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"one");
        let mut t = TempDump::create(&dest, true).unwrap();
        t.file.write_all(b"two").unwrap();
        t.publish(false).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"two");
        // Dropped without publishing: nothing is left behind.
        let t = TempDump::create(&d.path().join("z.dmp"), false).unwrap();
        drop(t);
        assert!(leftovers(d.path()).is_empty());
        assert!(!d.path().join("z.dmp").exists());
    }
}
