//! The AeDebug installers (`coroner dbg -iae | -iaec KEYSTRING | -I`,
//! `coroner dump -i [FOLDER] [-ma|-mp]`) and their uninstaller
//! (`coroner dump -u`, also for the debugger installs), spec §11.2–11.3 and
//! §13.4.
//!
//! An install sets `[aedebug] debugger` and `auto = 1` (and the same in
//! `[aedebug.i386]` if that table exists, as ProcDump writes both keys) and
//! keeps what it replaced in a sidecar file `<config>.coroner-backup`
//! (JSON; a sidecar rather than a table inside the config so the config
//! file after uninstall is byte-for-byte what it was). The sidecar holds:
//! the whole file as it was before the first install (or "did not exist"),
//! the whole file as our last install wrote it, and for each key we set its
//! previous value (or "absent") and the value we set.
//!
//! Rules:
//! - Installing again while our debugger is still configured keeps the
//!   original backup and says "already installed; updated". If the backup
//!   exists but someone else has changed `debugger` since, the stale backup
//!   is replaced by a fresh one (what we now replace is their value).
//! - Uninstall when the file is exactly as we wrote it: the original bytes
//!   are put back, or the file is removed if it did not exist.
//! - Uninstall when the file was edited since but `debugger` is still ours:
//!   each key we set and that still holds our value gets its previous value
//!   back (or is removed); tables we created and left empty are removed;
//!   other edits stay.
//! - Uninstall when `debugger` is no longer ours: nothing in the config is
//!   touched, the message says so, and the backup is dropped (it describes a
//!   state that no longer exists; the current value is the owner's choice).
//! - Uninstall without a backup: "nothing to uninstall".

use crate::edit::{get_in_doc, parse_doc, read_optional, remove_in_doc, set_in_doc, write_atomic};
use crate::error::ConfigError;
use crate::model::parse_str;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use toml_edit::{DocumentMut, Key, Value};

const BACKUP_FORMAT: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Backup {
    format: u32,
    /// The file before the first install; `None` = it did not exist.
    original: Option<String>,
    /// The file as our last install wrote it.
    installed: String,
    keys: Vec<KeyBackup>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyBackup {
    /// Dotted key, e.g. `aedebug.i386.auto`.
    key: String,
    /// The value's TOML text before the first install; `None` = absent.
    previous: Option<String>,
    /// The value's TOML text as we set it.
    installed: String,
}

/// The sidecar backup file for the config at `config`:
/// `<config>.coroner-backup`.
pub fn backup_path(config: &Path) -> PathBuf {
    let mut name = config
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".coroner-backup");
    config.with_file_name(name)
}

/// Installs coroner's debugger (`coroner dbg -iae`, `-iaec KEYSTRING`,
/// `-I`): `debugger = "<coroner_exe> dbg -p %ld -e %ld -g[ KEYSTRING]"`,
/// `auto = 1`. Returns what was done, for the user.
pub fn install_debugger(
    path: &Path,
    coroner_exe: &Path,
    keystring: Option<&str>,
) -> Result<String, ConfigError> {
    let mut debugger = format!(
        "{} dbg -p %ld -e %ld -g",
        quote_path("coroner", coroner_exe)?
    );
    if let Some(k) = keystring.filter(|k| !k.trim().is_empty()) {
        debugger.push(' ');
        debugger.push_str(k);
    }
    install(path, &debugger)
}

/// Installs coroner as the postmortem dumper (`coroner dump -i [FOLDER]
/// [-ma|-mp]`): `debugger = "<coroner_exe> dump -accepteula [-ma|-mp] -j
/// <FOLDER> %ld %ld %p"`, `auto = 1`. `folder` must be absolute (the
/// crashing process's working directory is unknown); `level` is `None`,
/// `"-ma"` or `"-mp"`.
pub fn install_dumper(
    path: &Path,
    coroner_exe: &Path,
    folder: &Path,
    level: Option<&str>,
) -> Result<String, ConfigError> {
    if !folder.is_absolute() {
        return Err(ConfigError::BadArgument {
            what: "dump folder",
            message: format!("{} is not an absolute path", folder.display()),
        });
    }
    let level = match level {
        None => String::new(),
        Some(l @ ("-ma" | "-mp")) => format!(" {l}"),
        Some(other) => {
            return Err(ConfigError::BadArgument {
                what: "dump level",
                message: format!("{other:?} is not -ma or -mp"),
            })
        }
    };
    let debugger = format!(
        "{} dump -accepteula{level} -j {} %ld %ld %p",
        quote_path("coroner", coroner_exe)?,
        quote_path("dump folder", folder)?
    );
    install(path, &debugger)
}

/// Shell-style quoting of a path for a template (quotes only when needed).
fn quote_path(what: &'static str, p: &Path) -> Result<String, ConfigError> {
    let bad = |message: &str| ConfigError::BadPath {
        what,
        path: p.to_owned(),
        message: message.to_owned(),
    };
    let s = p.to_str().ok_or_else(|| bad("not UTF-8"))?;
    let quoted = shlex::try_quote(s).map_err(|_| bad("contains a NUL byte"))?;
    // `%` is special to the template: double it.
    Ok(quoted.replace('%', "%%"))
}

fn norm(v: &Value) -> String {
    let mut v = v.clone();
    v.decor_mut().clear();
    v.to_string()
}

fn dotted(key: &str) -> Vec<Key> {
    // Only called with our own constant keys, which always parse.
    Key::parse(key).unwrap_or_default()
}

/// True if the `aedebug.debugger` in `doc` is the one `b` installed.
fn is_ours(doc: &DocumentMut, b: &Backup) -> bool {
    let current = get_in_doc(doc, &dotted("aedebug.debugger")).map(norm);
    b.keys
        .iter()
        .any(|k| k.key == "aedebug.debugger" && Some(&k.installed) == current.as_ref())
}

fn read_backup(path: &Path) -> Result<Option<Backup>, ConfigError> {
    let Some(text) = read_optional(path)? else {
        return Ok(None);
    };
    let b: Backup = serde_json::from_str(&text).map_err(|e| ConfigError::Backup {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    if b.format != BACKUP_FORMAT {
        return Err(ConfigError::Backup {
            path: path.to_owned(),
            message: format!("unknown format {}", b.format),
        });
    }
    Ok(Some(b))
}

fn remove(path: &Path) -> Result<(), ConfigError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(ConfigError::Write {
            path: path.to_owned(),
            source,
        }),
    }
}

fn install(path: &Path, debugger: &str) -> Result<String, ConfigError> {
    let current = read_optional(path)?;
    let bpath = backup_path(path);
    let existing = read_backup(&bpath)?;
    let mut doc = parse_doc(current.as_deref().unwrap_or(""), path)?;
    let mut notes = Vec::new();
    let keep = match existing {
        Some(b) if is_ours(&doc, &b) => {
            notes.push("already installed; updated".to_owned());
            Some(b)
        }
        Some(_) => {
            notes.push(format!(
                "the debugger was changed since the last install; the old backup in {} is replaced",
                bpath.display()
            ));
            None
        }
        None => None,
    };
    let mut tables = vec!["aedebug"];
    if get_table(&doc, "aedebug", "i386") {
        tables.push("aedebug.i386");
    }
    let mut keys = Vec::new();
    let mut shown = Vec::new();
    for table in &tables {
        for (name, value) in [
            ("debugger", Value::from(debugger)),
            ("auto", Value::from(1i64)),
        ] {
            let key = format!("{table}.{name}");
            let old = set_in_doc(&mut doc, &dotted(&key), value.clone()).map_err(|message| {
                ConfigError::BadKey {
                    key: key.clone(),
                    message,
                }
            })?;
            let previous = match keep
                .as_ref()
                .and_then(|b| b.keys.iter().find(|k| k.key == key))
            {
                Some(k) => k.previous.clone(),
                None => old.as_ref().map(norm),
            };
            shown.push(format!("    {name:<8} = {}", norm(&value)));
            keys.push(KeyBackup {
                key,
                previous,
                installed: norm(&value),
            });
        }
    }
    let new_text = doc.to_string();
    parse_str(&new_text, path)?;
    let backup = Backup {
        format: BACKUP_FORMAT,
        original: match keep {
            Some(b) => b.original,
            None => current,
        },
        installed: new_text.clone(),
        keys,
    };
    let json = serde_json::to_string_pretty(&backup).map_err(|e| ConfigError::Backup {
        path: bpath.clone(),
        message: e.to_string(),
    })?;
    // Backup first: there is never an installed config without its backup.
    write_atomic(&bpath, json.as_bytes())?;
    write_atomic(path, new_text.as_bytes())?;
    let mut msg = String::new();
    for n in &notes {
        msg.push_str(n);
        msg.push('\n');
    }
    msg.push_str("Set to:\n");
    for (i, table) in tables.iter().enumerate() {
        msg.push_str(&format!("  {} [{table}]\n", path.display()));
        msg.push_str(&shown[2 * i..2 * i + 2].join("\n"));
        msg.push('\n');
    }
    msg.push_str(&format!(
        "coroner is now set as the Just-in-time (AeDebug) debugger (previous values saved in {}).\n",
        bpath.display()
    ));
    Ok(msg)
}

/// True if `doc[outer][inner]` is a table.
fn get_table(doc: &DocumentMut, outer: &str, inner: &str) -> bool {
    doc.get(outer)
        .and_then(|o| o.get(inner))
        .is_some_and(|t| t.is_table_like())
}

/// Undoes [`install_debugger`] / [`install_dumper`] (see the module docs for
/// the rules). Returns what was done.
pub fn uninstall(path: &Path) -> Result<String, ConfigError> {
    let bpath = backup_path(path);
    let Some(b) = read_backup(&bpath)? else {
        return Ok(format!(
            "nothing to uninstall: no backup ({}) from an earlier install.\n",
            bpath.display()
        ));
    };
    let current = read_optional(path)?;
    let Some(current) = current else {
        remove(&bpath)?;
        return Ok(format!(
            "{} no longer exists; nothing restored (backup dropped).\n",
            path.display()
        ));
    };
    if current == b.installed {
        let msg = match &b.original {
            Some(original) => {
                write_atomic(path, original.as_bytes())?;
                format!(
                    "Restored {} as it was before the install.\n",
                    path.display()
                )
            }
            None => {
                remove(path)?;
                format!(
                    "Removed {} (it did not exist before the install).\n",
                    path.display()
                )
            }
        };
        remove(&bpath)?;
        return Ok(msg);
    }
    let mut doc = parse_doc(&current, path)?;
    if !is_ours(&doc, &b) {
        remove(&bpath)?;
        let now =
            get_in_doc(&doc, &dotted("aedebug.debugger")).map_or_else(|| "absent".to_owned(), norm);
        return Ok(format!(
            "The debugger in {} was changed since the install (now {now}); left as is. Backup dropped.\n",
            path.display()
        ));
    }
    let mut msg = format!("Restored in {}:\n", path.display());
    for k in &b.keys {
        let keys = dotted(&k.key);
        let now = get_in_doc(&doc, &keys).map(norm);
        if now.as_deref() != Some(k.installed.as_str()) {
            msg.push_str(&format!(
                "  {} changed since the install; left as is\n",
                k.key
            ));
            continue;
        }
        match &k.previous {
            Some(prev) => {
                let v = prev.parse::<Value>().map_err(|e| ConfigError::Backup {
                    path: bpath.clone(),
                    message: format!("{}: {e}", k.key),
                })?;
                set_in_doc(&mut doc, &keys, v).map_err(|message| ConfigError::BadKey {
                    key: k.key.clone(),
                    message,
                })?;
                msg.push_str(&format!("  {} = {prev}\n", k.key));
            }
            None => {
                remove_in_doc(&mut doc, &keys);
                msg.push_str(&format!("  {} removed (it was not set)\n", k.key));
            }
        }
    }
    // Drop tables we created and left empty.
    let original = b
        .original
        .as_deref()
        .and_then(|o| o.parse::<DocumentMut>().ok())
        .unwrap_or_default();
    if let Some(ae) = doc.get_mut("aedebug").and_then(|a| a.as_table_like_mut()) {
        let i386_empty = ae
            .get("i386")
            .and_then(|t| t.as_table_like())
            .is_some_and(|t| t.is_empty());
        if i386_empty && !get_table(&original, "aedebug", "i386") {
            ae.remove("i386");
        }
    }
    let ae_empty = doc
        .get("aedebug")
        .and_then(|a| a.as_table_like())
        .is_some_and(|t| t.is_empty());
    if ae_empty && original.get("aedebug").is_none() {
        doc.remove("aedebug");
    }
    let new_text = doc.to_string();
    parse_str(&new_text, path)?;
    write_atomic(path, new_text.as_bytes())?;
    remove(&bpath)?;
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct T {
        _dir: tempfile::TempDir,
        cfg: PathBuf,
    }

    fn scratch(initial: Option<&str>) -> T {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("etc/coroner/coroner.toml");
        if let Some(text) = initial {
            fs::create_dir_all(cfg.parent().unwrap()).unwrap();
            fs::write(&cfg, text).unwrap();
        }
        T { _dir: dir, cfg }
    }

    const EXE: &str = "/usr/bin/coroner";
    const WITH_COMMENTS: &str = "# site config\n[aedebug]\ndebugger = \"gdb -p %ld\"  # old one\nauto = 0\nexclude = [\"Xorg\"]\n\n[localdumps]\ncount = 4\n";

    fn config(t: &T) -> crate::Config {
        parse_str(&fs::read_to_string(&t.cfg).unwrap(), &t.cfg).unwrap()
    }

    #[test]
    fn install_debugger_writes_the_canonical_line() {
        let t = scratch(None);
        let msg = install_debugger(&t.cfg, Path::new(EXE), None).unwrap();
        assert!(msg.contains("Just-in-time"), "{msg}");
        let c = config(&t);
        assert_eq!(
            c.aedebug.debugger.unwrap().as_str(),
            "/usr/bin/coroner dbg -p %ld -e %ld -g"
        );
        assert!(c.aedebug.auto);
        install_debugger(&t.cfg, Path::new(EXE), Some("-c \".jdinfo 0x%p\"")).unwrap();
        assert_eq!(
            config(&t).aedebug.debugger.unwrap().as_str(),
            "/usr/bin/coroner dbg -p %ld -e %ld -g -c \".jdinfo 0x%p\""
        );
    }

    #[test]
    fn install_dumper_quotes_paths_and_takes_the_level() {
        let t = scratch(None);
        install_dumper(
            &t.cfg,
            Path::new("/opt/my tools/coroner"),
            Path::new("/var/crash/my dumps"),
            Some("-ma"),
        )
        .unwrap();
        let d = config(&t).aedebug.debugger.unwrap();
        assert_eq!(
            d.as_str(),
            "'/opt/my tools/coroner' dump -accepteula -ma -j '/var/crash/my dumps' %ld %ld %p"
        );
        assert_eq!(d.expand(1, 2, 3)[5], "/var/crash/my dumps");
        install_dumper(&t.cfg, Path::new(EXE), Path::new("/d/100%"), None).unwrap();
        let d = config(&t).aedebug.debugger.unwrap();
        assert_eq!(
            d.as_str(),
            "/usr/bin/coroner dump -accepteula -j '/d/100%%' %ld %ld %p"
        );
        assert_eq!(d.expand(1, 2, 3)[4], "/d/100%");
        assert!(matches!(
            install_dumper(&t.cfg, Path::new(EXE), Path::new("rel"), None),
            Err(ConfigError::BadArgument { .. })
        ));
        assert!(matches!(
            install_dumper(&t.cfg, Path::new(EXE), Path::new("/d"), Some("-mm")),
            Err(ConfigError::BadArgument { .. })
        ));
    }

    #[test]
    fn install_then_uninstall_is_byte_for_byte() {
        for initial in [
            Some(WITH_COMMENTS),
            Some(""),
            Some("[localdumps]\n"),
            Some("[aedebug]\nauto=0\n[aedebug.i386]\ndebugger = 'x32 %ld'\n"),
            None,
        ] {
            let t = scratch(initial);
            install_dumper(&t.cfg, Path::new(EXE), Path::new("/dumps"), Some("-mp")).unwrap();
            assert!(backup_path(&t.cfg).exists());
            let msg = uninstall(&t.cfg).unwrap();
            match initial {
                Some(text) => assert_eq!(fs::read_to_string(&t.cfg).unwrap(), text, "{msg}"),
                None => assert!(!t.cfg.exists(), "{msg}"),
            }
            assert!(!backup_path(&t.cfg).exists());
        }
    }

    #[test]
    fn install_sets_the_i386_key_when_it_exists() {
        let t = scratch(Some(
            "[aedebug]\n[aedebug.i386]\ndebugger = 'x32 %ld'\nauto = 0\n",
        ));
        let msg = install_debugger(&t.cfg, Path::new(EXE), None).unwrap();
        assert!(msg.contains("[aedebug.i386]"), "{msg}");
        let c = config(&t);
        let i = c.aedebug_i386.unwrap();
        assert!(i.auto);
        assert_eq!(i.debugger, c.aedebug.debugger);
    }

    #[test]
    fn second_install_keeps_the_original_backup() {
        let t = scratch(Some(WITH_COMMENTS));
        install_debugger(&t.cfg, Path::new(EXE), None).unwrap();
        let msg = install_dumper(&t.cfg, Path::new(EXE), Path::new("/dumps"), None).unwrap();
        assert!(msg.starts_with("already installed; updated"), "{msg}");
        assert!(config(&t)
            .aedebug
            .debugger
            .unwrap()
            .as_str()
            .contains(" dump "));
        uninstall(&t.cfg).unwrap();
        assert_eq!(fs::read_to_string(&t.cfg).unwrap(), WITH_COMMENTS);
        let msg = uninstall(&t.cfg).unwrap();
        assert!(msg.starts_with("nothing to uninstall"), "{msg}");
        assert_eq!(fs::read_to_string(&t.cfg).unwrap(), WITH_COMMENTS);
    }

    #[test]
    fn uninstall_after_unrelated_edits_restores_only_our_keys() {
        let t = scratch(Some(WITH_COMMENTS));
        install_debugger(&t.cfg, Path::new(EXE), None).unwrap();
        crate::set_key(&t.cfg, "localdumps.count", "9").unwrap();
        let msg = uninstall(&t.cfg).unwrap();
        let text = fs::read_to_string(&t.cfg).unwrap();
        assert_eq!(
            text,
            WITH_COMMENTS.replace("count = 4", "count = 9"),
            "{msg}"
        );
    }

    #[test]
    fn uninstall_after_edits_removes_keys_and_tables_it_added() {
        let t = scratch(Some("[localdumps]\ncount = 4\n"));
        install_debugger(&t.cfg, Path::new(EXE), None).unwrap();
        crate::set_key(&t.cfg, "localdumps.count", "9").unwrap();
        let msg = uninstall(&t.cfg).unwrap();
        assert!(msg.contains("aedebug.debugger removed"), "{msg}");
        assert_eq!(
            fs::read_to_string(&t.cfg).unwrap(),
            "[localdumps]\ncount = 9\n"
        );
    }

    #[test]
    fn uninstall_does_not_clobber_someone_elses_debugger() {
        let t = scratch(Some(WITH_COMMENTS));
        install_debugger(&t.cfg, Path::new(EXE), None).unwrap();
        crate::set_key(&t.cfg, "aedebug.debugger", "/opt/other -p %ld").unwrap();
        let before = fs::read_to_string(&t.cfg).unwrap();
        let msg = uninstall(&t.cfg).unwrap();
        assert!(msg.contains("changed since the install"), "{msg}");
        assert_eq!(fs::read_to_string(&t.cfg).unwrap(), before);
        assert!(!backup_path(&t.cfg).exists());
        assert!(uninstall(&t.cfg)
            .unwrap()
            .starts_with("nothing to uninstall"));
    }

    #[test]
    fn install_over_a_foreign_change_takes_a_fresh_backup() {
        let t = scratch(Some(WITH_COMMENTS));
        install_debugger(&t.cfg, Path::new(EXE), None).unwrap();
        crate::set_key(&t.cfg, "aedebug.debugger", "/opt/other -p %ld").unwrap();
        let theirs = fs::read_to_string(&t.cfg).unwrap();
        let msg = install_debugger(&t.cfg, Path::new(EXE), None).unwrap();
        assert!(msg.contains("old backup"), "{msg}");
        uninstall(&t.cfg).unwrap();
        assert_eq!(fs::read_to_string(&t.cfg).unwrap(), theirs);
    }

    #[test]
    fn corrupt_backup_is_an_error_not_a_guess() {
        let t = scratch(Some(WITH_COMMENTS));
        fs::write(backup_path(&t.cfg), "{not json").unwrap();
        assert!(matches!(uninstall(&t.cfg), Err(ConfigError::Backup { .. })));
        assert!(matches!(
            install_debugger(&t.cfg, Path::new(EXE), None),
            Err(ConfigError::Backup { .. })
        ));
        assert_eq!(fs::read_to_string(&t.cfg).unwrap(), WITH_COMMENTS);
    }

    #[test]
    fn install_refuses_an_invalid_keystring_without_writing() {
        let t = scratch(Some(WITH_COMMENTS));
        let e = install_debugger(&t.cfg, Path::new(EXE), Some("-c %s")).unwrap_err();
        assert!(matches!(e, ConfigError::Template { .. }), "{e}");
        assert_eq!(fs::read_to_string(&t.cfg).unwrap(), WITH_COMMENTS);
        assert!(!backup_path(&t.cfg).exists());
    }

    #[test]
    fn backup_path_is_a_sidecar() {
        assert_eq!(
            backup_path(Path::new("/etc/coroner/coroner.toml")),
            Path::new("/etc/coroner/coroner.toml.coroner-backup")
        );
    }
}
