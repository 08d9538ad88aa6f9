//! Finding and loading the configuration files with the precedence and
//! trust rules described in the crate docs.
//!
//! Everything that reads the process environment is in
//! [`Sources::from_environment`]; [`Sources::from_vars`] takes the variables
//! and the `AT_SECURE` flag as arguments so the rules are testable. [`load`]
//! then touches only the paths in [`Sources`]: one `lstat` per missing file.

use crate::error::ConfigError;
use crate::model::{parse_layer, resolve, Config, Origins};
use crate::plan::{Role, Stamp};
use serde::Serialize;
use std::ffi::OsString;
use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The system-wide configuration file.
pub const SYSTEM_CONFIG: &str = "/etc/coroner/coroner.toml";

/// Files larger than this are refused (a config is a few hundred bytes).
const MAX_FILE: u64 = 1 << 20;

/// Where to look, decided from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources {
    /// The system file ([`SYSTEM_CONFIG`] unless a test overrides it).
    pub system: PathBuf,
    /// The per-user file; `None` when `AT_SECURE` or no `$HOME`.
    pub user: Option<PathBuf>,
    /// `CORONER_CONFIG`: replaces both files; `None` when `AT_SECURE`.
    pub env_override: Option<PathBuf>,
    /// `$PATH`, used to find `coroner` as the default LocalDumps dumper;
    /// `None` when `AT_SECURE`.
    pub search_path: Option<OsString>,
    /// The uid that must own the system file: 0 (root). Tests running
    /// unprivileged set their own uid here.
    pub trusted_owner: u32,
    /// Warnings found while reading the environment (copied into
    /// [`Loaded::warnings`]).
    pub notes: Vec<String>,
}

impl Sources {
    /// Reads `CORONER_CONFIG`, `XDG_CONFIG_HOME`, `HOME` and `PATH` from the
    /// process environment, honouring `AT_SECURE`.
    pub fn from_environment() -> Sources {
        Sources::from_vars(|k| std::env::var_os(k), coroner_sys::at_secure())
    }

    /// Only the system-wide file `system` (or [`SYSTEM_CONFIG`]), trusted
    /// when owned by `owner` and not writable by others: what root's
    /// system-wide pieces (the kernel-tier handler, `install --system`) read.
    /// No per-user file, no environment override, no `PATH`.
    pub fn system_only(system: Option<&Path>, owner: u32) -> Sources {
        Sources {
            system: system.map_or_else(|| PathBuf::from(SYSTEM_CONFIG), Path::to_path_buf),
            user: None,
            env_override: None,
            search_path: None,
            trusted_owner: owner,
            notes: Vec::new(),
        }
    }

    /// [`Sources::from_environment`] with the variables and the `AT_SECURE`
    /// flag given. In a secure process only the system file is used.
    pub fn from_vars(var: impl Fn(&str) -> Option<OsString>, at_secure: bool) -> Sources {
        let set = |k: &str| var(k).filter(|v| !v.is_empty());
        let mut notes = Vec::new();
        let mut sources = Sources {
            system: PathBuf::from(SYSTEM_CONFIG),
            user: None,
            env_override: None,
            search_path: None,
            trusted_owner: 0,
            notes: Vec::new(),
        };
        if at_secure {
            if set("CORONER_CONFIG").is_some() {
                notes.push("CORONER_CONFIG ignored in a setuid/AT_SECURE process".to_owned());
            }
            sources.notes = notes;
            return sources;
        }
        sources.env_override = set("CORONER_CONFIG").map(PathBuf::from);
        // XDG: a relative $XDG_CONFIG_HOME is invalid and ignored.
        let config_home = set("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| set("HOME").map(|h| PathBuf::from(h).join(".config")));
        sources.user = config_home.map(|c| c.join("coroner").join("coroner.toml"));
        sources.search_path = set("PATH");
        sources.notes = notes;
        sources
    }
}

/// The loaded configuration with what happened on the way.
#[derive(Debug, Clone, Serialize)]
pub struct Loaded {
    pub config: Config,
    /// Files ignored and why (untrusted system file, ignored override, ...).
    pub warnings: Vec<String>,
    /// For each key set by a file, `("aedebug.debugger", file)`, sorted by
    /// key. Keys at their defaults are absent.
    pub origin: Vec<(String, PathBuf)>,
}

/// Loads the configuration from `sources` (see the crate docs for the
/// rules). Missing files are not errors, except a missing `env_override`;
/// a file that is present but malformed is an error.
pub fn load(sources: &Sources) -> Result<Loaded, ConfigError> {
    load_stamped(sources).map(|(loaded, _)| loaded)
}

/// [`load`], also saying which files the configuration came from (one
/// [`Stamp`] per file read and used, in precedence order: the override, or
/// the system file then the user file), for a compiled plan
/// ([`crate::plan`]).
pub fn load_stamped(sources: &Sources) -> Result<(Loaded, Vec<Stamp>), ConfigError> {
    let mut warnings = sources.notes.clone();
    let mut origin = Origins::new();
    let mut texts: Vec<(String, &Path, Role)> = Vec::new();
    if let Some(path) = &sources.env_override {
        let text = read_capped(File::open(path), path)?;
        texts.push((text, path, Role::Override));
    } else {
        match read_trusted(&sources.system, sources.trusted_owner) {
            Ok(Some(text)) => texts.push((text, &sources.system, Role::System)),
            Ok(None) => {}
            Err(Untrusted::Io(e)) => return Err(e),
            Err(Untrusted::Why(why)) => {
                warnings.push(format!("ignoring {}: {why}", sources.system.display()))
            }
        }
        if let Some(user) = &sources.user {
            match read_user(user) {
                Ok(Some(text)) => texts.push((text, user, Role::User)),
                Ok(None) => {}
                Err(Untrusted::Io(e)) => return Err(e),
                Err(Untrusted::Why(why)) => {
                    warnings.push(format!("ignoring {}: {why}", user.display()))
                }
            }
        }
    }
    let mut layers = Vec::with_capacity(texts.len());
    for (text, path, _) in &texts {
        layers.push((parse_layer(text, path)?, *path));
    }
    let mut config = resolve(layers, &mut origin);
    if let (Some(ld), Some(search)) = (config.localdumps.as_mut(), &sources.search_path) {
        if ld.dumper.is_none() {
            ld.dumper = find_in_path("coroner", search);
        }
    }
    let stamps = texts
        .iter()
        .map(|(text, _, role)| Stamp::of(*role, text.as_bytes()))
        .collect();
    Ok((
        Loaded {
            config,
            warnings,
            origin: origin.into_iter().collect(),
        },
        stamps,
    ))
}

/// The first `dir/name` on a `PATH`-style list that is a regular file with an
/// execute bit; relative entries are skipped.
pub fn find_in_path(name: &str, search_path: &std::ffi::OsStr) -> Option<PathBuf> {
    std::env::split_paths(search_path)
        .filter(|d| d.is_absolute())
        .map(|d| d.join(name))
        .find(|p| fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

enum Untrusted {
    /// Present but not to be used; the reason.
    Why(String),
    /// Present and trusted, but unreadable.
    Io(ConfigError),
}

fn read_capped(file: io::Result<File>, path: &Path) -> Result<String, ConfigError> {
    let read_err = |source| ConfigError::Read {
        path: path.to_owned(),
        source,
    };
    let mut text = String::new();
    let n = file
        .map_err(read_err)?
        .take(MAX_FILE + 1)
        .read_to_string(&mut text)
        .map_err(read_err)?;
    if n as u64 > MAX_FILE {
        return Err(read_err(io::Error::new(
            io::ErrorKind::InvalidData,
            "larger than 1 MiB",
        )));
    }
    Ok(text)
}

/// Checks a file's mode and type: a regular file, not group/world-writable.
fn check_mode(m: &Metadata) -> Result<(), Untrusted> {
    if !m.is_file() {
        return Err(Untrusted::Why("not a regular file".into()));
    }
    if m.mode() & 0o022 != 0 {
        return Err(Untrusted::Why(format!(
            "group- or world-writable (mode {:o})",
            m.mode() & 0o7777
        )));
    }
    Ok(())
}

/// Reads the system file if it is trustworthy: owned by `owner`, a regular
/// file, not group/world-writable; a symlink only if the link is owned by
/// `owner` and its target passes. `Ok(None)` if it does not exist.
fn read_trusted(path: &Path, owner: u32) -> Result<Option<String>, Untrusted> {
    let link = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(Untrusted::Io(ConfigError::Read {
                path: path.to_owned(),
                source,
            }))
        }
    };
    if link.file_type().is_symlink() {
        if link.uid() != owner {
            return Err(Untrusted::Why(format!(
                "symlink owned by uid {}, not {owner}",
                link.uid()
            )));
        }
        // Check the target's type before opening (a FIFO would block).
        match fs::metadata(path) {
            Ok(m) => check_mode(&m)?,
            Err(e) => return Err(Untrusted::Why(format!("symlink target: {e}"))),
        }
    } else {
        check_mode(&link)?;
    }
    let file = File::open(path).map_err(|source| {
        Untrusted::Io(ConfigError::Read {
            path: path.to_owned(),
            source,
        })
    })?;
    // Re-check on the open file: what we read is what we checked.
    let m = file.metadata().map_err(|source| {
        Untrusted::Io(ConfigError::Read {
            path: path.to_owned(),
            source,
        })
    })?;
    check_mode(&m)?;
    if m.uid() != owner {
        return Err(Untrusted::Why(format!(
            "owned by uid {}, not {owner}",
            m.uid()
        )));
    }
    read_capped(Ok(file), path).map(Some).map_err(Untrusted::Io)
}

/// Reads the per-user file: a regular file, not group/world-writable (so
/// no other user can choose the debugger for this user's processes).
fn read_user(path: &Path) -> Result<Option<String>, Untrusted> {
    let m = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(Untrusted::Io(ConfigError::Read {
                path: path.to_owned(),
                source,
            }))
        }
    };
    check_mode(&m)?;
    read_capped(File::open(path), path)
        .map(Some)
        .map_err(Untrusted::Io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::fs::Permissions;
    use std::time::{Duration, Instant};

    struct Scratch {
        dir: tempfile::TempDir,
        uid: u32,
    }

    impl Scratch {
        fn new() -> Scratch {
            let dir = tempfile::tempdir().unwrap();
            let uid = fs::metadata(dir.path()).unwrap().uid();
            Scratch { dir, uid }
        }
        fn file(&self, name: &str, text: &str, mode: u32) -> PathBuf {
            let p = self.dir.path().join(name);
            fs::write(&p, text).unwrap();
            fs::set_permissions(&p, Permissions::from_mode(mode)).unwrap();
            p
        }
        fn sources(&self, system: &Path, user: Option<&Path>, env: Option<&Path>) -> Sources {
            Sources {
                system: system.to_owned(),
                user: user.map(Path::to_owned),
                env_override: env.map(Path::to_owned),
                search_path: None,
                trusted_owner: self.uid,
                notes: Vec::new(),
            }
        }
    }

    const SYSTEM: &str = "[aedebug]\ndebugger = \"sysdbg -p %ld\"\nauto = 0\nexclude = [\"Xorg\"]\n[localdumps]\ncount = 3\n";
    const USER: &str = "[aedebug]\nauto = 1\n[localdumps]\ntype = \"full\"\n";

    #[test]
    fn user_file_merges_over_system_key_by_key() {
        let s = Scratch::new();
        let sys = s.file("sys.toml", SYSTEM, 0o644);
        let user = s.file("user.toml", USER, 0o600);
        let l = load(&s.sources(&sys, Some(&user), None)).unwrap();
        let c = &l.config;
        assert_eq!(
            c.aedebug.debugger.as_ref().unwrap().as_str(),
            "sysdbg -p %ld"
        );
        assert!(c.aedebug.auto, "user's auto wins");
        assert_eq!(c.aedebug.exclude, ["Xorg"]);
        let ld = c.localdumps.as_ref().unwrap();
        assert_eq!((ld.count, ld.level), (3, crate::DumpLevel::Full));
        let origin: HashMap<_, _> = l.origin.iter().cloned().collect();
        assert_eq!(origin["aedebug.debugger"], sys);
        assert_eq!(origin["aedebug.auto"], user);
        assert_eq!(origin["localdumps.type"], user);
        assert!(!origin.contains_key("aedebug.timeout"));
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    }

    #[test]
    fn env_override_replaces_both_files() {
        let s = Scratch::new();
        let sys = s.file("sys.toml", SYSTEM, 0o644);
        let user = s.file("user.toml", USER, 0o600);
        let env = s.file("env.toml", "[aedebug]\ntimeout = 5\n", 0o644);
        let l = load(&s.sources(&sys, Some(&user), Some(&env))).unwrap();
        assert!(l.config.aedebug.debugger.is_none());
        assert!(l.config.localdumps.is_none());
        assert_eq!(l.config.aedebug.timeout, Duration::from_secs(5));
        assert_eq!(l.origin, [("aedebug.timeout".to_owned(), env)]);
    }

    #[test]
    fn missing_env_override_is_an_error_missing_files_are_not() {
        let s = Scratch::new();
        let none = s.dir.path().join("absent.toml");
        let l = load(&s.sources(&none, Some(&none), None)).unwrap();
        assert_eq!(l.config, Config::default());
        let e = load(&s.sources(&none, None, Some(&none))).unwrap_err();
        assert!(matches!(e, ConfigError::Read { .. }), "{e}");
    }

    #[test]
    fn group_writable_system_file_is_ignored_with_a_warning() {
        let s = Scratch::new();
        let sys = s.file("sys.toml", SYSTEM, 0o664);
        let l = load(&s.sources(&sys, None, None)).unwrap();
        assert!(l.config.aedebug.debugger.is_none());
        assert_eq!(l.warnings.len(), 1);
        assert!(
            l.warnings[0].contains("group- or world-writable"),
            "{:?}",
            l.warnings
        );
        let world = s.file("w.toml", SYSTEM, 0o646);
        assert_eq!(
            load(&s.sources(&world, None, None)).unwrap().warnings.len(),
            1
        );
    }

    #[test]
    fn system_file_owned_by_someone_else_is_ignored() {
        let s = Scratch::new();
        let sys = s.file("sys.toml", SYSTEM, 0o644);
        let mut src = s.sources(&sys, None, None);
        src.trusted_owner = s.uid.wrapping_add(1);
        let l = load(&src).unwrap();
        assert!(l.config.aedebug.debugger.is_none());
        assert!(l.warnings[0].contains("owned by uid"), "{:?}", l.warnings);
    }

    #[test]
    fn symlinked_system_file_is_followed_only_to_a_trusted_target() {
        let s = Scratch::new();
        let good = s.file("good.toml", SYSTEM, 0o644);
        let bad = s.file("bad.toml", SYSTEM, 0o666);
        let link_good = s.dir.path().join("lg.toml");
        let link_bad = s.dir.path().join("lb.toml");
        std::os::unix::fs::symlink(&good, &link_good).unwrap();
        std::os::unix::fs::symlink(&bad, &link_bad).unwrap();
        let l = load(&s.sources(&link_good, None, None)).unwrap();
        assert!(l.config.aedebug.debugger.is_some() && l.warnings.is_empty());
        let l = load(&s.sources(&link_bad, None, None)).unwrap();
        assert!(l.config.aedebug.debugger.is_none() && l.warnings.len() == 1);
        let mut src = s.sources(&link_good, None, None);
        src.trusted_owner = s.uid.wrapping_add(1);
        assert!(load(&src).unwrap().warnings[0].contains("symlink owned"));
    }

    #[test]
    fn world_writable_user_file_is_ignored() {
        let s = Scratch::new();
        let none = s.dir.path().join("absent.toml");
        let user = s.file("user.toml", USER, 0o666);
        let l = load(&s.sources(&none, Some(&user), None)).unwrap();
        assert!(l.config.localdumps.is_none());
        assert_eq!(l.warnings.len(), 1);
    }

    #[test]
    fn malformed_present_file_is_an_error() {
        let s = Scratch::new();
        let sys = s.file("sys.toml", "[aedebug]\nbogus = 1\n", 0o644);
        assert!(matches!(
            load(&s.sources(&sys, None, None)),
            Err(ConfigError::Syntax { line: 2, .. })
        ));
    }

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let map: HashMap<String, OsString> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn sources_from_vars_follow_xdg_and_home() {
        let s = Sources::from_vars(vars(&[("HOME", "/home/u"), ("PATH", "/bin")]), false);
        assert_eq!(s.system, Path::new(SYSTEM_CONFIG));
        assert_eq!(
            s.user.as_deref(),
            Some(Path::new("/home/u/.config/coroner/coroner.toml"))
        );
        assert_eq!(s.env_override, None);
        let s = Sources::from_vars(
            vars(&[
                ("HOME", "/home/u"),
                ("XDG_CONFIG_HOME", "/x"),
                ("CORONER_CONFIG", "/t.toml"),
            ]),
            false,
        );
        assert_eq!(
            s.user.as_deref(),
            Some(Path::new("/x/coroner/coroner.toml"))
        );
        assert_eq!(s.env_override.as_deref(), Some(Path::new("/t.toml")));
        let s = Sources::from_vars(vars(&[("HOME", "/h"), ("XDG_CONFIG_HOME", "rel")]), false);
        assert_eq!(
            s.user.as_deref(),
            Some(Path::new("/h/.config/coroner/coroner.toml"))
        );
        assert_eq!(Sources::from_vars(vars(&[]), false).user, None);
    }

    #[test]
    fn at_secure_ignores_user_file_env_override_and_path() {
        let s = Sources::from_vars(
            vars(&[
                ("HOME", "/home/u"),
                ("CORONER_CONFIG", "/t.toml"),
                ("PATH", "/bin"),
            ]),
            true,
        );
        assert_eq!((s.user.as_ref(), s.env_override.as_ref()), (None, None));
        assert_eq!(s.search_path, None);
        assert_eq!(s.system, Path::new(SYSTEM_CONFIG));
        assert_eq!(s.notes.len(), 1);
        let l = load(&Sources {
            system: PathBuf::from("/nonexistent/coroner.toml"),
            ..s
        })
        .unwrap();
        assert!(l.warnings[0].contains("CORONER_CONFIG ignored"));
    }

    #[test]
    fn from_environment_in_tests_is_not_secure() {
        // The test process is not setuid, so the user file is considered
        // whenever HOME is set.
        let s = Sources::from_environment();
        assert!(s.notes.is_empty());
        assert_eq!(
            s.user.is_some(),
            std::env::var_os("HOME").is_some_and(|h| !h.is_empty())
                || std::env::var_os("XDG_CONFIG_HOME").is_some_and(|h| Path::new(&h).is_absolute())
        );
    }

    #[test]
    fn default_dumper_is_found_on_path() {
        let s = Scratch::new();
        let bin = s.dir.path().join("bin");
        fs::create_dir(&bin).unwrap();
        let exe = bin.join("coroner");
        fs::write(&exe, "").unwrap();
        fs::set_permissions(&exe, Permissions::from_mode(0o755)).unwrap();
        let env = s.file("env.toml", "[localdumps]\n", 0o644);
        let mut src = s.sources(Path::new("/nonexistent"), None, Some(&env));
        let search =
            std::env::join_paths(["relative".as_ref(), s.dir.path(), bin.as_path()]).unwrap();
        src.search_path = Some(search);
        let l = load(&src).unwrap();
        assert_eq!(l.config.localdumps.unwrap().dumper, Some(exe));
    }

    #[test]
    fn loading_with_no_files_is_fast() {
        let s = Scratch::new();
        let none = s.dir.path().join("absent.toml");
        let src = s.sources(&none, Some(&none), None);
        let start = Instant::now();
        for _ in 0..100 {
            load(&src).unwrap();
        }
        // Generous bound (debug build, shared CI machine): 100 loads < 100 ms.
        assert!(
            start.elapsed() < Duration::from_millis(100),
            "{:?}",
            start.elapsed()
        );
    }
}
