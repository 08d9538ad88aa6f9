//! `/etc/ld.so.preload` editing for `coroner install --jit --system`.
//!
//! The dynamic loader reads whitespace- (and `:`-) separated library paths
//! from that file and loads them into every process, setuid ones included,
//! so the library must be an absolute path to an existing regular file owned
//! by root and not group/world-writable, and its path may not contain a
//! separator. Edits add or remove exactly one line and leave every other
//! byte as it was:
//! - install appends `<lib>\n` (after a `\n` if the file does not end with
//!   one — uninstall then removes that `\n` too); already listed = no change;
//! - uninstall removes each line that is exactly `<lib>` (surrounding blanks
//!   allowed); a file left empty is removed (the loader treats a missing and
//!   an empty file alike); a `<lib>` inside a longer line is reported, not
//!   edited.

use crate::edit::write_atomic;
use crate::error::ConfigError;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Adds `lib` to the preload file at `preload_path` (idempotent).
pub fn preload_install(preload_path: &Path, lib: &Path) -> Result<String, ConfigError> {
    install_owned_by(preload_path, lib, 0)
}

/// Removes `lib` from the preload file at `preload_path` (idempotent).
pub fn preload_uninstall(preload_path: &Path, lib: &Path) -> Result<String, ConfigError> {
    let lib_s = lib_str(lib)?;
    let Some(text) = read(preload_path)? else {
        return Ok(format!(
            "{} does not exist; nothing to remove.\n",
            preload_path.display()
        ));
    };
    let mut out = String::with_capacity(text.len());
    let mut removed = 0usize;
    let mut embedded = false;
    for line in text.split_inclusive('\n') {
        let body = line.strip_suffix('\n').unwrap_or(line);
        if body.trim() == lib_s {
            removed += 1;
            if !line.ends_with('\n') && out.ends_with('\n') {
                // Our line was last and unterminated: we added the newline
                // before it.
                out.pop();
            }
            continue;
        }
        if body.split(is_separator).any(|w| w == lib_s) {
            embedded = true;
        }
        out.push_str(line);
    }
    let mut msg = if removed == 0 {
        format!(
            "{lib_s} is not listed in {}; nothing removed.\n",
            preload_path.display()
        )
    } else if out.is_empty() {
        fs::remove_file(preload_path).map_err(|source| ConfigError::Write {
            path: preload_path.to_owned(),
            source,
        })?;
        format!(
            "Removed {lib_s}; {} was left empty and is removed.\n",
            preload_path.display()
        )
    } else {
        write_atomic(preload_path, out.as_bytes())?;
        format!("Removed {lib_s} from {}.\n", preload_path.display())
    };
    if embedded {
        msg.push_str(&format!(
            "{lib_s} is also listed inside a longer line of {}; edit that line by hand.\n",
            preload_path.display()
        ));
    }
    Ok(msg)
}

fn is_separator(c: char) -> bool {
    c.is_ascii_whitespace() || c == ':'
}

fn lib_str(lib: &Path) -> Result<&str, ConfigError> {
    let bad = |message: &str| ConfigError::Preload {
        path: lib.to_owned(),
        message: message.to_owned(),
    };
    let s = lib
        .to_str()
        .ok_or_else(|| bad("library path is not UTF-8"))?;
    if !lib.is_absolute() {
        return Err(bad("library path must be absolute"));
    }
    if s.contains(is_separator) || s.contains('\0') {
        return Err(bad(
            "library path may not contain blanks, ':' or NUL (ld.so.preload separators)",
        ));
    }
    Ok(s)
}

fn read(path: &Path) -> Result<Option<String>, ConfigError> {
    match fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| ConfigError::Preload {
                path: path.to_owned(),
                message: "not UTF-8 text; refusing to edit".to_owned(),
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ConfigError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// [`preload_install`] with the required owner of `lib` as a parameter.
fn install_owned_by(preload_path: &Path, lib: &Path, owner: u32) -> Result<String, ConfigError> {
    let lib_s = lib_str(lib)?;
    let bad = |message: String| ConfigError::Preload {
        path: lib.to_owned(),
        message,
    };
    let m = fs::metadata(lib).map_err(|e| bad(format!("cannot use the library: {e}")))?;
    if !m.is_file() {
        return Err(bad("not a regular file".into()));
    }
    if m.uid() != owner {
        return Err(bad(format!(
            "owned by uid {}, must be owned by {owner} (root)",
            m.uid()
        )));
    }
    if m.mode() & 0o022 != 0 {
        return Err(bad(format!(
            "group- or world-writable (mode {:o})",
            m.mode() & 0o7777
        )));
    }
    let text = read(preload_path)?.unwrap_or_default();
    if text.split(is_separator).any(|w| w == lib_s) {
        return Ok(format!(
            "{lib_s} is already listed in {}.\n",
            preload_path.display()
        ));
    }
    let mut out = text;
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
        out.push_str(lib_s);
    } else {
        out.push_str(lib_s);
        out.push('\n');
    }
    write_atomic(preload_path, out.as_bytes())?;
    Ok(format!(
        "Added {lib_s} to {}: it is loaded into every new process.\n",
        preload_path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    struct T {
        dir: tempfile::TempDir,
        preload: PathBuf,
        lib: PathBuf,
        uid: u32,
    }

    fn scratch(initial: Option<&str>) -> T {
        let dir = tempfile::tempdir().unwrap();
        let preload = dir.path().join("ld.so.preload");
        if let Some(t) = initial {
            fs::write(&preload, t).unwrap();
        }
        let lib = dir.path().join("libcoroner.so");
        fs::write(&lib, b"\x7fELF").unwrap();
        fs::set_permissions(&lib, fs::Permissions::from_mode(0o644)).unwrap();
        let uid = fs::metadata(&lib).unwrap().uid();
        T {
            dir,
            preload,
            lib,
            uid,
        }
    }

    #[test]
    fn round_trips_are_byte_for_byte_and_idempotent() {
        for initial in [
            None,
            Some(""),
            Some("/lib/a.so\n"),
            Some("/lib/a.so"),
            Some("# c\n/lib/a.so /lib/b.so\n\n"),
        ] {
            let t = scratch(initial);
            let m1 = install_owned_by(&t.preload, &t.lib, t.uid).unwrap();
            let once = fs::read_to_string(&t.preload).unwrap();
            let m2 = install_owned_by(&t.preload, &t.lib, t.uid).unwrap();
            assert!(m2.contains("already listed"), "{m1} {m2}");
            assert_eq!(fs::read_to_string(&t.preload).unwrap(), once);
            assert!(once.lines().any(|l| l == t.lib.to_str().unwrap()));
            preload_uninstall(&t.preload, &t.lib).unwrap();
            match initial {
                None | Some("") => assert!(!t.preload.exists()),
                Some(text) => assert_eq!(fs::read_to_string(&t.preload).unwrap(), text),
            }
            let m3 = preload_uninstall(&t.preload, &t.lib).unwrap();
            assert!(m3.contains("nothing"), "{m3}");
        }
    }

    #[test]
    fn uninstall_keeps_other_lines_and_reports_embedded_use() {
        let t = scratch(None);
        let lib = t.lib.to_str().unwrap();
        fs::write(&t.preload, format!("/a.so\n  {lib}  \n/b.so {lib}\n")).unwrap();
        let msg = preload_uninstall(&t.preload, &t.lib).unwrap();
        assert!(msg.contains("longer line"), "{msg}");
        assert_eq!(
            fs::read_to_string(&t.preload).unwrap(),
            format!("/a.so\n/b.so {lib}\n")
        );
    }

    #[test]
    fn refuses_bad_library_paths() {
        let t = scratch(None);
        for lib in ["relative.so", "/no/such/lib.so", "/has space.so"] {
            assert!(
                matches!(
                    install_owned_by(&t.preload, Path::new(lib), t.uid),
                    Err(ConfigError::Preload { .. })
                ),
                "{lib}"
            );
        }
        assert!(
            install_owned_by(&t.preload, t.dir.path(), t.uid).is_err(),
            "a directory"
        );
        assert!(
            install_owned_by(&t.preload, &t.lib, t.uid.wrapping_add(1)).is_err(),
            "wrong owner"
        );
        fs::set_permissions(&t.lib, fs::Permissions::from_mode(0o664)).unwrap();
        assert!(
            install_owned_by(&t.preload, &t.lib, t.uid).is_err(),
            "group-writable"
        );
        assert!(!t.preload.exists(), "nothing written on refusal");
    }

    #[test]
    fn public_install_requires_root_ownership() {
        let t = scratch(None);
        let r = preload_install(&t.preload, &t.lib);
        assert_eq!(r.is_ok(), t.uid == 0, "{r:?}");
    }
}
