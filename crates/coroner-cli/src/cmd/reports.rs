//! `coroner reports list|show|analyze|debug|delete|gc`: the report queue of
//! one dump folder (WER's report queue; `coredumpctl list|info|debug`).
//! Arguments are parsed into [`Args`] without touching the system, then
//! resolved (configuration, folder, store) and run. Every string read from
//! the store is printed through [`escape`] (the store's renderers do it for
//! the rows; the stored analysis is escaped here before it is rendered).

use crate::dump_args::UsageError;
use anyhow::{bail, Context};
use coroner_store::text::{escape, format_time, render_report, render_row};
use coroner_store::{
    check_dump_name, DumpFile, Filter, Report, ReportId, Retention, Store, StoreError, Tier,
    DB_NAME,
};
use serde_json::{json, Map, Value};
use std::collections::HashSet;
use std::ffi::OsString;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

pub const USAGE: &str = "\
Usage: coroner reports [list] [--json] [--grouped] [FILTERS]
       coroner reports show ID [--json]
       coroner reports analyze ID [--json]
       coroner reports debug ID [--debugger coroner|gdb|lldb]
       coroner reports delete ID... [--json]
       coroner reports gc [--json]

The crash reports of one dump folder (<folder>/reports.db and the dump
files beside it), newest first.

list      one line per report: id, time (UTC), signal, executable, pid,
          bucket, dump files (the default subcommand)
          --grouped   one line per bucket, most frequent first: count,
                      bucket, executable, last time, newest id, signature
show      every field of a report, then its stored analysis
analyze   analyse the report's minidump (or core) again and store the
          signature, bucket and analysis
debug     open the report's dump in a debugger (the debugger's exit status
          is ours): coroner (default: coroner dbg -z), gdb (needs a core),
          lldb (minidump or core)
delete    remove reports and their dump files
gc        apply the configured retention: [localdumps] count per
          executable (10 when there is no [localdumps]), [kernel] max_use
          and keep_free

Filters (list):
  --exe NAME         executable path, basename or comm
  --signal SIG       number or name (11, SIGSEGV, segv)
  --since WHEN       epoch seconds, YYYY-MM-DD, YYYY-MM-DDTHH:MM:SS (UTC),
                     or ago: -30s, -30m, -1h, -2d, -1w
  --bucket PREFIX    bucket prefix
  --tier TIER        kernel, runtime or on-demand
  --limit N          at most N lines

Common options (before or after the subcommand):
  --folder DIR       the dump folder (default: [localdumps] folder of the
                     configuration, else /var/crash/coroner)
  --config FILE      read this configuration file instead of the system and
                     user files (it must be owned by you, or root, and not be
                     writable by others)
  --json             print JSON (schema_version 1)
  -h, --help         this text
";

/// `schema_version` of every JSON object this command prints.
const JSON_SCHEMA: u32 = 1;

/// Reports kept per executable when the configuration has no
/// `[localdumps]` (Windows' `DumpCount` default).
const DEFAULT_COUNT: u32 = coroner_config::DEFAULT_DUMP_COUNT;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sub {
    List,
    Show,
    Analyze,
    Debug,
    Delete,
    Gc,
}

impl Sub {
    fn parse(s: &str) -> Option<Sub> {
        Some(match s {
            "list" => Sub::List,
            "show" | "info" => Sub::Show,
            "analyze" | "analyse" => Sub::Analyze,
            "debug" => Sub::Debug,
            "delete" | "rm" => Sub::Delete,
            "gc" => Sub::Gc,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Sub::List => "list",
            Sub::Show => "show",
            Sub::Analyze => "analyze",
            Sub::Debug => "debug",
            Sub::Delete => "delete",
            Sub::Gc => "gc",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Debugger {
    Coroner,
    Gdb,
    Lldb,
}

/// A `--since` value before the clock is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum When {
    /// Epoch seconds.
    At(i64),
    /// This many seconds before now.
    Ago(i64),
}

/// The parsed command line ("low" arguments: checked, no system calls).
#[derive(Debug, PartialEq)]
struct Args {
    sub: Sub,
    folder: Option<PathBuf>,
    config: Option<PathBuf>,
    json: bool,
    grouped: bool,
    exe: Option<String>,
    signal: Option<i32>,
    since: Option<When>,
    bucket: Option<String>,
    tier: Option<Tier>,
    limit: Option<usize>,
    debugger: Option<Debugger>,
    ids: Vec<ReportId>,
}

/// What the command line asked for.
#[derive(Debug, PartialEq)]
enum Parsed {
    Help,
    Run(Args),
}

fn usage(msg: impl Into<String>) -> UsageError {
    UsageError(format!("reports: {}", msg.into()))
}

fn parse_args(raw: &[OsString]) -> Result<Parsed, UsageError> {
    let mut sub: Option<Sub> = None;
    let mut a = Args {
        sub: Sub::List,
        folder: None,
        config: None,
        json: false,
        grouped: false,
        exe: None,
        signal: None,
        since: None,
        bucket: None,
        tier: None,
        limit: None,
        debugger: None,
        ids: Vec::new(),
    };
    // Options only `list` takes, as given (for the error on other commands).
    let mut list_only: Vec<&'static str> = Vec::new();
    let mut positional: Vec<String> = Vec::new();
    let mut it = raw.iter();
    while let Some(arg) = it.next() {
        let Some(s) = arg.to_str() else {
            return Err(usage(format!("unexpected argument {arg:?}")));
        };
        let mut value = |name: &str, what: &str| -> Result<OsString, UsageError> {
            it.next()
                .cloned()
                .ok_or_else(|| usage(format!("{name} needs {what}")))
        };
        match s {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--json" => a.json = true,
            "--folder" => a.folder = Some(value(s, "a directory")?.into()),
            "--config" => a.config = Some(value(s, "a file")?.into()),
            "--grouped" => {
                a.grouped = true;
                list_only.push("--grouped");
            }
            "--exe" => {
                a.exe = Some(value(s, "an executable name")?.to_string_lossy().into());
                list_only.push("--exe");
            }
            "--signal" => {
                let v = value(s, "a signal")?;
                a.signal = Some(parse_signal(&v.to_string_lossy()).ok_or_else(|| {
                    usage(format!(
                        "--signal: {v:?} is not a signal number (1-64) or name (SIGSEGV, segv)"
                    ))
                })?);
                list_only.push("--signal");
            }
            "--since" => {
                let v = value(s, "a time")?;
                a.since = Some(parse_when(&v.to_string_lossy()).ok_or_else(|| {
                    usage(format!(
                        "--since: {v:?} is not epoch seconds, YYYY-MM-DD, \
                         YYYY-MM-DDTHH:MM:SS or -N[smhdw]"
                    ))
                })?);
                list_only.push("--since");
            }
            "--bucket" => {
                a.bucket = Some(value(s, "a bucket prefix")?.to_string_lossy().into());
                list_only.push("--bucket");
            }
            "--tier" => {
                let v = value(s, "a tier")?;
                a.tier = Some(v.to_str().and_then(Tier::parse).ok_or_else(|| {
                    usage(format!("--tier: {v:?} is not kernel, runtime or on-demand"))
                })?);
                list_only.push("--tier");
            }
            "--limit" => {
                let v = value(s, "a number")?;
                a.limit = Some(
                    v.to_str()
                        .and_then(|n| n.parse::<usize>().ok())
                        .filter(|n| *n > 0)
                        .ok_or_else(|| usage(format!("--limit: {v:?} is not a positive number")))?,
                );
                list_only.push("--limit");
            }
            "--debugger" => {
                let v = value(s, "coroner, gdb or lldb")?;
                a.debugger = Some(match v.to_str() {
                    Some("coroner") => Debugger::Coroner,
                    Some("gdb") => Debugger::Gdb,
                    Some("lldb") => Debugger::Lldb,
                    _ => {
                        return Err(usage(format!(
                            "--debugger: {v:?} is not coroner, gdb or lldb"
                        )))
                    }
                });
            }
            _ if s.starts_with('-') && s.len() > 1 => {
                return Err(usage(format!(
                    "unknown option {s:?} (see coroner reports --help)"
                )))
            }
            _ if sub.is_none() => {
                sub = Some(Sub::parse(s).ok_or_else(|| {
                    usage(format!(
                        "unknown subcommand {s:?} (list, show, analyze, debug, delete, gc)"
                    ))
                })?);
            }
            _ => positional.push(s.to_owned()),
        }
    }
    a.sub = sub.unwrap_or(Sub::List);
    let name = a.sub.name();
    if a.sub != Sub::List {
        if let Some(opt) = list_only.first() {
            return Err(usage(format!(
                "{opt} is only for `reports list`, not {name}"
            )));
        }
    }
    if a.sub != Sub::Debug && a.debugger.is_some() {
        return Err(usage(format!(
            "--debugger is only for `reports debug`, not {name}"
        )));
    }
    if a.sub == Sub::Debug && a.json {
        return Err(usage("debug has no --json output"));
    }
    for p in &positional {
        let id = p
            .parse::<ReportId>()
            .map_err(|_| usage(format!("{name}: report id must be a number, got {p:?}")))?;
        a.ids.push(id);
    }
    match (a.sub, a.ids.len()) {
        (Sub::List | Sub::Gc, 0) => {}
        (Sub::List | Sub::Gc, _) => {
            return Err(usage(format!(
                "{name} takes no report id (got {:?})",
                positional
            )))
        }
        (Sub::Show | Sub::Analyze | Sub::Debug, 1) => {}
        (Sub::Show | Sub::Analyze | Sub::Debug, _) => {
            return Err(usage(format!("{name} needs exactly one report id")))
        }
        (Sub::Delete, 0) => return Err(usage("delete needs at least one report id")),
        (Sub::Delete, _) => {}
    }
    Ok(Parsed::Run(a))
}

/// A signal number (1-64) or a name with or without `SIG`, any case.
fn parse_signal(s: &str) -> Option<i32> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok().filter(|n| (1..=64).contains(n));
    }
    coroner_types::signal::signal_number(s)
}

/// `--since`: epoch seconds, `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM:SS` (or with
/// a space, `HH:MM`, a trailing `Z`; always UTC), or `-N` followed by one
/// of `s m h d w` (that long ago).
fn parse_when(s: &str) -> Option<When> {
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if let Some(rel) = s.strip_prefix('-') {
        let unit = rel.chars().last()?;
        let n = &rel[..rel.len() - unit.len_utf8()];
        if !digits(n) {
            return None;
        }
        let scale = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return None,
        };
        return n.parse::<i64>().ok()?.checked_mul(scale).map(When::Ago);
    }
    if digits(s) {
        return s.parse().ok().map(When::At);
    }
    let (date, time) = match s.split_once(['T', ' ']) {
        Some((d, t)) => (d, Some(t.strip_suffix('Z').unwrap_or(t))),
        None => (s, None),
    };
    let mut d = date.split('-');
    let (y, mo, day) = (d.next()?, d.next()?, d.next()?);
    if d.next().is_some() || y.len() != 4 || mo.len() != 2 || day.len() != 2 {
        return None;
    }
    if !(digits(y) && digits(mo) && digits(day)) {
        return None;
    }
    let (y, mo, day): (i64, u32, u32) = (y.parse().ok()?, mo.parse().ok()?, day.parse().ok()?);
    if !(1..=12).contains(&mo) || day == 0 || day > days_in_month(y, mo) {
        return None;
    }
    let mut secs = days_from_civil(y, mo, day) * 86_400;
    if let Some(t) = time {
        let parts: Vec<&str> = t.split(':').collect();
        if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.len() != 2 || !digits(p)) {
            return None;
        }
        let n: Vec<i64> = parts.iter().filter_map(|p| p.parse().ok()).collect();
        let (h, m, sec) = (n[0], n[1], n.get(2).copied().unwrap_or(0));
        if h > 23 || m > 59 || sec > 59 {
            return None;
        }
        secs += h * 3600 + m * 60 + sec;
    }
    Some(When::At(secs))
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date: count whole
/// 400-year eras, then days into the era with years starting in March (so
/// the leap day is the last day of a year).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let year_of_era = y.rem_euclid(400);
    let month_from_march = (i64::from(m) + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(d) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    // 719 468 days from 0000-03-01 to 1970-01-01.
    era * 146_097 + day_of_era - 719_468
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

pub fn run(raw: &[OsString]) -> anyhow::Result<ExitCode> {
    let a = match parse_args(raw)? {
        Parsed::Help => {
            print!("{USAGE}");
            return Ok(ExitCode::SUCCESS);
        }
        Parsed::Run(a) => a,
    };
    // The configuration is read only when it is needed: for the default
    // folder and for gc's retention.
    let config = if a.folder.is_none() || a.sub == Sub::Gc {
        Some(crate::cmd::config::load_config(a.config.as_deref())?)
    } else {
        None
    };
    let folder = match (&a.folder, &config) {
        (Some(f), _) => f.clone(),
        (None, Some(c)) => c.localdumps.as_ref().map_or_else(
            || PathBuf::from(coroner_config::DEFAULT_DUMP_FOLDER),
            |l| l.folder.clone(),
        ),
        (None, None) => PathBuf::from(coroner_config::DEFAULT_DUMP_FOLDER),
    };
    let mut store = open_store(&folder)?;
    match a.sub {
        Sub::List => list(&store, &a),
        Sub::Show => show(&store, a.ids[0], a.json),
        Sub::Analyze => analyze(&mut store, a.ids[0], a.json),
        Sub::Debug => debug(&store, a.ids[0], a.debugger.unwrap_or(Debugger::Coroner)),
        Sub::Delete => delete(&mut store, &a.ids, a.json),
        Sub::Gc => {
            let config = config.context("the configuration was not loaded")?;
            gc(&mut store, &config, a.json)
        }
    }
}

/// Open the store of `folder`, refusing to create one: reading an empty
/// or mistyped folder must not leave a database behind.
fn open_store(folder: &Path) -> anyhow::Result<Store> {
    let shown = folder.display();
    match std::fs::metadata(folder) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            bail!("no reports in {shown}: the folder does not exist")
        }
        Err(e) => return Err(e).with_context(|| format!("cannot use the dump folder {shown}")),
        Ok(m) if !m.is_dir() => bail!("no reports in {shown}: it is not a directory"),
        Ok(_) => {}
    }
    match std::fs::symlink_metadata(folder.join(DB_NAME)) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            bail!("no reports in {shown}: there is no report database ({DB_NAME}) in it")
        }
        Err(e) => {
            return Err(e).with_context(|| format!("cannot use the report database in {shown}"))
        }
        Ok(_) => {}
    }
    Store::open(folder).with_context(|| format!("cannot open the reports in {shown}"))
}

fn get(store: &Store, id: ReportId) -> anyhow::Result<Report> {
    store
        .get(id)
        .with_context(|| format!("cannot read report {id}"))?
        .with_context(|| format!("no report {id} in {}", store.folder().display()))
}

fn print_json(v: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// `{"schema_version": 1, key: value, ...}`.
fn envelope(fields: Vec<(&str, Value)>) -> Value {
    let mut m = Map::new();
    m.insert("schema_version".into(), json!(JSON_SCHEMA));
    for (k, v) in fields {
        m.insert(k.into(), v);
    }
    Value::Object(m)
}

fn list(store: &Store, a: &Args) -> anyhow::Result<ExitCode> {
    let filter = Filter {
        exe: a.exe.clone(),
        signal: a.signal,
        since: a.since.map(|w| match w {
            When::At(t) => t,
            When::Ago(d) => now_secs().saturating_sub(d),
        }),
        bucket: a.bucket.clone(),
        tier: a.tier,
        limit: a.limit,
    };
    let folder = store.folder().display();
    if a.grouped {
        let groups = store
            .buckets(&filter)
            .with_context(|| format!("cannot group the reports in {folder}"))?;
        if a.json {
            print_json(&envelope(vec![("buckets", serde_json::to_value(&groups)?)]))?;
            return Ok(ExitCode::SUCCESS);
        }
        for g in &groups {
            let exe = g.exe.rsplit('/').next().unwrap_or(&g.exe);
            println!(
                "{:>6}  {:<16}  {:<20} {}  {:>6}  {}",
                g.count,
                escape(g.bucket.as_deref().unwrap_or("-")),
                escape(exe),
                format_time(g.last_time),
                g.newest.0,
                escape(g.signature.as_deref().unwrap_or("-")),
            );
        }
        if groups.is_empty() {
            eprintln!("coroner: no reports match in {folder}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let reports = store
        .list(&filter)
        .with_context(|| format!("cannot list the reports in {folder}"))?;
    if a.json {
        print_json(&envelope(vec![(
            "reports",
            serde_json::to_value(&reports)?,
        )]))?;
        return Ok(ExitCode::SUCCESS);
    }
    for r in &reports {
        println!("{}", render_row(r));
    }
    if reports.is_empty() {
        eprintln!("coroner: no reports match in {folder}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The stored analysis: `Ok(None)` when there is none, `Err(why)` when it
/// cannot be read by this coroner.
fn stored_analysis(r: &Report) -> Result<Option<coroner_analyze::Report>, String> {
    let Some(text) = &r.analysis_json else {
        return Ok(None);
    };
    let a: coroner_analyze::Report =
        serde_json::from_str(text).map_err(|e| format!("not an analysis: {e}"))?;
    if a.schema_version != coroner_analyze::SCHEMA_VERSION {
        return Err(format!(
            "schema version {}, this coroner reads {}",
            a.schema_version,
            coroner_analyze::SCHEMA_VERSION
        ));
    }
    Ok(Some(a))
}

/// Every string of `v` escaped for the terminal.
fn escape_strings(v: &mut Value) {
    match v {
        Value::String(s) => *s = escape(s),
        Value::Array(items) => items.iter_mut().for_each(escape_strings),
        Value::Object(m) => m.values_mut().for_each(escape_strings),
        _ => {}
    }
}

/// The analysis as `coroner analyze` prints it, with every string from the
/// dump escaped (thread names, paths and symbols are the crashed program's).
fn analysis_text(a: &coroner_analyze::Report) -> String {
    let escaped = serde_json::to_value(a).ok().and_then(|mut v| {
        escape_strings(&mut v);
        serde_json::from_value::<coroner_analyze::Report>(v).ok()
    });
    let mut text = match escaped {
        Some(e) => coroner_analyze::render_text(&e),
        // Cannot happen for a report that serialised; escape line by line.
        None => coroner_analyze::render_text(a)
            .lines()
            .map(|l| escape(l) + "\n")
            .collect(),
    };
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

fn show(store: &Store, id: ReportId, json: bool) -> anyhow::Result<ExitCode> {
    let r = get(store, id)?;
    let analysis = stored_analysis(&r);
    if let Err(why) = &analysis {
        eprintln!(
            "coroner: warning: report {id}: the stored analysis cannot be read ({why}); \
             `coroner reports analyze {id}` makes a new one"
        );
    }
    let analysis = analysis.ok().flatten();
    if json {
        let a = match &analysis {
            Some(a) => serde_json::to_value(a)?,
            None => Value::Null,
        };
        print_json(&envelope(vec![
            ("report", serde_json::to_value(&r)?),
            ("analysis", a),
        ]))?;
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", render_report(&r));
    match &analysis {
        Some(a) => print!("\n{}", analysis_text(a)),
        None if r.analysis_json.is_none() => {
            eprintln!("coroner: report {id} is not analysed yet: coroner reports analyze {id}")
        }
        None => {}
    }
    Ok(ExitCode::SUCCESS)
}

/// The dump of `r` to open: the first minidump, else the first core. A
/// compressed core is named in the error (no reader takes it as it is).
fn pick_dump(r: &Report, want_core: bool) -> anyhow::Result<&DumpFile> {
    let find = |format: &str| r.dumps.iter().find(|d| d.format == format);
    let found = if want_core {
        find("core")
    } else {
        find("minidump").or_else(|| find("core"))
    };
    if let Some(d) = found {
        return Ok(d);
    }
    let id = r.id;
    if let Some(z) = find("core.zst") {
        bail!(
            "report {id}: its core {} is zstd-compressed; decompress a copy \
             (zstd -d) and open that",
            escape(&z.name)
        );
    }
    if r.dumps.is_empty() {
        bail!("report {id} has no dump file");
    }
    if want_core {
        bail!(
            "report {id} has no ELF core, only a minidump, and gdb reads cores: \
             use --debugger coroner or --debugger lldb"
        );
    }
    let formats: Vec<String> = r.dumps.iter().map(|d| escape(&d.format)).collect();
    bail!(
        "report {id} has no minidump or core (dump formats: {})",
        formats.join(", ")
    )
}

/// The path of dump `d` of report `id`: a plain file in the folder, not a
/// symlink, and still there.
fn dump_path(store: &Store, id: ReportId, d: &DumpFile) -> anyhow::Result<PathBuf> {
    check_dump_name(&d.name)
        .with_context(|| format!("report {id} names a file outside its folder"))?;
    let path = store.folder().join(&d.name);
    let name = escape(&d.name);
    let folder = store.folder().display();
    match std::fs::symlink_metadata(&path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            bail!("report {id}: its dump file {name} is no longer in {folder}")
        }
        Err(e) => Err(e).with_context(|| format!("report {id}: cannot use {name} in {folder}")),
        Ok(m) if m.file_type().is_symlink() => {
            bail!("report {id}: {name} in {folder} is a symbolic link; refusing to follow it")
        }
        Ok(m) if !m.is_file() => bail!("report {id}: {name} in {folder} is not a regular file"),
        Ok(_) => Ok(path),
    }
}

fn analyze(store: &mut Store, id: ReportId, json: bool) -> anyhow::Result<ExitCode> {
    let r = get(store, id)?;
    let path = dump_path(store, id, pick_dump(&r, false)?)?;
    let analysis =
        coroner_analyze::analyze_path(&path, &coroner_analyze::AnalyzeOptions::default())
            .with_context(|| format!("report {id}: cannot analyze {}", path.display()))?;
    let stored = serde_json::to_string(&analysis)?;
    store
        .set_analysis(
            id,
            &analysis.signature.text,
            &analysis.signature.bucket,
            &stored,
        )
        .with_context(|| format!("cannot store the analysis of report {id}"))?;
    if json {
        print_json(&serde_json::to_value(&analysis)?)?;
    } else {
        print!("{}", analysis_text(&analysis));
    }
    Ok(ExitCode::SUCCESS)
}

fn debug(store: &Store, id: ReportId, debugger: Debugger) -> anyhow::Result<ExitCode> {
    let r = get(store, id)?;
    let dump = pick_dump(&r, debugger == Debugger::Gdb)?;
    let path = dump_path(store, id, dump)?;
    let mut cmd = match debugger {
        Debugger::Coroner => {
            let me = std::env::current_exe().context("locating the coroner executable")?;
            let mut c = Command::new(me);
            c.arg("dbg").arg("-z").arg(&path);
            c
        }
        Debugger::Gdb => {
            let mut c = Command::new("gdb");
            // The executable only when it is plainly a file path (a stored
            // name is never taken for an option).
            let exe = Path::new(&r.exe);
            if exe.is_absolute() && exe.is_file() {
                c.arg(exe).arg(&path);
            } else {
                c.arg("-c").arg(&path);
            }
            c
        }
        Debugger::Lldb => {
            let mut c = Command::new("lldb");
            c.arg("--core").arg(&path);
            c
        }
    };
    let program = cmd.get_program().to_string_lossy().into_owned();
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {program} on report {id}"))?;
    Ok(match status.code() {
        Some(c) => ExitCode::from(u8::try_from(c).unwrap_or(1)),
        None => {
            use std::os::unix::process::ExitStatusExt;
            let sig = status.signal().unwrap_or(0);
            ExitCode::from(u8::try_from(128 + sig).unwrap_or(1))
        }
    })
}

fn delete(store: &mut Store, ids: &[ReportId], json: bool) -> anyhow::Result<ExitCode> {
    let folder = store.folder().display().to_string();
    let mut removed = Vec::new();
    let mut errors = Vec::new();
    for &id in ids {
        match store.delete(id) {
            Ok(r) => {
                if !json {
                    let files: Vec<String> = r.files.iter().map(|f| escape(f)).collect();
                    if files.is_empty() {
                        println!("deleted report {id} (no dump file was left to remove)");
                    } else {
                        println!(
                            "deleted report {id}: {} ({} bytes)",
                            files.join(", "),
                            r.bytes
                        );
                    }
                }
                for p in &r.problems {
                    eprintln!("coroner: warning: {p}");
                }
                removed.push(r);
            }
            Err(StoreError::NoSuchReport { .. }) => {
                let msg = format!("no report {id} in {folder}");
                eprintln!("coroner: {msg}");
                errors.push(msg);
            }
            Err(e) => {
                return Err(e).with_context(|| format!("cannot delete report {id} in {folder}"))
            }
        }
    }
    if json {
        print_json(&envelope(vec![
            ("removed", serde_json::to_value(&removed)?),
            ("errors", json!(errors)),
        ]))?;
    }
    Ok(if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn gc(store: &mut Store, config: &coroner_config::Config, json: bool) -> anyhow::Result<ExitCode> {
    let folder = store.folder().to_path_buf();
    let shown = folder.display();
    let dir = coroner_sys::fs::open_dir_path(folder.as_os_str())
        .with_context(|| format!("cannot open the dump folder {shown}"))?;
    let (_, fs_total) = coroner_sys::fs::free_space(dir.as_fd())
        .with_context(|| format!("cannot read the size of the file system of {shown}"))?;
    let retention = Retention {
        count_per_exe: config
            .localdumps
            .as_ref()
            .map_or(DEFAULT_COUNT, |l| l.count),
        count_for: config
            .localdumps
            .as_ref()
            .map(|l| l.app_counts())
            .unwrap_or_default(),
        max_use: config.kernel.max_use.map(|s| s.bytes(fs_total)),
        keep_free: config.kernel.keep_free.map(|s| s.bytes(fs_total)),
    };
    let all = Filter::default();
    let before = store
        .list(&all)
        .with_context(|| format!("cannot list the reports in {shown}"))?;
    let outcome = store
        .gc(&retention, 0, None)
        .with_context(|| format!("cannot apply retention in {shown}"))?;
    let left: HashSet<ReportId> = store
        .list(&all)
        .with_context(|| format!("cannot list the reports in {shown}"))?
        .iter()
        .map(|r| r.id)
        .collect();
    let gone: Vec<&Report> = before.iter().filter(|r| !left.contains(&r.id)).collect();
    if json {
        let gone: Vec<Value> = gone
            .iter()
            .map(|r| {
                let files: Vec<&str> = r.dumps.iter().map(|d| d.name.as_str()).collect();
                json!({"id": r.id, "exe": r.exe, "time": r.time, "dumps": files})
            })
            .collect();
        print_json(&envelope(vec![
            (
                "retention",
                json!({
                    "count_per_exe": retention.count_per_exe,
                    "count_for": retention.count_for,
                    "max_use": retention.max_use,
                    "keep_free": retention.keep_free,
                }),
            ),
            ("removed", Value::Array(gone)),
            ("kept", json!(left.len())),
            ("outcome", serde_json::to_value(&outcome)?),
        ]))?;
    } else {
        for r in &gone {
            println!("removed {}", render_row(r));
        }
        println!(
            "gc: {} reports removed ({} files, {} bytes), {} kept in {shown}",
            outcome.reports_removed,
            outcome.files_removed,
            outcome.bytes_freed,
            left.len()
        );
    }
    for p in &outcome.problems {
        eprintln!("coroner: warning: {p}");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use coroner_types::time::UtcTime;

    fn args(words: &[&str]) -> Result<Parsed, UsageError> {
        let raw: Vec<OsString> = words.iter().map(OsString::from).collect();
        parse_args(&raw)
    }

    fn run_args(words: &[&str]) -> Args {
        match args(words) {
            Ok(Parsed::Run(a)) => a,
            other => panic!("{words:?}: {other:?}"),
        }
    }

    fn refused(words: &[&str]) -> String {
        match args(words) {
            Err(e) => e.0,
            Ok(p) => panic!("{words:?} accepted: {p:?}"),
        }
    }

    #[test]
    fn list_is_the_default_and_common_options_go_anywhere() {
        let a = run_args(&[]);
        assert_eq!(a.sub, Sub::List);
        let a = run_args(&["--folder", "d", "list", "--json", "--config", "c"]);
        assert_eq!(a.folder, Some(PathBuf::from("d")));
        assert_eq!(a.config, Some(PathBuf::from("c")));
        assert!(a.json);
        let a = run_args(&["show", "7", "--folder", "d"]);
        assert_eq!((a.sub, a.ids.clone()), (Sub::Show, vec![ReportId(7)]));
        assert_eq!(args(&["gc", "--help"]).unwrap(), Parsed::Help);
    }

    #[test]
    fn list_filters_parse() {
        let a = run_args(&[
            "list",
            "--exe",
            "app",
            "--signal",
            "SEGV",
            "--since",
            "-2d",
            "--bucket",
            "ab",
            "--tier",
            "on-demand",
            "--limit",
            "3",
            "--grouped",
        ]);
        assert_eq!(a.exe.as_deref(), Some("app"));
        assert_eq!(a.signal, Some(11));
        assert_eq!(a.since, Some(When::Ago(2 * 86_400)));
        assert_eq!(a.bucket.as_deref(), Some("ab"));
        assert_eq!(a.tier, Some(Tier::OnDemand));
        assert_eq!(a.limit, Some(3));
        assert!(a.grouped);
        assert_eq!(run_args(&["--signal", "6"]).signal, Some(6));
        assert_eq!(run_args(&["--signal", "sigbus"]).signal, Some(7));
    }

    #[test]
    fn bad_command_lines_are_usage_errors() {
        for (words, needle) in [
            (&["list", "--bogus"][..], "--bogus"),
            (&["frobnicate"], "frobnicate"),
            (&["show"], "exactly one"),
            (&["show", "1", "2"], "exactly one"),
            (&["show", "x1"], "x1"),
            (&["delete"], "at least one"),
            (&["list", "3"], "no report id"),
            (&["gc", "--exe", "a"], "--exe"),
            (&["show", "1", "--debugger", "gdb"], "--debugger"),
            (&["debug", "1", "--json"], "--json"),
            (&["debug", "1", "--debugger", "windbg"], "windbg"),
            (&["--signal", "SIGNOPE"], "SIGNOPE"),
            (&["--signal", "0"], "\"0\""),
            (&["--since", "yesterday"], "yesterday"),
            (&["--tier", "Kernel"], "Kernel"),
            (&["--limit", "0"], "--limit"),
            (&["--folder"], "--folder needs"),
        ] {
            let msg = refused(words);
            assert!(msg.contains(needle), "{words:?}: {msg}");
        }
    }

    #[test]
    fn when_parses_every_spelling() {
        assert_eq!(parse_when("1700000000"), Some(When::At(1_700_000_000)));
        assert_eq!(parse_when("2023-11-14"), Some(When::At(1_699_920_000)));
        assert_eq!(
            parse_when("2023-11-14T22:13:20"),
            Some(When::At(1_700_000_000))
        );
        assert_eq!(
            parse_when("2023-11-14 22:13:20Z"),
            Some(When::At(1_700_000_000))
        );
        assert_eq!(
            parse_when("2023-11-14T22:13"),
            Some(When::At(1_699_999_980))
        );
        assert_eq!(parse_when("-30s"), Some(When::Ago(30)));
        assert_eq!(parse_when("-30m"), Some(When::Ago(1800)));
        assert_eq!(parse_when("-1h"), Some(When::Ago(3600)));
        assert_eq!(parse_when("-1w"), Some(When::Ago(604_800)));
        for bad in [
            "",
            "-",
            "-h",
            "-1",
            "-1y",
            "--1h",
            "-1é",
            "2023-02-29",
            "2024-13-01",
            "2024-1-01",
            "2024-01-01T24:00:00",
            "2024-01-01T10",
            "2024-01-01T10:00:00:00",
            "+5",
            "-99999999999999999h",
            "2024-01-0é",
        ] {
            assert_eq!(parse_when(bad), None, "{bad:?}");
        }
        assert_eq!(parse_when("2024-02-29"), Some(When::At(1_709_164_800)));
    }

    #[test]
    fn days_from_civil_inverts_utc_time() {
        for secs in [
            0u64,
            951_782_400,
            1_709_164_800,
            4_102_444_800,
            1_234_567_890,
        ] {
            let t = UtcTime::from_epoch(secs);
            let day = days_from_civil(t.year, t.month, t.day);
            assert_eq!(day, (secs / 86_400) as i64, "{t:?}");
        }
    }

    #[test]
    fn escape_strings_reaches_every_string() {
        let mut v = json!({"a": "x\ny", "b": ["\x1b[2J", 3], "c": {"d": "ok"}});
        escape_strings(&mut v);
        assert_eq!(
            v,
            json!({"a": "x\\x0ay", "b": ["\\x1b[2J", 3], "c": {"d": "ok"}})
        );
    }
}
