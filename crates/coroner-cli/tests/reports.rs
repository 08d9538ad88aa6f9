//! `coroner reports` end to end: a real crasher is dumped by `coroner dump
//! -e -x` into a folder, analysed by `coroner analyze --json`, and rows
//! pointing at that dump are put into the folder's store directly; then
//! every subcommand runs as the `coroner` binary and its output, exit code
//! and effect on the store and the files are checked.

#[macro_use]
mod common;

use common::*;
use coroner_store::{DumpFile, NewReport, ReportId, Store, Tier};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// 2023-11-14 22:13:20Z.
const T0: i64 = 1_700_000_000;
const SIGABRT: i32 = 6;
const SIGSEGV: i32 = 11;

/// A dump folder holding one real crash dump of `crasher segv-null`, and
/// the analyzer's verdict on it.
struct Fixture {
    dir: tempfile::TempDir,
    /// File name of the dump inside `dir`.
    dump: String,
    analysis: coroner_analyze::Report,
    analysis_json: String,
}

impl Fixture {
    fn new(format: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let out = dump_on_crash(dir.path(), &["-q", "--format", format], &["segv-null"]);
        assert_eq!(out.status.code(), Some(128 + SIGSEGV), "{}", text(&out));
        let path = only_file(dir.path());
        let out = Command::new(coroner())
            .args(["analyze", "--json"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let analysis_json = String::from_utf8(out.stdout).unwrap();
        let analysis: coroner_analyze::Report = serde_json::from_str(&analysis_json).unwrap();
        assert!(
            analysis.signature.text.contains("crash_segv_null"),
            "{}",
            analysis.signature.text
        );
        Fixture {
            dump: path.file_name().unwrap().to_str().unwrap().to_owned(),
            dir,
            analysis,
            analysis_json,
        }
    }

    fn folder(&self) -> &Path {
        self.dir.path()
    }

    fn store(&self) -> Store {
        Store::open(self.folder()).unwrap()
    }

    /// A copy of the dump under another name (one file per report, so a
    /// delete may remove it).
    fn copy_dump(&self, name: &str) -> String {
        std::fs::copy(self.folder().join(&self.dump), self.folder().join(name)).unwrap();
        name.to_owned()
    }

    /// Insert a report; `analysed` stores the real analysis with it.
    fn insert(
        &self,
        exe: &str,
        time: i64,
        signal: i32,
        dumps: &[&str],
        analysed: bool,
    ) -> ReportId {
        let mut n = new_report(exe, time, signal);
        n.dumps = dumps
            .iter()
            .map(|name| DumpFile {
                name: name.to_string(),
                format: if name.ends_with(".core") {
                    "core"
                } else {
                    "minidump"
                }
                .into(),
                level: Some("mini".into()),
                bytes: std::fs::metadata(self.folder().join(name)).map_or(0, |m| m.len()),
                truncated: false,
            })
            .collect();
        if analysed {
            n.signature = Some(self.analysis.signature.text.clone());
            n.bucket = Some(self.analysis.signature.bucket.clone());
            n.analysis_json = Some(self.analysis_json.clone());
        }
        self.insert_new(&n)
    }

    fn insert_new(&self, n: &NewReport) -> ReportId {
        self.store().insert(n).unwrap()
    }

    /// `coroner reports ARGS --folder DIR`.
    fn reports(&self, args: &[&str]) -> Output {
        reports_in(Some(self.folder()), args, None)
    }
}

fn new_report(exe: &str, time: i64, signal: i32) -> NewReport {
    NewReport {
        host: "testhost".into(),
        boot_id: "boot".into(),
        exe: exe.into(),
        comm: exe.rsplit('/').next().unwrap().chars().take(15).collect(),
        cmdline: vec![exe.into(), "segv-null".into()],
        cwd: Some("/".into()),
        pid: 4242,
        tid: 4242,
        start_time: 1,
        uid: 1000,
        gid: 1000,
        signal,
        si_code: 1,
        fault_addr: Some(0),
        dumpable: Some(1),
        ..NewReport::new(Tier::Kernel, time)
    }
}

/// `coroner reports ARGS [--folder DIR]` with `stdin` (or none).
fn reports_in(folder: Option<&Path>, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new("timeout");
    cmd.arg("120").arg(coroner()).arg("reports").args(args);
    if let Some(f) = folder {
        cmd.arg("--folder").arg(f);
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    input
        .write_all(stdin.unwrap_or_default().as_bytes())
        .unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    assert_ne!(out.status.code(), Some(124), "timed out: {}", text(&out));
    out
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "{}", text(o));
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The report ids of `list` output (first column), in order.
fn ids(listing: &str) -> Vec<i64> {
    listing
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect()
}

fn json(o: &Output) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&stdout(o)).unwrap();
    assert_eq!(v["schema_version"], 1, "{v}");
    v
}

#[test]
fn list_filters_groups_and_prints_json() {
    let f = Fixture::new("minidump");
    let a1 = f.insert("/usr/bin/alpha", T0, SIGSEGV, &[&f.dump], true);
    let a2 = f.insert("/usr/bin/alpha", T0 + 100, SIGSEGV, &[&f.dump], true);
    let mut beta = new_report("/opt/beta", T0 + 200, SIGABRT);
    beta.tier = Tier::OnDemand;
    beta.bucket = Some("ffff000011112222".into());
    beta.signature = Some("SIGABRT/SI_TKILL|beta!main".into());
    let b1 = f.insert_new(&beta);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let b2 = f.insert("/opt/beta", now - 60, SIGSEGV, &[], false);

    let all = stdout(&f.reports(&["list"]));
    assert_eq!(ids(&all), [b2.0, b1.0, a2.0, a1.0], "newest first:\n{all}");
    let first = all.lines().last().unwrap();
    for part in ["2023-11-14 22:13:20Z", "SIGSEGV", "alpha", "pid 4242"] {
        assert!(first.contains(part), "{part}: {first}");
    }
    assert!(
        first.contains(&f.analysis.signature.bucket[..16]),
        "{first}"
    );
    assert_eq!(
        ids(&stdout(&f.reports(&[]))),
        ids(&all),
        "list is the default"
    );

    let cases: &[(&[&str], Vec<ReportId>)] = &[
        (&["--exe", "alpha"], vec![a2, a1]),
        (&["--exe", "/opt/beta"], vec![b2, b1]),
        (&["--signal", "SIGSEGV"], vec![b2, a2, a1]),
        (&["--signal", "segv"], vec![b2, a2, a1]),
        (&["--signal", "6"], vec![b1]),
        (&["--since", "2023-11-14T22:15:00"], vec![b2, b1, a2]),
        (&["--since", &(T0 + 150).to_string()], vec![b2, b1]),
        (&["--since", "2023-11-15"], vec![b2]),
        (&["--since", "-1h"], vec![b2]),
        (
            &["--bucket", &f.analysis.signature.bucket[..6]],
            vec![a2, a1],
        ),
        (&["--tier", "on-demand"], vec![b1]),
        (&["--limit", "2"], vec![b2, b1]),
        (&["--exe", "beta", "--signal", "SIGSEGV"], vec![b2]),
    ];
    for (args, want) in cases {
        let mut full = vec!["list"];
        full.extend_from_slice(args);
        let got = ids(&stdout(&f.reports(&full)));
        let want: Vec<i64> = want.iter().map(|id| id.0).collect();
        assert_eq!(got, want, "{args:?}");
    }
    let none = f.reports(&["list", "--exe", "gamma"]);
    assert_eq!(stdout(&none), "");
    assert!(stderr(&none).contains("no reports"), "{}", text(&none));

    // Grouped: the two alpha crashes share the analyser's bucket.
    let grouped = stdout(&f.reports(&["list", "--grouped"]));
    let top = grouped.lines().next().unwrap();
    let cols: Vec<&str> = top.split_whitespace().collect();
    assert_eq!(cols[0], "2", "{grouped}");
    assert_eq!(cols[1], f.analysis.signature.bucket, "{grouped}");
    assert_eq!(cols[2], "alpha", "{grouped}");
    assert!(top.contains(&a2.to_string()), "newest id: {top}");
    assert!(top.contains("crash_segv_null"), "signature: {top}");
    assert_eq!(grouped.lines().count(), 3, "{grouped}");

    let v = json(&f.reports(&["list", "--json"]));
    let rows = v["reports"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0]["id"], b2.0);
    assert_eq!(rows[3]["exe"], "/usr/bin/alpha");
    assert_eq!(rows[3]["dumps"][0]["name"], f.dump.as_str());
    let v = json(&f.reports(&["list", "--grouped", "--json", "--exe", "alpha"]));
    let b = v["buckets"].as_array().unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!(b[0]["count"], 2);
    assert_eq!(b[0]["bucket"], f.analysis.signature.bucket.as_str());
    assert_eq!(b[0]["newest"], a2.0);
}

#[test]
fn show_prints_the_row_and_the_stored_analysis() {
    let f = Fixture::new("minidump");
    let id = f.insert("/usr/bin/alpha", T0, SIGSEGV, &[&f.dump], true);
    let out = stdout(&f.reports(&["show", &id.to_string()]));
    let line = |key: &str| {
        out.lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no {key} in\n{out}"))
            .to_owned()
    };
    assert!(line("report:").ends_with(&id.to_string()));
    assert!(line("executable:").ends_with("/usr/bin/alpha"));
    assert!(line("signal:").contains("SIGSEGV (11)"));
    assert!(line("dump file:").contains(&f.dump));
    assert!(line("bucket:").ends_with(&f.analysis.signature.bucket));
    // The analysis as `coroner analyze` prints it.
    let (_, analysis) = out.split_once("\n\n").expect("analysis after the fields");
    assert!(analysis.contains("crash_segv_null"), "{out}");
    assert!(analysis.contains("SIGSEGV"), "{out}");

    let v = json(&f.reports(&["show", &id.to_string(), "--json"]));
    assert_eq!(v["report"]["id"], id.0);
    assert_eq!(v["report"]["signal"], SIGSEGV);
    assert_eq!(
        v["analysis"]["signature"]["bucket"],
        f.analysis.signature.bucket.as_str()
    );

    let bare = f.insert("/usr/bin/alpha", T0 + 1, SIGSEGV, &[&f.dump], false);
    let v = json(&f.reports(&["show", &bare.to_string(), "--json"]));
    assert!(v["analysis"].is_null(), "{v}");
    let o = f.reports(&["show", &bare.to_string()]);
    assert!(stdout(&o).contains("analysis:"));
    assert!(stderr(&o).contains("reports analyze"), "{}", text(&o));
}

#[test]
fn analyze_stores_signature_and_bucket() {
    let f = Fixture::new("minidump");
    let id = f.insert("/usr/bin/alpha", T0, SIGSEGV, &[&f.dump], false);
    let out = stdout(&f.reports(&["analyze", &id.to_string()]));
    assert!(out.contains("crash_segv_null"), "{out}");
    let r = f.store().get(id).unwrap().unwrap();
    assert_eq!(
        r.signature.as_deref(),
        Some(f.analysis.signature.text.as_str())
    );
    assert_eq!(
        r.bucket.as_deref(),
        Some(f.analysis.signature.bucket.as_str())
    );
    let stored: coroner_analyze::Report =
        serde_json::from_str(r.analysis_json.as_deref().unwrap()).unwrap();
    assert_eq!(stored.signature, f.analysis.signature);

    let v: serde_json::Value =
        serde_json::from_str(&stdout(&f.reports(&["analyze", &id.to_string(), "--json"]))).unwrap();
    assert_eq!(
        v["signature"]["bucket"],
        f.analysis.signature.bucket.as_str()
    );

    // A report whose dump is gone says so.
    let gone = f.insert("/usr/bin/alpha", T0, SIGSEGV, &["missing.dmp"], false);
    let o = f.reports(&["analyze", &gone.to_string()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(stderr(&o).contains("missing.dmp"), "{}", text(&o));
}

#[test]
fn debug_opens_the_dump_in_coroner_dbg() {
    let f = Fixture::new("minidump");
    let id = f.insert("/usr/bin/alpha", T0, SIGSEGV, &[&f.dump], true);
    let o = reports_in(
        Some(f.folder()),
        &["debug", &id.to_string()],
        Some("k\nq\n"),
    );
    let out = stdout(&o);
    assert!(out.contains("Call Site"), "{}", text(&o));
    assert!(out.contains("crasher!crash_segv_null"), "{}", text(&o));

    if tool("lldb") {
        let o = reports_in(
            Some(f.folder()),
            &["debug", &id.to_string(), "--debugger", "lldb"],
            Some("bt\nquit\n"),
        );
        assert!(stdout(&o).contains("crash_segv_null"), "{}", text(&o));
    }

    // gdb reads ELF cores only: a minidump-only report is refused clearly.
    let o = f.reports(&["debug", &id.to_string(), "--debugger", "gdb"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = stderr(&o);
    assert!(
        err.contains("no ELF core") && err.contains("gdb") && err.contains(&id.to_string()),
        "{err}"
    );
}

#[test]
fn a_core_goes_to_gdb_and_to_the_analyzer() {
    let core = Fixture::new("core");
    let exe = crasher();
    let id = core.insert(exe.to_str().unwrap(), T0, SIGSEGV, &[&core.dump], false);
    if tool("gdb") {
        let o = reports_in(
            Some(core.folder()),
            &["debug", &id.to_string(), "--debugger", "gdb"],
            Some("bt\n"),
        );
        assert!(stdout(&o).contains("crash_segv_null"), "{}", text(&o));
    }
    // The analyzer takes the core when there is no minidump.
    let out = stdout(&core.reports(&["analyze", &id.to_string()]));
    assert!(out.contains("crash_segv_null"), "{out}");
}

#[test]
fn delete_removes_rows_and_files() {
    let f = Fixture::new("minidump");
    let one = f.copy_dump("one.dmp");
    let two = f.copy_dump("two.dmp");
    let id1 = f.insert("/usr/bin/alpha", T0, SIGSEGV, &[&one], true);
    let id2 = f.insert("/usr/bin/alpha", T0 + 1, SIGSEGV, &[&two], true);
    let out = stdout(&f.reports(&["delete", &id1.to_string()]));
    assert!(out.contains(&format!("deleted report {id1}")), "{out}");
    assert!(out.contains("one.dmp"), "{out}");
    assert!(!f.folder().join(&one).exists());
    assert!(f.folder().join(&two).exists());
    assert!(f.store().get(id1).unwrap().is_none());
    assert!(f.store().get(id2).unwrap().is_some());

    // Deleting it again, or an id that never was: exit 1 naming the id,
    // and the good ids in the same call are still deleted.
    let o = f.reports(&["delete", &id1.to_string(), "777777", &id2.to_string()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("no report {id1}")) && err.contains("no report 777777"),
        "{err}"
    );
    assert!(!f.folder().join(&two).exists());
    assert!(f.store().get(id2).unwrap().is_none());
}

/// A configuration file making `folder` the LocalDumps folder with `count`.
fn config_file(dir: &Path, folder: &Path, count: u32) -> PathBuf {
    let path = dir.join("coroner.toml");
    let folder = folder
        .to_str()
        .unwrap()
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    // keep_free = 0: the test must not depend on the disk's free space.
    std::fs::write(
        &path,
        format!("[localdumps]\nfolder = \"{folder}\"\ncount = {count}\n[kernel]\nkeep_free = 0\n"),
    )
    .unwrap();
    path
}

#[test]
fn gc_keeps_the_newest_per_executable() {
    let f = Fixture::new("minidump");
    let mut alpha = Vec::new();
    for i in 0..3 {
        let name = f.copy_dump(&format!("alpha{i}.dmp"));
        alpha.push((
            f.insert("/usr/bin/alpha", T0 + i, SIGSEGV, &[&name], true),
            name,
        ));
    }
    let mut beta = Vec::new();
    for i in 0..2 {
        let name = f.copy_dump(&format!("beta{i}.dmp"));
        beta.push((
            f.insert("/opt/beta", T0 + 10 + i, SIGSEGV, &[&name], false),
            name,
        ));
    }
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = config_file(cfg_dir.path(), f.folder(), 1);

    // The folder comes from the configuration.
    let o = reports_in(None, &["list", "--config", cfg.to_str().unwrap()], None);
    assert_eq!(ids(&stdout(&o)).len(), 5);

    let o = reports_in(None, &["gc", "--config", cfg.to_str().unwrap()], None);
    let out = stdout(&o);
    assert!(out.contains("3 reports removed"), "{}", text(&o));
    let removed: Vec<&str> = out.lines().filter(|l| l.starts_with("removed")).collect();
    assert_eq!(removed.len(), 3, "{out}");
    let left: Vec<ReportId> = f
        .store()
        .list(&Default::default())
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(left, [beta[1].0, alpha[2].0]);
    for (id, name) in alpha.iter().take(2).chain(beta.iter().take(1)) {
        assert!(!f.folder().join(name).exists(), "{id}: {name} left");
    }
    assert!(f.folder().join(&alpha[2].1).exists());
    assert!(f.folder().join(&beta[1].1).exists());

    // Nothing more to do; JSON says so.
    let v = json(&reports_in(
        None,
        &["gc", "--json", "--config", cfg.to_str().unwrap()],
        None,
    ));
    assert_eq!(v["retention"]["count_per_exe"], 1);
    assert_eq!(v["removed"].as_array().unwrap().len(), 0);
    assert_eq!(v["kept"], 2);
}

/// `[localdumps.apps.NAME] count` (WER's per-application DumpCount)
/// overrides the folder's count for that executable.
#[test]
fn gc_honours_a_per_application_count() {
    let f = Fixture::new("minidump");
    let ids_of = |exe: &str, base: i64| -> Vec<ReportId> {
        (0..3)
            .map(|i| {
                let name = f.copy_dump(&format!("{}{i}.dmp", exe.rsplit('/').next().unwrap()));
                f.insert(exe, T0 + base + i, SIGSEGV, &[&name], true)
            })
            .collect()
    };
    let alpha = ids_of("/usr/bin/alpha", 0);
    let beta = ids_of("/opt/beta", 10);
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = config_file(cfg_dir.path(), f.folder(), 1);
    let mut text_cfg = std::fs::read_to_string(&cfg).unwrap();
    text_cfg.push_str("[localdumps.apps.alpha]\ncount = 2\n");
    std::fs::write(&cfg, text_cfg).unwrap();
    let v = json(&reports_in(
        None,
        &["gc", "--json", "--config", cfg.to_str().unwrap()],
        None,
    ));
    assert_eq!(v["retention"]["count_for"]["alpha"], 2, "{v}");
    assert_eq!(v["removed"].as_array().unwrap().len(), 3, "{v}");
    let mut left: Vec<ReportId> = f
        .store()
        .list(&Default::default())
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    left.sort();
    let mut want = vec![alpha[1], alpha[2], beta[2]];
    want.sort();
    assert_eq!(left, want);
}

#[test]
fn hostile_strings_print_escaped_on_one_line() {
    let f = Fixture::new("minidump");
    let evil = "/tmp/evil\nname\x1b[31m";
    let mut a = f.analysis.clone();
    a.threads[0].name = Some("t\x1b]0;pwned\x07".into());
    a.process.exe = Some("/x\ny\u{202e}".into());
    let mut n = new_report(evil, T0, SIGSEGV);
    n.analysis_json = Some(serde_json::to_string(&a).unwrap());
    n.signature = Some("sig\nnature".into());
    n.bucket = Some("b\x1bucket".into());
    let id = f.insert_new(&n);

    let out = stdout(&f.reports(&["list"]));
    assert_eq!(out.lines().count(), 1, "{out:?}");
    assert!(out.contains("evil\\x0aname\\x1b[31m"), "{out:?}");
    assert!(!out.contains('\x1b'), "{out:?}");
    let grouped = stdout(&f.reports(&["list", "--grouped"]));
    assert_eq!(grouped.lines().count(), 1, "{grouped:?}");
    assert!(!grouped.contains('\x1b') && grouped.contains("sig\\x0anature"));

    let out = stdout(&f.reports(&["show", &id.to_string()]));
    assert!(
        !out.chars()
            .any(|c| c == '\x1b' || c == '\x07' || c == '\u{202e}'),
        "{out:?}"
    );
    assert!(out.contains("/tmp/evil\\x0aname\\x1b[31m"), "{out:?}");
    assert!(out.contains("t\\x1b]0;pwned\\x07"), "{out:?}");
    assert!(out.contains("/x\\x0ay\\u{202e}"), "{out:?}");
}

#[test]
fn errors_name_what_is_wrong() {
    let f = Fixture::new("minidump");
    f.insert("/usr/bin/alpha", T0, SIGSEGV, &[&f.dump], true);
    for sub in ["show", "analyze", "debug"] {
        let o = f.reports(&[sub, "424242"]);
        assert_eq!(o.status.code(), Some(1), "{sub}: {}", text(&o));
        assert!(
            stderr(&o).contains("no report 424242"),
            "{sub}: {}",
            text(&o)
        );
    }
    for args in [
        &["list", "--bogus"][..],
        &["show"],
        &["show", "abc"],
        &["frob"],
        &["list", "--signal", "SIGNOPE"],
        &["list", "--since", "tomorrow"],
        &["gc", "--exe", "alpha"],
    ] {
        let o = f.reports(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(stderr(&o).starts_with("coroner: reports:"), "{}", text(&o));
    }

    let empty = tempfile::tempdir().unwrap();
    let missing = empty.path().join("nope");
    let o = reports_in(Some(&missing), &["list"], None);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        stderr(&o).contains("does not exist") && stderr(&o).contains("nope"),
        "{}",
        text(&o)
    );
    let o = reports_in(Some(empty.path()), &["list"], None);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(stderr(&o).contains("no report database"), "{}", text(&o));
    assert!(
        std::fs::read_dir(empty.path()).unwrap().next().is_none(),
        "reading a folder must not create a store in it"
    );
    let o = reports_in(None, &["list", "--config", missing.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(stderr(&o).contains("nope"), "{}", text(&o));
}
