//! Editing a configuration file in place ([`set_key`]) and printing the
//! effective configuration ([`show`], [`show_json`]).
//!
//! Edits go through `toml_edit`, so comments, ordering and formatting of
//! everything not touched stay as they were (a replaced value keeps the
//! comment after it). The whole result is validated with the same rules as
//! loading before anything is written, and the file is replaced atomically:
//! written to a temporary file in the same directory, synced, renamed over.
//! A missing parent directory is created 0755; a new file is 0644, an
//! existing one keeps its mode.

use crate::error::ConfigError;
use crate::load::Loaded;
use crate::model::{line_col, parse_str};
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use toml_edit::{DocumentMut, Item, Key, Table, Value};

/// Sets `key` (dotted, TOML syntax: `aedebug.debugger`,
/// `localdumps.apps."my.app".type`) to `value` in the file at `path`,
/// creating file and tables as needed.
///
/// `value` is taken as a TOML value if it parses as one (`1`, `true`,
/// `["Xorg"]`, `"quoted"`), otherwise as a string (`mini`,
/// `coroner dbg -p %ld -e %ld -g`, `/var/crash`).
pub fn set_key(path: &Path, key: &str, value: &str) -> Result<(), ConfigError> {
    let text = read_optional(path)?.unwrap_or_default();
    let mut doc = parse_doc(&text, path)?;
    let keys = Key::parse(key).map_err(|e| ConfigError::BadKey {
        key: key.to_owned(),
        message: e.message().to_owned(),
    })?;
    let new_value = parse_value(value);
    set_in_doc(&mut doc, &keys, new_value).map_err(|message| ConfigError::BadKey {
        key: key.to_owned(),
        message,
    })?;
    let new_text = doc.to_string();
    parse_str(&new_text, path)?;
    write_atomic(path, new_text.as_bytes())
}

/// `value` as a TOML value, or as a string when it is not one.
pub(crate) fn parse_value(value: &str) -> Value {
    value
        .parse::<Value>()
        .map(|mut v| {
            v.decor_mut().clear();
            v
        })
        .unwrap_or_else(|_| Value::from(value))
}

/// Parses `text` for editing, with positioned errors.
pub(crate) fn parse_doc(text: &str, path: &Path) -> Result<DocumentMut, ConfigError> {
    text.parse::<DocumentMut>().map_err(|e| {
        let (line, column) = e.span().map_or((1, 1), |s| line_col(text, s.start));
        ConfigError::Syntax {
            path: path.to_owned(),
            line,
            column,
            message: e.message().trim_end().to_owned(),
        }
    })
}

/// Sets `keys` to `value` in `doc`, creating tables; an existing value keeps
/// its decoration (the comment after it). Returns the old value, if any.
pub(crate) fn set_in_doc(
    doc: &mut DocumentMut,
    keys: &[Key],
    mut value: Value,
) -> Result<Option<Value>, String> {
    let (last, parents) = keys.split_last().ok_or("empty key")?;
    let table = parent_table(doc, parents, true)?.ok_or("cannot create table")?;
    let old = match table.get_mut(last.get()) {
        Some(item) => {
            let Some(old) = item.as_value() else {
                return Err(format!("{} is a table, not a value", last.get()));
            };
            let old = old.clone();
            *value.decor_mut() = old.decor().clone();
            *item = Item::Value(value);
            Some(old)
        }
        None => {
            table.insert(last.get(), Item::Value(value));
            None
        }
    };
    Ok(old)
}

/// Removes `keys` from `doc`; returns the removed value. Tables left empty
/// are kept (callers decide).
pub(crate) fn remove_in_doc(doc: &mut DocumentMut, keys: &[Key]) -> Option<Value> {
    let (last, parents) = keys.split_last()?;
    let table = parent_table(doc, parents, false).ok()??;
    table.remove(last.get()).and_then(|i| i.into_value().ok())
}

/// The value at `keys`, if it is a value.
pub(crate) fn get_in_doc<'d>(doc: &'d DocumentMut, keys: &[Key]) -> Option<&'d Value> {
    let mut item = doc.as_item();
    for k in keys {
        item = item.get(k.get())?;
    }
    item.as_value()
}

/// The table (or inline table) at `parents`, created when `create` (new
/// intermediate tables are implicit so only the innermost gets a header).
fn parent_table<'d>(
    doc: &'d mut DocumentMut,
    parents: &[Key],
    create: bool,
) -> Result<Option<&'d mut dyn toml_edit::TableLike>, String> {
    let mut table: &mut dyn toml_edit::TableLike = doc.as_table_mut();
    for (i, k) in parents.iter().enumerate() {
        if table.get(k.get()).is_none() {
            if !create {
                return Ok(None);
            }
            let mut t = Table::new();
            t.set_implicit(i + 1 < parents.len());
            table.insert(k.get(), Item::Table(t));
        }
        let item = table
            .get_mut(k.get())
            .ok_or_else(|| format!("{} vanished", k.get()))?;
        table = item
            .as_table_like_mut()
            .ok_or_else(|| format!("{} is a value, not a table", k.get()))?;
    }
    Ok(Some(table))
}

/// The effective configuration as TOML text in the file's shape.
pub fn show(loaded: &Loaded) -> String {
    toml::to_string(&loaded.config).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
}

/// The whole [`Loaded`] (config, warnings, origins) as pretty JSON.
pub fn show_json(loaded: &Loaded) -> String {
    serde_json::to_string_pretty(loaded)
        .unwrap_or_else(|e| format!("{{\"error\": {:?}}}", e.to_string()))
}

/// The file's text, `None` if it does not exist.
pub(crate) fn read_optional(path: &Path) -> Result<Option<String>, ConfigError> {
    match fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ConfigError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Replaces `path` with `bytes` atomically (temp file + rename in the same
/// directory), creating the parent directory 0755 if missing; the file gets
/// the old file's mode or 0644.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ConfigError> {
    let werr = |p: &Path| {
        let p = p.to_owned();
        move |source| ConfigError::Write { path: p, source }
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.exists() {
        DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(werr(dir))?;
    }
    let mode = fs::metadata(path).map_or(0o644, |m| m.permissions().mode() & 0o7777);
    let name = path.file_name().ok_or_else(|| ConfigError::Write {
        path: path.to_owned(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "no file name"),
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        // The umask may have narrowed the mode; set it exactly.
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(werr(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{load, Sources};
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn set_key_keeps_comments_and_formatting() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        let before = "# top comment\n[aedebug]\n# which debugger\ndebugger = \"gdb -p %ld\"   # trailing\nauto   =   0\n";
        fs::write(&p, before).unwrap();
        set_key(&p, "aedebug.debugger", "coroner dbg -p %ld -e %ld -g").unwrap();
        let after = fs::read_to_string(&p).unwrap();
        assert_eq!(
            after,
            "# top comment\n[aedebug]\n# which debugger\ndebugger = \"coroner dbg -p %ld -e %ld -g\"   # trailing\nauto   =   0\n"
        );
        set_key(&p, "aedebug.auto", "1").unwrap();
        assert!(fs::read_to_string(&p).unwrap().contains("auto   =   1\n"));
    }

    #[test]
    fn set_key_creates_file_dirs_and_nested_tables() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/dir/c.toml");
        set_key(&p, "localdumps.apps.myserver.type", "full").unwrap();
        set_key(&p, "aedebug.exclude", "[\"Xorg\", \"gnome-*\"]").unwrap();
        let text = fs::read_to_string(&p).unwrap();
        assert!(
            text.contains("[localdumps.apps.myserver]\ntype = \"full\""),
            "{text}"
        );
        assert!(!text.contains("[localdumps]\n"), "implicit parents: {text}");
        let c = parse_str(&text, &p).unwrap();
        assert_eq!(c.aedebug.exclude, ["Xorg", "gnome-*"]);
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o644);
        assert_eq!(
            fs::metadata(p.parent().unwrap()).unwrap().mode() & 0o777,
            0o755
        );
        // Quoted key segments.
        set_key(&p, "localdumps.apps.\"my.app\".count", "4").unwrap();
        let c = parse_str(&fs::read_to_string(&p).unwrap(), &p).unwrap();
        assert_eq!(c.localdumps.unwrap().apps["my.app"].count, Some(4));
    }

    #[test]
    fn set_key_validates_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        fs::write(&p, "[aedebug]\nauto = 1\n").unwrap();
        for (k, v) in [
            ("aedebug.debugger", "gdb -p %s"),
            ("aedebug.bogus", "1"),
            ("localdumps.count", "0"),
            ("aedebug.auto.x", "1"),
            ("aedebug", "1"),
        ] {
            assert!(set_key(&p, k, v).is_err(), "{k} = {v}");
        }
        assert!(matches!(
            set_key(&p, "a..b", "1"),
            Err(ConfigError::BadKey { .. })
        ));
        assert_eq!(fs::read_to_string(&p).unwrap(), "[aedebug]\nauto = 1\n");
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp files left behind");
    }

    #[test]
    fn set_key_keeps_an_existing_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        fs::write(&p, "").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        set_key(&p, "aedebug.auto", "0").unwrap();
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
    }

    #[test]
    fn show_renders_the_effective_config_as_toml_and_json() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        fs::write(
            &p,
            "[aedebug]\ndebugger = \"gdb -p %ld\"\n[localdumps.apps.x]\ntype = \"-ma\"\n",
        )
        .unwrap();
        let loaded = load(&Sources {
            system: dir.path().join("none"),
            user: None,
            env_override: Some(p.clone()),
            search_path: None,
            trusted_owner: 0,
            notes: vec![],
        })
        .unwrap();
        let text = show(&loaded);
        assert_eq!(parse_str(&text, Path::new("shown")).unwrap(), loaded.config);
        assert!(text.contains("debugger = \"gdb -p %ld\""), "{text}");
        assert!(text.contains("type = \"full\""), "{text}");
        let json: serde_json::Value = serde_json::from_str(&show_json(&loaded)).unwrap();
        assert_eq!(json["config"]["aedebug"]["debugger"], "gdb -p %ld");
        assert_eq!(json["origin"][0][0], "aedebug.debugger");
    }
}
