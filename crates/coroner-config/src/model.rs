//! The configuration model (DESIGN.md "Configuration"): the AeDebug and
//! LocalDumps keys, parsed from TOML with every unknown key an error, and
//! resolved into the settings for one process ([`Config::effective`]).
//!
//! Parsing happens in two steps: a file is deserialized into private "raw"
//! structs that keep the byte span of each value, then validated into a
//! [`Layer`] whose keys are all optional (so a per-user file can override a
//! system file key by key), and layers are resolved into a [`Config`] with the
//! built-in defaults filling the rest.
//!
//! `[aedebug.i386]` (the Wow6432Node analogue) is used for 32-bit processes.
//! When the table is absent, 32-bit processes use `[aedebug]` (a 64-bit
//! ptrace debugger handles 32-bit processes on Linux, unlike WOW64). When it
//! is present, its `debugger` is the only one used for them (absent = none,
//! as with an empty Wow6432Node key), and its `auto`, `exclude`, `timeout`
//! fall back to the `[aedebug]` values when not given.

use crate::error::ConfigError;
use crate::template::DebuggerTemplate;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// Default `[aedebug] timeout`: seconds the runtime waits for the debugger.
pub const DEFAULT_DEBUGGER_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `[localdumps] timeout`: seconds the runtime waits for the dumper.
pub const DEFAULT_DUMP_TIMEOUT: Duration = Duration::from_secs(60);
/// Default `[localdumps] folder`.
pub const DEFAULT_DUMP_FOLDER: &str = "/var/crash/coroner";
/// Default `[localdumps] count` (Windows' DumpCount default).
pub const DEFAULT_DUMP_COUNT: u32 = 10;

/// The resolved configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `[aedebug]`: the JIT debugger for native (64-bit) processes.
    pub aedebug: AeDebug,
    /// `[aedebug.i386]`, resolved (fallbacks applied): used for 32-bit
    /// processes; `None` = they use [`Config::aedebug`].
    pub aedebug_i386: Option<AeDebug>,
    /// `[localdumps]`: present = dump-on-crash is on (like the registry key).
    pub localdumps: Option<LocalDumps>,
    /// `[kernel]`: how the kernel-tier handler collects (defaults if absent).
    pub kernel: KernelTier,
}

impl Default for Config {
    /// No debugger, auto = 1, no exclusions, 30 s, no LocalDumps.
    fn default() -> Self {
        Config {
            aedebug: AeDebug::default(),
            aedebug_i386: None,
            localdumps: None,
            kernel: KernelTier::default(),
        }
    }
}

/// One AeDebug key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AeDebug {
    /// `debugger`: the command-line template; `None` when absent or empty.
    pub debugger: Option<DebuggerTemplate>,
    /// `auto`: `true` (1) starts the debugger at once, `false` (0) asks first.
    pub auto: bool,
    /// `exclude` (AutoExclusionList): executable basenames never
    /// JIT-debugged; exact, case-sensitive, with `*` and `?` wildcards.
    pub exclude: Vec<String>,
    /// `timeout`: how long the runtime waits for the debugger (our addition).
    pub timeout: Duration,
}

impl Default for AeDebug {
    fn default() -> Self {
        AeDebug {
            debugger: None,
            auto: true,
            exclude: Vec::new(),
            timeout: DEFAULT_DEBUGGER_TIMEOUT,
        }
    }
}

/// The LocalDumps key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalDumps {
    /// `folder`: where dumps go (absolute).
    pub folder: PathBuf,
    /// `count`: keep at most this many dumps per executable (≥ 1).
    pub count: u32,
    /// `type`: how much to dump (the first of [`LocalDumps::types`]; the
    /// runtime writes this one).
    pub level: DumpLevel,
    /// `type` as given: one name, or a list of at most one minidump level
    /// and `core` (the kernel tier writes both from one crash).
    pub types: Vec<DumpLevel>,
    /// `compress`: the kernel tier writes ELF cores zstd-compressed
    /// (`.core.zst`).
    pub compress: bool,
    /// `timeout`: how long the runtime waits for the dumper (our addition).
    pub timeout: Duration,
    /// `dumper`: the coroner binary the runtime runs for the dump step. When
    /// not configured, [`crate::load`] fills in `coroner` found on `PATH` (if
    /// any); otherwise finding one is the runtime's business.
    pub dumper: Option<PathBuf>,
    /// `[localdumps.apps.NAME]`: per-executable overrides, by basename.
    pub apps: BTreeMap<String, AppOverride>,
}

impl Default for LocalDumps {
    /// What an empty `[localdumps]` table means: the default folder and
    /// count, mini dumps, uncompressed, the default timeout.
    fn default() -> Self {
        LocalDumps {
            folder: PathBuf::from(DEFAULT_DUMP_FOLDER),
            count: DEFAULT_DUMP_COUNT,
            level: DumpLevel::Mini,
            types: vec![DumpLevel::Mini],
            compress: false,
            timeout: DEFAULT_DUMP_TIMEOUT,
            dumper: None,
            apps: BTreeMap::new(),
        }
    }
}

impl LocalDumps {
    /// `count` of every `[localdumps.apps.NAME]` that sets one, by NAME
    /// (retention applies them per executable).
    pub fn app_counts(&self) -> BTreeMap<String, u32> {
        self.apps
            .iter()
            .filter_map(|(name, a)| Some((name.clone(), a.count?)))
            .collect()
    }

    /// The settings for the executable `base` (a basename): its
    /// `[localdumps.apps.NAME]` keys over these.
    pub fn effective(&self, base: &str) -> EffectiveDumps<'_> {
        let app = self.apps.get(base);
        EffectiveDumps {
            folder: app
                .and_then(|a| a.folder.as_deref())
                .unwrap_or(&self.folder),
            count: app.and_then(|a| a.count).unwrap_or(self.count),
            level: app.and_then(|a| a.level).unwrap_or(self.level),
            types: app.and_then(|a| a.types.as_deref()).unwrap_or(&self.types),
            compress: self.compress,
            timeout: self.timeout,
            dumper: self.dumper.as_deref(),
        }
    }
}

/// `[localdumps.apps.NAME]`: what one executable overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AppOverride {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub folder: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub level: Option<DumpLevel>,
    /// The whole `type` list (see [`LocalDumps::types`]).
    #[serde(skip)]
    pub types: Option<Vec<DumpLevel>>,
}

/// `[localdumps] type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DumpLevel {
    /// `mini` / `-mm`: threads, stacks, modules (DumpType 1).
    Mini,
    /// `mini-plus` / `-mp`: mini plus private writable memory.
    MiniPlus,
    /// `full` / `-ma`: all memory (DumpType 2).
    Full,
    /// `core`: an ELF core file with all memory.
    Core,
}

impl DumpLevel {
    /// Parses `mini | mini-plus | full | core` or the ProcDump spellings
    /// `-mm | -mp | -ma`.
    pub fn parse(s: &str) -> Option<DumpLevel> {
        Some(match s {
            "mini" | "-mm" => DumpLevel::Mini,
            "mini-plus" | "-mp" => DumpLevel::MiniPlus,
            "full" | "-ma" => DumpLevel::Full,
            "core" => DumpLevel::Core,
            _ => return None,
        })
    }

    /// The canonical name (`mini`, `mini-plus`, `full`, `core`).
    pub fn as_str(self) -> &'static str {
        match self {
            DumpLevel::Mini => "mini",
            DumpLevel::MiniPlus => "mini-plus",
            DumpLevel::Full => "full",
            DumpLevel::Core => "core",
        }
    }

    /// The `coroner dump` options selecting this level.
    pub fn dump_args(self) -> &'static [&'static str] {
        match self {
            DumpLevel::Mini => &["-mm"],
            DumpLevel::MiniPlus => &["-mp"],
            DumpLevel::Full => &["-ma"],
            DumpLevel::Core => &["-ma", "--format", "core"],
        }
    }
}

/// A size in the configuration: bytes, or a percentage of the size of the
/// file system the dump folder is on (systemd's `MaxUse=`/`KeepFree=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeSpec {
    Bytes(u64),
    Percent(u8),
}

impl SizeSpec {
    /// `"123"`, `"512K"`, `"10M"`, `"2G"`, `"1T"` (powers of 1024) or
    /// `"15%"` (0–100).
    pub fn parse(s: &str) -> Option<SizeSpec> {
        let s = s.trim();
        if let Some(p) = s.strip_suffix('%') {
            return p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= 100)
                .map(SizeSpec::Percent);
        }
        let (digits, shift) = match s.char_indices().last()? {
            (i, 'K' | 'k') => (&s[..i], 10),
            (i, 'M' | 'm') => (&s[..i], 20),
            (i, 'G' | 'g') => (&s[..i], 30),
            (i, 'T' | 't') => (&s[..i], 40),
            _ => (s, 0),
        };
        let n: u64 = digits.trim().parse().ok()?;
        n.checked_mul(1u64 << shift).map(SizeSpec::Bytes)
    }

    /// Bytes, given the file system's total size.
    pub fn bytes(self, fs_total: u64) -> u64 {
        match self {
            SizeSpec::Bytes(b) => b,
            SizeSpec::Percent(p) => fs_total / 100 * u64::from(p),
        }
    }
}

impl Serialize for SizeSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            SizeSpec::Bytes(b) => s.serialize_u64(*b),
            SizeSpec::Percent(p) => s.serialize_str(&format!("{p}%")),
        }
    }
}

/// `[kernel]`: the kernel-tier handler's limits and policy (systemd's
/// `coredump.conf` keys, and what its users ask for). What it writes and
/// where come from `[localdumps]` (`folder`, `count`, `type`, `compress`,
/// per-app overrides), as WER LocalDumps does for every process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KernelTier {
    /// `process_size_max`: stop storing a core stream past this many bytes
    /// (the dump is kept, marked truncated). Default 32 GiB.
    pub process_size_max: u64,
    /// `time_max`: seconds the handler may spend on one crash. Default 300.
    #[serde(serialize_with = "secs")]
    pub time_max: Duration,
    /// `max_use`: the dump files of the store stay under this total.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_use: Option<SizeSpec>,
    /// `keep_free`: keep this much free on the file system. Default 15%.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_free: Option<SizeSpec>,
    /// `rate_interval` (seconds), `rate_burst` (per executable) and
    /// `rate_global_burst`: more crashes in one interval are counted, not
    /// dumped. 0 = unlimited.
    #[serde(serialize_with = "secs")]
    pub rate_interval: Duration,
    pub rate_burst: u32,
    pub rate_global_burst: u32,
    /// `exclude`: executables (basename globs) never collected.
    pub exclude: Vec<String>,
    /// `environment`: record the crashed process's environment. Off.
    pub environment: bool,
    /// `chain`: forward the core to the handler installed before us. On.
    pub chain: bool,
    /// `user_access`: let the crashing user read its own dumps (only ever
    /// for plainly dumpable processes). On.
    pub user_access: bool,
    /// `group`: gid that may read the folder and every dump (mode 0750).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<u32>,
    /// `state_dir`: where `install --system` records what it replaced (the
    /// handler reads the chained handler from there). Root-owned.
    pub state_dir: PathBuf,
}

/// Default `[kernel] state_dir`.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/coroner";

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

impl Default for KernelTier {
    fn default() -> Self {
        KernelTier {
            process_size_max: 32 << 30,
            time_max: Duration::from_secs(300),
            max_use: None,
            keep_free: Some(SizeSpec::Percent(15)),
            rate_interval: Duration::from_secs(60),
            rate_burst: 10,
            rate_global_burst: 100,
            exclude: Vec::new(),
            environment: false,
            chain: true,
            user_access: true,
            group: None,
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
        }
    }
}

impl KernelTier {
    /// The executable (basename) matches `exclude`.
    pub fn excluded(&self, exe_name: &str) -> bool {
        let base = exe_name.rsplit('/').next().unwrap_or(exe_name);
        self.exclude.iter().any(|p| glob_match(p, base))
    }
}

/// The settings for one process, borrowed from a [`Config`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effective<'a> {
    /// The debugger to start, if any (`None` also when the template is empty).
    pub debugger: Option<&'a DebuggerTemplate>,
    /// Start it at once (`true`) or ask first.
    pub auto: bool,
    /// The executable matches the exclusion list: do not JIT-debug it.
    pub excluded: bool,
    /// How long to wait for the debugger.
    pub timeout: Duration,
    /// LocalDumps settings after the per-app override, if LocalDumps is on.
    pub localdumps: Option<EffectiveDumps<'a>>,
}

/// LocalDumps settings for one executable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveDumps<'a> {
    pub folder: &'a Path,
    pub count: u32,
    pub level: DumpLevel,
    /// Every dump kind to write (the kernel tier writes them all).
    pub types: &'a [DumpLevel],
    pub compress: bool,
    pub timeout: Duration,
    pub dumper: Option<&'a Path>,
}

impl Config {
    /// The settings for a process running `exe_name` (a basename or a path;
    /// only the basename is matched), 32-bit or not.
    pub fn effective(&self, exe_name: &str, is_32bit: bool) -> Effective<'_> {
        let base = exe_name.rsplit('/').next().unwrap_or(exe_name);
        let ae = match (&self.aedebug_i386, is_32bit) {
            (Some(i386), true) => i386,
            _ => &self.aedebug,
        };
        let localdumps = self.localdumps.as_ref().map(|ld| ld.effective(base));
        Effective {
            debugger: ae.debugger.as_ref().filter(|d| !d.is_empty()),
            auto: ae.auto,
            excluded: ae.exclude.iter().any(|p| glob_match(p, base)),
            timeout: ae.timeout,
            localdumps,
        }
    }
}

/// `*` (any run) and `?` (one character) matching, case-sensitive.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    if !pattern.contains(['*', '?']) {
        return pattern == name;
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

// ---------------------------------------------------------------- raw file

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFile {
    aedebug: Option<RawAeDebug>,
    localdumps: Option<RawLocalDumps>,
    kernel: Option<RawKernel>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKernel {
    process_size_max: Option<Spanned<toml::Value>>,
    time_max: Option<Spanned<i64>>,
    max_use: Option<Spanned<toml::Value>>,
    keep_free: Option<Spanned<toml::Value>>,
    rate_interval: Option<Spanned<i64>>,
    rate_burst: Option<Spanned<i64>>,
    rate_global_burst: Option<Spanned<i64>>,
    exclude: Option<Vec<Spanned<String>>>,
    environment: Option<bool>,
    chain: Option<bool>,
    user_access: Option<bool>,
    group: Option<Spanned<i64>>,
    state_dir: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAeDebug {
    debugger: Option<Spanned<String>>,
    auto: Option<Spanned<toml::Value>>,
    exclude: Option<Vec<Spanned<String>>>,
    timeout: Option<Spanned<i64>>,
    i386: Option<RawAeDebugI386>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAeDebugI386 {
    debugger: Option<Spanned<String>>,
    auto: Option<Spanned<toml::Value>>,
    exclude: Option<Vec<Spanned<String>>>,
    timeout: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLocalDumps {
    folder: Option<Spanned<String>>,
    count: Option<Spanned<i64>>,
    #[serde(rename = "type")]
    level: Option<Spanned<toml::Value>>,
    compress: Option<bool>,
    timeout: Option<Spanned<i64>>,
    dumper: Option<Spanned<String>>,
    apps: Option<BTreeMap<String, RawApp>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    folder: Option<Spanned<String>>,
    count: Option<Spanned<i64>>,
    #[serde(rename = "type")]
    level: Option<Spanned<toml::Value>>,
}

// ------------------------------------------------------------------ layers

/// One file's validated keys, all optional.
#[derive(Debug, Clone, Default)]
pub(crate) struct Layer {
    aedebug: AeLayer,
    i386: Option<AeLayer>,
    localdumps: Option<DumpsLayer>,
    /// `[kernel]` is taken whole from the last file that has it.
    kernel: Option<KernelTier>,
}

#[derive(Debug, Clone, Default)]
struct AeLayer {
    /// `Some(None)`: set to the empty string (no debugger).
    debugger: Option<Option<DebuggerTemplate>>,
    auto: Option<bool>,
    exclude: Option<Vec<String>>,
    timeout: Option<Duration>,
}

#[derive(Debug, Clone, Default)]
struct DumpsLayer {
    folder: Option<PathBuf>,
    count: Option<u32>,
    level: Option<Vec<DumpLevel>>,
    compress: Option<bool>,
    timeout: Option<Duration>,
    dumper: Option<PathBuf>,
    apps: BTreeMap<String, AppOverride>,
}

/// File text + path, for positions in errors.
struct Ctx<'a> {
    text: &'a str,
    path: &'a Path,
}

/// 1-based line and character column of byte `offset` in `text`.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// File byte offset of decoded character `target` (0-based) of the TOML
/// string whose token spans `span`; the token start if it cannot be mapped.
fn string_char_offset(text: &str, span: &Range<usize>, target: usize) -> usize {
    let Some(raw) = text.get(span.clone()) else {
        return span.start;
    };
    let (open, literal, multiline) = if raw.starts_with("\"\"\"") {
        (3, false, true)
    } else if raw.starts_with("'''") {
        (3, true, true)
    } else if raw.starts_with('"') {
        (1, false, false)
    } else if raw.starts_with('\'') {
        (1, true, false)
    } else {
        return span.start;
    };
    let mut body_start = open;
    if multiline {
        if raw[open..].starts_with("\r\n") {
            body_start += 2;
        } else if raw[open..].starts_with('\n') {
            body_start += 1;
        }
    }
    let body = &raw[body_start..];
    let mut it = body.char_indices().peekable();
    let mut decoded = 0usize;
    while let Some((off, c)) = it.next() {
        if !literal && c == '\\' {
            match it.peek().map(|&(_, e)| e) {
                Some(e) if multiline && e.is_whitespace() => {
                    // Line-ending backslash: trims up to the next non-blank.
                    while it.peek().is_some_and(|&(_, w)| w.is_whitespace()) {
                        it.next();
                    }
                    continue;
                }
                Some('u') => {
                    let _ = it.nth(4);
                }
                Some('U') => {
                    let _ = it.nth(8);
                }
                Some('x') => {
                    let _ = it.nth(2);
                }
                Some(_) => {
                    let _ = it.next();
                }
                None => {}
            }
        }
        if decoded == target {
            return span.start + body_start + off;
        }
        decoded += 1;
    }
    span.start
}

impl Ctx<'_> {
    fn invalid(&self, span: &Range<usize>, key: &str, message: impl Into<String>) -> ConfigError {
        let (line, column) = line_col(self.text, span.start);
        ConfigError::Invalid {
            path: self.path.to_owned(),
            line,
            column,
            key: key.to_owned(),
            message: message.into(),
        }
    }

    fn template(
        &self,
        key: &str,
        v: &Spanned<String>,
    ) -> Result<Option<DebuggerTemplate>, ConfigError> {
        match DebuggerTemplate::parse(v.get_ref()) {
            Ok(t) if t.is_empty() => Ok(None),
            Ok(t) => Ok(Some(t)),
            Err(source) => {
                let at = string_char_offset(self.text, &v.span(), source.column() - 1);
                let (line, column) = line_col(self.text, at);
                Err(ConfigError::Template {
                    path: self.path.to_owned(),
                    line,
                    column,
                    key: key.to_owned(),
                    source,
                })
            }
        }
    }

    fn auto(&self, key: &str, v: &Spanned<toml::Value>) -> Result<bool, ConfigError> {
        match v.get_ref() {
            toml::Value::Boolean(b) => Ok(*b),
            toml::Value::Integer(0) => Ok(false),
            toml::Value::Integer(1) => Ok(true),
            toml::Value::String(s) if s == "0" => Ok(false),
            toml::Value::String(s) if s == "1" => Ok(true),
            _ => Err(self.invalid(&v.span(), key, "must be 0 or 1 (or false/true)")),
        }
    }

    fn seconds(&self, key: &str, v: &Spanned<i64>) -> Result<Duration, ConfigError> {
        u32::try_from(*v.get_ref())
            .map(|s| Duration::from_secs(u64::from(s)))
            .map_err(|_| {
                self.invalid(
                    &v.span(),
                    key,
                    "must be a whole number of seconds, 0 to 4294967295",
                )
            })
    }

    fn count(&self, key: &str, v: &Spanned<i64>) -> Result<u32, ConfigError> {
        match u32::try_from(*v.get_ref()) {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(self.invalid(&v.span(), key, "must be at least 1")),
        }
    }

    fn abs_path(&self, key: &str, v: &Spanned<String>) -> Result<PathBuf, ConfigError> {
        let p = Path::new(v.get_ref());
        if p.is_absolute() {
            Ok(p.to_owned())
        } else {
            Err(self.invalid(&v.span(), key, "must be an absolute path"))
        }
    }

    fn one_level(&self, key: &str, span: &Range<usize>, s: &str) -> Result<DumpLevel, ConfigError> {
        DumpLevel::parse(s).ok_or_else(|| {
            self.invalid(
                span,
                key,
                "must be mini, mini-plus, full, core, -mm, -mp or -ma",
            )
        })
    }

    /// `type`: one name, or a list of at most one minidump level and
    /// `core` (both written from one crash by the kernel tier).
    fn level(&self, key: &str, v: &Spanned<toml::Value>) -> Result<Vec<DumpLevel>, ConfigError> {
        let span = v.span();
        let names: Vec<&str> = match v.get_ref() {
            toml::Value::String(s) => vec![s.as_str()],
            toml::Value::Array(a) if !a.is_empty() => a
                .iter()
                .map(|e| e.as_str())
                .collect::<Option<_>>()
                .ok_or_else(|| self.invalid(&span, key, "list entries must be strings"))?,
            _ => {
                return Err(self.invalid(
                    &span,
                    key,
                    "must be a dump type name or a non-empty list of them",
                ))
            }
        };
        let mut out = Vec::new();
        for n in names {
            out.push(self.one_level(key, &span, n)?);
        }
        let cores = out.iter().filter(|l| **l == DumpLevel::Core).count();
        if cores > 1 || out.len() - cores > 1 {
            return Err(self.invalid(
                &span,
                key,
                "a list holds at most one minidump level and one core",
            ));
        }
        Ok(out)
    }

    /// A byte size: an integer, or a string with a K/M/G/T suffix (powers
    /// of 1024) or a `%` of the file system's size.
    fn size(&self, key: &str, v: &Spanned<toml::Value>) -> Result<SizeSpec, ConfigError> {
        let bad = || {
            self.invalid(
                &v.span(),
                key,
                "must be a byte count, a size like \"512M\" / \"10G\", or a percentage like \"15%\"",
            )
        };
        match v.get_ref() {
            toml::Value::Integer(n) => u64::try_from(*n).map(SizeSpec::Bytes).map_err(|_| bad()),
            toml::Value::String(s) => SizeSpec::parse(s).ok_or_else(bad),
            _ => Err(bad()),
        }
    }

    fn number(&self, key: &str, v: &Spanned<i64>) -> Result<u32, ConfigError> {
        u32::try_from(*v.get_ref())
            .map_err(|_| self.invalid(&v.span(), key, "must be a whole number, 0 to 4294967295"))
    }

    fn kernel(&self, k: &RawKernel) -> Result<KernelTier, ConfigError> {
        let d = KernelTier::default();
        let size = |key: &str, v: &Option<Spanned<toml::Value>>| {
            v.as_ref().map(|v| self.size(key, v)).transpose()
        };
        let process_size_max = match size("kernel.process_size_max", &k.process_size_max)? {
            None => d.process_size_max,
            Some(SizeSpec::Bytes(b)) => b,
            Some(SizeSpec::Percent(_)) => {
                let v = k
                    .process_size_max
                    .as_ref()
                    .map(Spanned::span)
                    .unwrap_or_default();
                return Err(self.invalid(
                    &v,
                    "kernel.process_size_max",
                    "must be a size, not a percentage",
                ));
            }
        };
        Ok(KernelTier {
            process_size_max,
            time_max: k
                .time_max
                .as_ref()
                .map(|t| self.seconds("kernel.time_max", t))
                .transpose()?
                .unwrap_or(d.time_max),
            max_use: size("kernel.max_use", &k.max_use)?.or(d.max_use),
            keep_free: size("kernel.keep_free", &k.keep_free)?.or(d.keep_free),
            rate_interval: k
                .rate_interval
                .as_ref()
                .map(|t| self.seconds("kernel.rate_interval", t))
                .transpose()?
                .unwrap_or(d.rate_interval),
            rate_burst: k
                .rate_burst
                .as_ref()
                .map(|n| self.number("kernel.rate_burst", n))
                .transpose()?
                .unwrap_or(d.rate_burst),
            rate_global_burst: k
                .rate_global_burst
                .as_ref()
                .map(|n| self.number("kernel.rate_global_burst", n))
                .transpose()?
                .unwrap_or(d.rate_global_burst),
            exclude: k
                .exclude
                .as_deref()
                .map(|e| self.exclude("kernel.exclude", e))
                .transpose()?
                .unwrap_or_default(),
            environment: k.environment.unwrap_or(d.environment),
            chain: k.chain.unwrap_or(d.chain),
            user_access: k.user_access.unwrap_or(d.user_access),
            group: k
                .group
                .as_ref()
                .map(|g| self.number("kernel.group", g))
                .transpose()?,
            state_dir: k
                .state_dir
                .as_ref()
                .map(|d| self.abs_path("kernel.state_dir", d))
                .transpose()?
                .unwrap_or(d.state_dir),
        })
    }

    fn exclude(&self, key: &str, v: &[Spanned<String>]) -> Result<Vec<String>, ConfigError> {
        v.iter()
            .map(|e| {
                let s = e.get_ref();
                if s.is_empty() || s.contains('/') {
                    Err(self.invalid(
                        &e.span(),
                        key,
                        "entries are executable names (no '/', not empty)",
                    ))
                } else {
                    Ok(s.clone())
                }
            })
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn ae_layer(
        &self,
        prefix: &str,
        debugger: Option<&Spanned<String>>,
        auto: Option<&Spanned<toml::Value>>,
        exclude: Option<&[Spanned<String>]>,
        timeout: Option<&Spanned<i64>>,
    ) -> Result<AeLayer, ConfigError> {
        Ok(AeLayer {
            debugger: debugger
                .map(|d| self.template(&format!("{prefix}.debugger"), d))
                .transpose()?,
            auto: auto
                .map(|a| self.auto(&format!("{prefix}.auto"), a))
                .transpose()?,
            exclude: exclude
                .map(|e| self.exclude(&format!("{prefix}.exclude"), e))
                .transpose()?,
            timeout: timeout
                .map(|t| self.seconds(&format!("{prefix}.timeout"), t))
                .transpose()?,
        })
    }
}

/// Parses and validates one file's text into a layer.
pub(crate) fn parse_layer(text: &str, path: &Path) -> Result<Layer, ConfigError> {
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let (line, column) = e.span().map_or((1, 1), |s| line_col(text, s.start));
        ConfigError::Syntax {
            path: path.to_owned(),
            line,
            column,
            message: e.message().trim_end().to_owned(),
        }
    })?;
    let cx = Ctx { text, path };
    let mut layer = Layer::default();
    if let Some(ae) = &raw.aedebug {
        layer.aedebug = cx.ae_layer(
            "aedebug",
            ae.debugger.as_ref(),
            ae.auto.as_ref(),
            ae.exclude.as_deref(),
            ae.timeout.as_ref(),
        )?;
        if let Some(i) = &ae.i386 {
            layer.i386 = Some(cx.ae_layer(
                "aedebug.i386",
                i.debugger.as_ref(),
                i.auto.as_ref(),
                i.exclude.as_deref(),
                i.timeout.as_ref(),
            )?);
        }
    }
    if let Some(ld) = &raw.localdumps {
        let mut apps = BTreeMap::new();
        for (name, app) in ld.apps.iter().flatten() {
            let k = |f: &str| format!("localdumps.apps.{name}.{f}");
            apps.insert(
                name.clone(),
                AppOverride {
                    folder: app
                        .folder
                        .as_ref()
                        .map(|f| cx.abs_path(&k("folder"), f))
                        .transpose()?,
                    count: app
                        .count
                        .as_ref()
                        .map(|c| cx.count(&k("count"), c))
                        .transpose()?,
                    level: None,
                    types: app
                        .level
                        .as_ref()
                        .map(|l| cx.level(&k("type"), l))
                        .transpose()?,
                },
            );
        }
        layer.localdumps = Some(DumpsLayer {
            folder: ld
                .folder
                .as_ref()
                .map(|f| cx.abs_path("localdumps.folder", f))
                .transpose()?,
            count: ld
                .count
                .as_ref()
                .map(|c| cx.count("localdumps.count", c))
                .transpose()?,
            level: ld
                .level
                .as_ref()
                .map(|l| cx.level("localdumps.type", l))
                .transpose()?,
            compress: ld.compress,
            timeout: ld
                .timeout
                .as_ref()
                .map(|t| cx.seconds("localdumps.timeout", t))
                .transpose()?,
            dumper: ld
                .dumper
                .as_ref()
                .map(|d| cx.abs_path("localdumps.dumper", d))
                .transpose()?,
            apps,
        });
    }
    if let Some(k) = &raw.kernel {
        layer.kernel = Some(cx.kernel(k)?);
    }
    Ok(layer)
}

/// Where each key's value came from.
pub(crate) type Origins = BTreeMap<String, PathBuf>;

fn take<T>(dst: &mut Option<T>, src: Option<T>, key: String, path: &Path, origin: &mut Origins) {
    if let Some(v) = src {
        *dst = Some(v);
        origin.insert(key, path.to_owned());
    }
}

impl AeLayer {
    fn overlay(&mut self, o: AeLayer, prefix: &str, path: &Path, origin: &mut Origins) {
        take(
            &mut self.debugger,
            o.debugger,
            format!("{prefix}.debugger"),
            path,
            origin,
        );
        take(
            &mut self.auto,
            o.auto,
            format!("{prefix}.auto"),
            path,
            origin,
        );
        take(
            &mut self.exclude,
            o.exclude,
            format!("{prefix}.exclude"),
            path,
            origin,
        );
        take(
            &mut self.timeout,
            o.timeout,
            format!("{prefix}.timeout"),
            path,
            origin,
        );
    }
}

/// Merges layers in order (later keys win) and fills in the defaults.
pub(crate) fn resolve(layers: Vec<(Layer, &Path)>, origin: &mut Origins) -> Config {
    let mut ae = AeLayer::default();
    let mut i386: Option<AeLayer> = None;
    let mut ld: Option<DumpsLayer> = None;
    let mut kernel = KernelTier::default();
    for (layer, path) in layers {
        if let Some(k) = layer.kernel {
            kernel = k;
            origin.insert("kernel".into(), path.to_owned());
        }
        ae.overlay(layer.aedebug, "aedebug", path, origin);
        if let Some(l) = layer.i386 {
            i386.get_or_insert_with(AeLayer::default)
                .overlay(l, "aedebug.i386", path, origin);
        }
        if let Some(l) = layer.localdumps {
            let d = ld.get_or_insert_with(DumpsLayer::default);
            take(
                &mut d.folder,
                l.folder,
                "localdumps.folder".into(),
                path,
                origin,
            );
            take(
                &mut d.count,
                l.count,
                "localdumps.count".into(),
                path,
                origin,
            );
            take(
                &mut d.level,
                l.level,
                "localdumps.type".into(),
                path,
                origin,
            );
            take(
                &mut d.compress,
                l.compress,
                "localdumps.compress".into(),
                path,
                origin,
            );
            take(
                &mut d.timeout,
                l.timeout,
                "localdumps.timeout".into(),
                path,
                origin,
            );
            take(
                &mut d.dumper,
                l.dumper,
                "localdumps.dumper".into(),
                path,
                origin,
            );
            for (name, app) in l.apps {
                let dst = d.apps.entry(name.clone()).or_default();
                let k = |f: &str| format!("localdumps.apps.{name}.{f}");
                take(&mut dst.folder, app.folder, k("folder"), path, origin);
                take(&mut dst.count, app.count, k("count"), path, origin);
                take(&mut dst.types, app.types, k("type"), path, origin);
                dst.level = dst.types.as_ref().and_then(|t| t.first().copied());
            }
        }
    }
    let defaults = AeDebug::default();
    let aedebug = AeDebug {
        debugger: ae.debugger.clone().flatten(),
        auto: ae.auto.unwrap_or(defaults.auto),
        exclude: ae.exclude.clone().unwrap_or_default(),
        timeout: ae.timeout.unwrap_or(defaults.timeout),
    };
    let aedebug_i386 = i386.map(|i| AeDebug {
        debugger: i.debugger.flatten(),
        auto: i.auto.unwrap_or(aedebug.auto),
        exclude: i.exclude.unwrap_or_else(|| aedebug.exclude.clone()),
        timeout: i.timeout.unwrap_or(aedebug.timeout),
    });
    let localdumps = ld.map(|d| {
        let dflt = LocalDumps::default();
        let types = d.level.unwrap_or(dflt.types);
        LocalDumps {
            folder: d.folder.unwrap_or(dflt.folder),
            count: d.count.unwrap_or(dflt.count),
            level: types.first().copied().unwrap_or(dflt.level),
            types,
            compress: d.compress.unwrap_or(dflt.compress),
            timeout: d.timeout.unwrap_or(dflt.timeout),
            dumper: d.dumper,
            apps: d.apps,
        }
    });
    Config {
        aedebug,
        aedebug_i386,
        localdumps,
        kernel,
    }
}

/// Parses one complete configuration file's text (defaults for what it
/// does not set). `path` is used in error messages only.
pub fn parse_str(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let layer = parse_layer(text, path)?;
    Ok(resolve(vec![(layer, path)], &mut Origins::new()))
}

// ------------------------------------------------------------ serialization

#[derive(Serialize)]
struct FileView<'a> {
    aedebug: AeView<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    localdumps: Option<DumpsView<'a>>,
    kernel: &'a KernelTier,
}

#[derive(Serialize)]
struct AeView<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    debugger: Option<&'a str>,
    auto: u8,
    exclude: &'a [String],
    timeout: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    i386: Option<I386View<'a>>,
}

#[derive(Serialize)]
struct I386View<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    debugger: Option<&'a str>,
    auto: u8,
    exclude: &'a [String],
    timeout: u64,
}

#[derive(Serialize)]
struct DumpsView<'a> {
    folder: &'a Path,
    count: u32,
    #[serde(rename = "type")]
    level: TypeView<'a>,
    compress: bool,
    timeout: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    dumper: Option<&'a Path>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    apps: &'a BTreeMap<String, AppOverride>,
}

/// `type` as the file spells it: one name, or a list.
struct TypeView<'a>(&'a [DumpLevel]);

impl Serialize for TypeView<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            [one] => one.serialize(s),
            many => many.serialize(s),
        }
    }
}

impl Serialize for Config {
    /// Serializes in the file's shape (`[aedebug]`, `[aedebug.i386]`,
    /// `[localdumps]`, `[localdumps.apps.NAME]`), durations in seconds.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let a = &self.aedebug;
        FileView {
            aedebug: AeView {
                debugger: a.debugger.as_ref().map(DebuggerTemplate::as_str),
                auto: u8::from(a.auto),
                exclude: &a.exclude,
                timeout: a.timeout.as_secs(),
                i386: self.aedebug_i386.as_ref().map(|i| I386View {
                    debugger: i.debugger.as_ref().map(DebuggerTemplate::as_str),
                    auto: u8::from(i.auto),
                    exclude: &i.exclude,
                    timeout: i.timeout.as_secs(),
                }),
            },
            localdumps: self.localdumps.as_ref().map(|d| DumpsView {
                folder: &d.folder,
                count: d.count,
                level: TypeView(&d.types),
                compress: d.compress,
                timeout: d.timeout.as_secs(),
                dumper: d.dumper.as_deref(),
                apps: &d.apps,
            }),
            kernel: &self.kernel,
        }
        .serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::TemplateError;

    fn p(text: &str) -> Result<Config, ConfigError> {
        parse_str(text, Path::new("test.toml"))
    }

    #[test]
    fn type_lists_and_the_kernel_section() {
        let c = p("[localdumps]\ntype = [\"mini-plus\", \"core\"]\ncompress = true\n[localdumps.apps.srv]\ntype = \"full\"\n[kernel]\nprocess_size_max = \"2G\"\nkeep_free = \"10%\"\nmax_use = 1048576\nrate_burst = 3\nexclude = [\"Xorg*\"]\nchain = false\ngroup = 4\n").unwrap();
        let ld = c.localdumps.as_ref().unwrap();
        assert_eq!(ld.types, [DumpLevel::MiniPlus, DumpLevel::Core]);
        assert_eq!(ld.level, DumpLevel::MiniPlus);
        assert!(ld.compress);
        let e = c.effective("srv", false);
        assert_eq!(e.localdumps.as_ref().unwrap().types, [DumpLevel::Full]);
        let e = c.effective("other", false);
        assert_eq!(
            e.localdumps.as_ref().unwrap().types,
            [DumpLevel::MiniPlus, DumpLevel::Core]
        );
        let k = &c.kernel;
        assert_eq!(k.process_size_max, 2 << 30);
        assert_eq!(k.keep_free, Some(SizeSpec::Percent(10)));
        assert_eq!(k.max_use, Some(SizeSpec::Bytes(1 << 20)));
        assert_eq!((k.rate_burst, k.rate_global_burst), (3, 100));
        assert!(k.excluded("/usr/bin/Xorg.bin") && !k.excluded("sshd"));
        assert!(!k.chain && k.user_access);
        assert_eq!(k.group, Some(4));
        // Defaults when absent.
        let d = p("").unwrap().kernel;
        assert_eq!(d, KernelTier::default());
        assert_eq!(d.keep_free.unwrap().bytes(1000), 150);
        // Round trip through the serializer keeps the list and the kernel keys.
        let text = toml::to_string(&c).unwrap();
        let back = p(&text).unwrap();
        let bl = back.localdumps.as_ref().unwrap();
        assert_eq!((&bl.types, bl.compress), (&ld.types, true), "{text}");
        assert_eq!(p(&text).unwrap().kernel, c.kernel);
    }

    #[test]
    fn an_empty_localdumps_table_is_the_default() {
        let c = p("[localdumps]\n").unwrap();
        assert_eq!(c.localdumps, Some(LocalDumps::default()));
        let d = LocalDumps::default();
        let e = d.effective("anything");
        assert_eq!(
            (e.folder, e.count, e.types),
            (
                Path::new(DEFAULT_DUMP_FOLDER),
                DEFAULT_DUMP_COUNT,
                &[DumpLevel::Mini][..]
            )
        );
    }

    #[test]
    fn bad_types_and_sizes_name_their_key() {
        for (text, key) in [
            (
                "[localdumps]\ntype = [\"mini\", \"full\"]\n",
                "localdumps.type",
            ),
            ("[localdumps]\ntype = []\n", "localdumps.type"),
            ("[localdumps]\ntype = [\"core\", 3]\n", "localdumps.type"),
            ("[kernel]\nkeep_free = \"ten\"\n", "kernel.keep_free"),
            ("[kernel]\nmax_use = \"101%\"\n", "kernel.max_use"),
            (
                "[kernel]\nprocess_size_max = \"5%\"\n",
                "kernel.process_size_max",
            ),
            ("[kernel]\nrate_burst = -1\n", "kernel.rate_burst"),
            ("[kernel]\nexclude = [\"a/b\"]\n", "kernel.exclude"),
        ] {
            match p(text) {
                Err(ConfigError::Invalid { key: k, line, .. }) => {
                    assert_eq!((k.as_str(), line), (key, 2), "{text}")
                }
                other => panic!("{text}: {other:?}"),
            }
        }
        assert!(matches!(
            p("[kernel]\nbogus = 1\n"),
            Err(ConfigError::Syntax { .. })
        ));
        assert_eq!(SizeSpec::parse("512k"), Some(SizeSpec::Bytes(512 << 10)));
        assert_eq!(SizeSpec::parse("99999999999T"), None);
    }

    const DESIGN_EXAMPLE: &str = r#"
[aedebug]
debugger = "coroner dbg -p %ld -e %ld -g"   # printf-style
auto = 1            # 0 = ask first
exclude = ["Xorg"]
timeout = 30
[aedebug.i386]
debugger = "coroner32 dbg -p %ld -e %ld -g"
auto = 0
[localdumps]
folder = "/var/crash/coroner"
count = 10
type = "mini"
timeout = 60
dumper = "/usr/bin/coroner"
[localdumps.apps.myserver]
type = "full"
"#;

    #[test]
    fn design_example_parses() {
        let c = p(DESIGN_EXAMPLE).unwrap();
        assert_eq!(
            c.aedebug.debugger.as_ref().map(|d| d.as_str()),
            Some("coroner dbg -p %ld -e %ld -g")
        );
        assert!(c.aedebug.auto);
        assert_eq!(c.aedebug.exclude, ["Xorg"]);
        let i = c.aedebug_i386.as_ref().unwrap();
        assert!(!i.auto);
        assert_eq!(i.exclude, ["Xorg"], "i386 falls back to [aedebug] exclude");
        let ld = c.localdumps.as_ref().unwrap();
        assert_eq!(ld.apps["myserver"].level, Some(DumpLevel::Full));
        assert_eq!(ld.dumper.as_deref(), Some(Path::new("/usr/bin/coroner")));
    }

    #[test]
    fn defaults_when_empty() {
        let c = p("").unwrap();
        assert_eq!(c, Config::default());
        let e = c.effective("anything", false);
        assert!(e.debugger.is_none() && e.auto && !e.excluded && e.localdumps.is_none());
        assert_eq!(e.timeout, Duration::from_secs(30));
    }

    #[test]
    fn auto_accepts_int_bool_and_registry_strings() {
        for (v, want) in [
            ("0", false),
            ("1", true),
            ("false", false),
            ("true", true),
            ("\"0\"", false),
        ] {
            let c = p(&format!("[aedebug]\nauto = {v}\n")).unwrap();
            assert_eq!(c.aedebug.auto, want, "{v}");
        }
        let e = p("[aedebug]\nauto = 2\n").unwrap_err();
        assert!(
            matches!(
                e,
                ConfigError::Invalid {
                    line: 2,
                    column: 8,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn unknown_key_is_an_error_with_position() {
        let e = p("[aedebug]\nauto = 1\ndebuger = \"x\"\n").unwrap_err();
        match &e {
            ConfigError::Syntax {
                line,
                column,
                message,
                ..
            } => {
                assert_eq!((*line, *column), (3, 1), "{e}");
                assert!(message.contains("debuger"), "{e}");
            }
            other => panic!("{other}"),
        }
        let e = p("[localdumps.apps.x]\nsize = 3\n").unwrap_err();
        assert!(matches!(e, ConfigError::Syntax { line: 2, .. }), "{e}");
        let e = p("[aedebug.i386]\n[aedebug.i386.i386]\n").unwrap_err();
        assert!(matches!(e, ConfigError::Syntax { .. }), "{e}");
        let e = p("[nope]\n").unwrap_err();
        assert!(e.to_string().starts_with("test.toml:1:"), "{e}");
    }

    #[test]
    fn bad_template_points_at_the_character_in_the_file() {
        let e = p("[aedebug]\ndebugger = \"gdb -p %s\"\n").unwrap_err();
        match &e {
            ConfigError::Template {
                line,
                column,
                source,
                ..
            } => {
                assert_eq!((*line, *column), (2, 20), "{e}");
                assert_eq!(source.column(), 8);
            }
            other => panic!("{other}"),
        }
        let msg = e.to_string();
        assert!(msg.contains("test.toml:2:20"), "{msg}");
        // The column inside the value comes with the source error.
        let inner = std::error::Error::source(&e)
            .map(|s| s.to_string())
            .unwrap_or_default();
        assert!(inner.contains("column 8"), "{inner}");
    }

    #[test]
    fn template_position_accounts_for_escapes_and_string_kinds() {
        // Escaped quotes before the bad conversion: `\"` is 2 bytes in the
        // file, 1 in the value.
        let e = p("[aedebug]\ndebugger = \"a \\\"b\\\" %x\"\n").unwrap_err();
        assert!(
            matches!(
                e,
                ConfigError::Template {
                    line: 2,
                    column: 21,
                    ..
                }
            ),
            "{e}"
        );
        let e = p("[aedebug]\ndebugger = 'a %x'\n").unwrap_err();
        assert!(
            matches!(
                e,
                ConfigError::Template {
                    line: 2,
                    column: 15,
                    ..
                }
            ),
            "{e}"
        );
        let e = p("[aedebug]\ndebugger = \"\"\"\ngdb\n  %d\"\"\"\n").unwrap_err();
        assert!(
            matches!(
                e,
                ConfigError::Template {
                    line: 4,
                    column: 3,
                    ..
                }
            ),
            "{e}"
        );
        let e = p("[aedebug]\ndebugger = \"\\u00e9 %q\"\n").unwrap_err();
        assert!(
            matches!(
                e,
                ConfigError::Template {
                    line: 2,
                    column: 20,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn value_checks_carry_key_and_position() {
        for (text, key, line) in [
            ("[aedebug]\ntimeout = -1\n", "aedebug.timeout", 2),
            ("[localdumps]\ncount = 0\n", "localdumps.count", 2),
            ("[localdumps]\nfolder = \"rel\"\n", "localdumps.folder", 2),
            ("[localdumps]\ntype = \"huge\"\n", "localdumps.type", 2),
            (
                "[localdumps.apps.a]\n\ntype = \"x\"\n",
                "localdumps.apps.a.type",
                3,
            ),
            ("[aedebug]\nexclude = [\"a/b\"]\n", "aedebug.exclude", 2),
        ] {
            match p(text) {
                Err(ConfigError::Invalid {
                    key: k, line: l, ..
                }) => {
                    assert_eq!((k.as_str(), l), (key, line), "{text}")
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn wrong_type_is_a_syntax_error_with_position() {
        let e = p("[localdumps]\ncount = \"ten\"\n").unwrap_err();
        assert!(
            matches!(
                e,
                ConfigError::Syntax {
                    line: 2,
                    column: 9,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn empty_debugger_means_none() {
        let c = p("[aedebug]\ndebugger = \"\"\n").unwrap();
        assert!(c.aedebug.debugger.is_none());
    }

    #[test]
    fn effective_selects_bitness_exclusion_and_app_override() {
        let c = p(DESIGN_EXAMPLE).unwrap();
        let e64 = c.effective("/usr/bin/myserver", false);
        assert_eq!(e64.debugger.unwrap().program(), Some("coroner"));
        assert!(e64.auto && !e64.excluded);
        let d = e64.localdumps.unwrap();
        assert_eq!((d.level, d.count), (DumpLevel::Full, 10));
        assert_eq!(d.timeout, Duration::from_secs(60));
        let e32 = c.effective("other", true);
        assert_eq!(e32.debugger.unwrap().program(), Some("coroner32"));
        assert!(!e32.auto);
        assert_eq!(e32.localdumps.unwrap().level, DumpLevel::Mini);
        assert!(c.effective("Xorg", false).excluded);
        assert!(c.effective("/usr/lib/xorg/Xorg", true).excluded);
        assert!(!c.effective("xorg", false).excluded, "case-sensitive");
        // No i386 table: 32-bit processes use [aedebug].
        let c = p("[aedebug]\ndebugger = \"gdb -p %ld\"\n").unwrap();
        assert!(c.effective("x", true).debugger.is_some());
    }

    #[test]
    fn globs() {
        assert!(glob_match("X*", "Xorg"));
        assert!(glob_match("*org", "Xorg"));
        assert!(glob_match("X?rg", "Xorg"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "aXbYbc"));
        assert!(!glob_match("X?rg", "Xrg"));
        assert!(!glob_match("a*b", "ac"));
        assert!(!glob_match("Xorg", "Xorg2"));
    }

    #[test]
    fn serializes_in_file_shape_and_round_trips() {
        let c = p(DESIGN_EXAMPLE).unwrap();
        let text = toml::to_string(&c).unwrap();
        assert_eq!(p(&text).unwrap(), c, "{text}");
        let json: serde_json::Value = serde_json::to_value(&c).unwrap();
        assert_eq!(json["aedebug"]["i386"]["auto"], 0);
        assert_eq!(json["localdumps"]["apps"]["myserver"]["type"], "full");
    }

    #[test]
    fn garbage_never_panics() {
        for text in [
            "[",
            "a = ",
            "[aedebug]\ndebugger = 5",
            "[aedebug]\ndebugger = \"'\"",
            "[aedebug]\ndebugger = \"%\"",
            "\u{0}",
            "[aedebug]\nexclude = 3",
            "[aedebug]\ntimeout = 99999999999999",
            "[localdumps]\napps = 1",
            "[aedebug]\ndebugger = \"\"\"\\\n   %\"\"\"",
        ] {
            assert!(p(text).is_err(), "{text:?}");
        }
    }

    /// Deterministic pseudo-random templates (no panic anywhere; a `%`
    /// error's file position points at that `%` through TOML escapes).
    #[test]
    fn random_templates_never_panic_and_positions_hit_the_percent() {
        const ALPHABET: [char; 14] = [
            '%', 'l', 'd', 'p', '"', '\'', '\\', ' ', '\n', '#', 'x', 'é', '\t', '%',
        ];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut percent_errors = 0;
        for _ in 0..3000 {
            let len = (next() % 14) as usize;
            let template: String = (0..len)
                .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize])
                .collect();
            let parsed = DebuggerTemplate::parse(&template);
            if let Ok(t) = &parsed {
                assert_eq!(t.expand(1, -2, 3).len(), t.words().len());
            }
            let mut escaped = String::new();
            for c in template.chars() {
                match c {
                    '"' => escaped.push_str("\\\""),
                    '\\' => escaped.push_str("\\\\"),
                    '\n' => escaped.push_str("\\n"),
                    '\t' => escaped.push_str("\\t"),
                    c => escaped.push(c),
                }
            }
            let text = format!("# header\n[aedebug]\n  debugger = \"{escaped}\"\n");
            match p(&text) {
                Ok(c) => assert_eq!(
                    c.aedebug.debugger.is_some(),
                    parsed.as_ref().is_ok_and(|t| !t.is_empty())
                ),
                Err(ConfigError::Template {
                    line,
                    column,
                    source,
                    ..
                }) => {
                    assert_eq!(Err(source.clone()), parsed.clone().map(|_| ()));
                    if matches!(
                        source,
                        TemplateError::UnsupportedConversion { .. }
                            | TemplateError::OutOfOrder { .. }
                    ) {
                        percent_errors += 1;
                        let at = text
                            .lines()
                            .nth(line - 1)
                            .and_then(|l| l.chars().nth(column - 1));
                        assert_eq!(at, Some('%'), "{template:?} -> {text:?} {line}:{column}");
                    }
                }
                Err(other) => panic!("{template:?}: {other}"),
            }
        }
        assert!(
            percent_errors > 100,
            "the corpus exercises % errors: {percent_errors}"
        );
    }
}
