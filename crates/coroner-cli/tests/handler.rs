//! `coroner handler`, the kernel tier, end to end: the real binary is run
//! the way the kernel runs a `core_pattern` pipe handler (the thirteen
//! specifiers as arguments, an ELF core stream on stdin, the crashing
//! process's pidfd as fd 3 through `withpidfd`), fed REAL cores recorded
//! without touching any global setting (`coroner dump -e -x` on `crasher
//! segv-null`, or `coroner dump --format core` of a live `crasher`).
//!
//! Each test re-creates one class of the bugs peers shipped (spec/peers.md
//! §2.3–2.4) and checks the folder, the store row, the log lines and who
//! may read what. They need root (the handler writes a root-owned folder
//! and runs its analysis as another user); as anyone else they say so and
//! pass. Nothing global is touched: every folder, config and state
//! directory lives in a temporary directory, and the one tmpfs is mounted
//! under it and unmounted on every exit path.

mod common;

use common::{coroner, crasher, dump_on_crash, only_file};
use coroner_config::kernel::{handler_pattern, install_kernel, SysctlPaths};
use coroner_store::{DumpFile, Filter, NewReport, Report, Store, Tier};
use std::ffi::OsString;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// 2023-11-14 22:13:20Z: the `%t` every test passes.
const T0: i64 = 1_700_000_000;
const SIGSEGV: i32 = 11;
const SEGV_MAPERR: i32 = 1;
/// The unprivileged user the tests crash as.
const NOBODY: u32 = 65534;
/// How long any handshake may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// Set-up
// ---------------------------------------------------------------------------

/// Root, or a line saying why the test does nothing.
fn root(test: &str) -> bool {
    if coroner_sys::uids().1 == 0 {
        return true;
    }
    eprintln!(
        "SKIP {test}: needs root (the handler owns its folder as root and runs analysis as another user)"
    );
    false
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A core recorded from a real crash, with what the crasher said about it.
struct Recorded {
    bytes: Vec<u8>,
    pid: u32,
    tid: u32,
    threads: usize,
}

/// The ELF core of `crasher segv-null` as `coroner dump -e -x --format core
/// -ma` wrote it at the crash (with its NT_SIGINFO), recorded once.
fn segv_core() -> &'static Recorded {
    static CORE: OnceLock<Recorded> = OnceLock::new();
    CORE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = dump_on_crash(
            dir.path(),
            &["-q", "--format", "core", "-ma"],
            &["segv-null"],
        );
        assert_eq!(out.status.code(), Some(128 + SIGSEGV), "{}", text(&out));
        let line = String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(coroner_crashers::parse_crashing_line)
            .unwrap_or_else(|| panic!("no crashing line: {}", text(&out)));
        let path = only_file(dir.path());
        let core = coroner_dump::corefile::CoreFile::open(&path).expect("recorded core parses");
        let c = core.crash_context().expect("recorded core has NT_SIGINFO");
        assert_eq!(c.siginfo.signo(), SIGSEGV);
        Recorded {
            bytes: fs::read(&path).unwrap(),
            pid: line.pid,
            tid: line.tid,
            threads: core.snapshot().threads.len(),
        }
    })
}

/// A `crasher live 1 1` (or another program given the same arguments),
/// optionally as another user; killed on drop.
struct Live {
    child: Child,
    pid: u32,
    _stdin: ChildStdin,
}

impl Live {
    fn start(program: &Path, uid: Option<u32>) -> Live {
        let mut cmd = Command::new(program);
        cmd.args(["live", "1", "1"])
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        if let Some(u) = uid {
            cmd.uid(u).gid(u);
        }
        let mut child = cmd.spawn().expect("spawn crasher live");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let ready = coroner_crashers::parse_ready_line(&line)
            .unwrap_or_else(|| panic!("bad ready line {line:?}"));
        Live {
            _stdin: child.stdin.take().unwrap(),
            pid: ready.pid,
            child,
        }
    }

    /// Its ELF core, written by `coroner dump --format core -ma`.
    fn core(&self, dir: &Path) -> Vec<u8> {
        let path = dir.join(format!("live-{}.core", self.pid));
        let out = Command::new(coroner())
            .args(["dump", "-q", "-ma", "--format", "core"])
            .arg(self.pid.to_string())
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let bytes = fs::read(&path).unwrap();
        fs::remove_file(&path).unwrap();
        bytes
    }

    /// `/proc/PID/stat` field 22, the start time in clock ticks.
    fn start_time(&self) -> u64 {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap();
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        // Field 3 (the state) is the first after the name.
        after.split(' ').nth(22 - 3).unwrap().parse().unwrap()
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A helper binary of the crashers package, next to `crasher`; built with
/// the cargo running the tests if this test run did not build it.
fn crashers_bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    let path = crasher().with_file_name(name);
    BUILT.get_or_init(|| {
        if path.is_file() {
            return;
        }
        let profile_dir = path.parent().unwrap();
        let profile = match profile_dir.file_name().and_then(|p| p.to_str()) {
            Some("debug") => "dev",
            Some(p) => p,
            None => panic!("odd profile directory {}", profile_dir.display()),
        };
        let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .args(["build", "--quiet", "-p", "coroner-crashers", "--bin", name])
            .args(["--profile", profile])
            .arg("--manifest-path")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../tests/crashers/Cargo.toml"
            ))
            .arg("--target-dir")
            .arg(profile_dir.parent().unwrap())
            .status()
            .unwrap();
        assert!(status.success(), "building {name}: {status}");
    });
    assert!(path.is_file(), "{} missing", path.display());
    path
}

/// A temporary directory, root-owned and traversable by all (so a user
/// granted access to one dump can reach it), holding the config, the dump
/// folder and the state directory of one test.
struct Fixture {
    dir: tempfile::TempDir,
    config: PathBuf,
}

/// What goes into the config beyond the folder.
struct Cfg<'a> {
    /// `[localdumps] type`, as TOML.
    types: &'a str,
    compress: bool,
    /// More `[kernel]` lines.
    kernel: &'a str,
}

const BOTH: Cfg<'static> = Cfg {
    types: r#"["mini", "core"]"#,
    compress: false,
    kernel: "",
};

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o711)).unwrap();
        let config = dir.path().join("coroner.toml");
        Fixture { dir, config }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The dump folder the default config names.
    fn folder(&self) -> PathBuf {
        self.path().join("dumps")
    }

    /// Write the config (root-owned, 0600) with `folder` as the dump folder.
    /// `keep_free = 0` so the host's free space never deletes a dump; the
    /// state directory is this fixture's (absent unless a test installs).
    fn config_for(&self, folder: &Path, c: &Cfg<'_>) {
        let text = format!(
            "[localdumps]\nfolder = \"{}\"\ntype = {}\ncompress = {}\n\n[kernel]\nkeep_free = 0\nstate_dir = \"{}\"\n{}\n",
            folder.display(),
            c.types,
            c.compress,
            self.path().join("state").display(),
            c.kernel
        );
        fs::write(&self.config, text).unwrap();
        fs::set_permissions(&self.config, fs::Permissions::from_mode(0o600)).unwrap();
    }

    fn config(&self, c: &Cfg<'_>) {
        self.config_for(&self.folder(), c)
    }

    /// Write a core into the fixture, to be the handler's stdin.
    fn stream(&self, bytes: &[u8]) -> PathBuf {
        let p = self.path().join("stream.core");
        fs::write(&p, bytes).unwrap();
        p
    }

    fn rows(&self) -> Vec<Report> {
        rows(&self.folder())
    }
}

/// The store's rows (none if there is no database).
fn rows(folder: &Path) -> Vec<Report> {
    if !folder.join("reports.db").exists() {
        return Vec::new();
    }
    let mut r = Store::open(folder)
        .unwrap()
        .list(&Filter::default())
        .unwrap();
    r.sort_by_key(|r| r.id);
    r
}

/// The file names in a folder, sorted.
fn names(folder: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(folder)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The handler's arguments (`%P %I %s %t %d %F %u %g %c %h %p %i %e`).
#[derive(Clone)]
struct Crash {
    pid: u32,
    tid: u32,
    signal: i32,
    time: i64,
    dumpable: u8,
    /// Run under `withpidfd`, with this process's pidfd as fd 3 (`%F` =
    /// 3); `None`: `%F` given literally (no pidfd, as before Linux 6.16).
    pidfd_of: Option<u32>,
    uid: u32,
    gid: u32,
    comm: OsString,
}

impl Crash {
    /// The recorded segv-null crash, root's, no pidfd.
    fn segv() -> Crash {
        let c = segv_core();
        Crash {
            pid: c.pid,
            tid: c.tid,
            signal: SIGSEGV,
            time: T0,
            dumpable: 1,
            pidfd_of: None,
            uid: 0,
            gid: 0,
            comm: "crasher".into(),
        }
    }

    /// A crash of `live` (its pid, its pidfd), as `uid`.
    fn of(live: &Live, uid: u32, dumpable: u8) -> Crash {
        Crash {
            pid: live.pid,
            tid: live.pid,
            dumpable,
            pidfd_of: Some(live.pid),
            uid,
            gid: uid,
            ..Crash::segv()
        }
    }

    fn command(&self, config: &Path) -> Command {
        let mut cmd = match self.pidfd_of {
            Some(p) => {
                let mut c = Command::new(crashers_bin("withpidfd"));
                c.arg(p.to_string()).arg(coroner());
                c
            }
            None => Command::new(coroner()),
        };
        let mut conf = OsString::from("--config=");
        conf.push(config);
        cmd.arg("handler").arg(conf);
        for a in [
            self.pid.to_string(),
            self.tid.to_string(),
            self.signal.to_string(),
            self.time.to_string(),
            self.dumpable.to_string(),
            if self.pidfd_of.is_some() { "3" } else { "%F" }.to_owned(),
            self.uid.to_string(),
            self.gid.to_string(),
            u64::MAX.to_string(),
            "testhost".to_owned(),
            self.pid.to_string(),
            self.tid.to_string(),
        ] {
            cmd.arg(a);
        }
        cmd.arg(&self.comm);
        cmd
    }

    /// Run the handler to the end with `stream` on stdin.
    fn run(&self, fx: &Fixture, stream: &Path) -> Ran {
        let out = self
            .command(&fx.config)
            .stdin(fs::File::open(stream).unwrap())
            .output()
            .unwrap();
        Ran {
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

struct Ran {
    status: ExitStatus,
    stderr: String,
}

impl Ran {
    /// Exit 0: the kernel never waits on a failing handler.
    fn ok(self) -> Ran {
        assert_eq!(self.status.code(), Some(0), "stderr:\n{}", self.stderr);
        self
    }

    fn says(&self, what: &str) -> bool {
        self.stderr.lines().any(|l| l.contains(what))
    }
}

/// `YYMMDD_HHMMSS` of `%t`, as the handler stamps dump names (UTC).
fn stamp(t: i64) -> String {
    let u = coroner_types::time::UtcTime::from_epoch(t as u64);
    format!(
        "{:02}{:02}{:02}_{:02}{:02}{:02}",
        u.year.rem_euclid(100),
        u.month,
        u.day,
        u.hour,
        u.minute,
        u.second
    )
}

/// `sh -c SCRIPT` as `nobody`, arguments `$1...`.
fn as_nobody(script: &str, args: &[&Path]) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("sh")
        .args(args)
        .current_dir("/")
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .unwrap()
}

/// `nobody` can reach (stat) `file`, proving the folder is traversable
/// for it, and whether it can also read it.
fn nobody_reads(file: &Path) -> bool {
    let reach = as_nobody("test -e \"$1\"", &[file]);
    assert!(
        reach.status.success(),
        "nobody cannot even reach {}: the check would prove nothing",
        file.display()
    );
    let cat = as_nobody("cat \"$1\"", &[file]);
    if cat.status.success() {
        assert_eq!(cat.stdout, fs::read(file).unwrap(), "what nobody read");
    }
    cat.status.success()
}

fn dump_of<'a>(r: &'a Report, format: &str) -> &'a DumpFile {
    r.dumps
        .iter()
        .find(|d| d.format == format)
        .unwrap_or_else(|| panic!("no {format} dump in {:?}", r.dumps))
}

// ---------------------------------------------------------------------------
// 1. The happy path
// ---------------------------------------------------------------------------

/// One stream, both dumps (the Windows WER LocalDumps promise, done from
/// the kernel's single pass): the row has the crash from NT_SIGINFO and
/// the analysis, the minidump reads back with the independent `minidump`
/// crate, the core is the stream byte for byte.
#[test]
fn one_stream_gives_a_minidump_a_core_and_an_analysed_row() {
    if !root("one_stream_gives_a_minidump_a_core_and_an_analysed_row") {
        return;
    }
    let rec = segv_core();
    let fx = Fixture::new();
    fx.config(&BOTH);
    let stream = fx.stream(&rec.bytes);
    Crash::segv().run(&fx, &stream).ok();

    let rows = fx.rows();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let r = &rows[0];
    assert_eq!(r.tier, Tier::Kernel);
    assert_eq!((r.signal, r.si_code), (SIGSEGV, SEGV_MAPERR));
    assert_eq!(r.fault_addr, Some(0));
    assert_eq!((r.pid, r.tid), (rec.pid, rec.tid));
    let sig = r.signature.as_deref().unwrap_or_default();
    assert!(sig.contains("crash_segv_null"), "signature {sig:?}");
    assert!(r.bucket.is_some() && r.analysis_json.is_some());
    assert!(!r.truncated);

    let dmp = fx.folder().join(&dump_of(r, "minidump").name);
    let md = minidump::Minidump::read_path(&dmp).expect("the .dmp parses");
    let exc: minidump::MinidumpException = md.get_stream().expect("exception stream");
    assert_eq!(exc.raw.exception_record.exception_code, SIGSEGV as u32);
    assert_eq!(exc.raw.thread_id, rec.tid);
    let threads: minidump::MinidumpThreadList = md.get_stream().expect("thread list");
    assert_eq!(
        threads.threads.len(),
        rec.threads,
        "threads: minidump vs core"
    );

    let core = fx.folder().join(&dump_of(r, "core").name);
    assert!(
        fs::read(&core).unwrap() == rec.bytes,
        "the .core is the stream"
    );
    // Nothing but the two dumps and the store.
    for n in names(&fx.folder()) {
        assert!(
            n.starts_with("reports.db") || r.dumps.iter().any(|d| d.name == n),
            "stray file {n}"
        );
    }

    // compress = true: a .core.zst that decompresses to the stream.
    let fx = Fixture::new();
    fx.config(&Cfg {
        compress: true,
        ..BOTH
    });
    let stream = fx.stream(&rec.bytes);
    Crash::segv().run(&fx, &stream).ok();
    let rows = fx.rows();
    assert_eq!(rows.len(), 1);
    let zst = dump_of(&rows[0], "core.zst");
    assert!(zst.name.ends_with(".core.zst"), "{}", zst.name);
    assert!(!rows[0].dumps.iter().any(|d| d.format == "core"));
    let packed = fs::read(fx.folder().join(&zst.name)).unwrap();
    assert!(packed.len() < rec.bytes.len());
    let unpacked = zstd::decode_all(&packed[..]).expect("the .core.zst decompresses");
    assert!(unpacked == rec.bytes, "the .core.zst holds the stream");
}

// ---------------------------------------------------------------------------
// 2. Symlinks and untrusted folders
// ---------------------------------------------------------------------------

/// CVE-2015-1338 / CVE-2015-3315 / CVE-2019-11482 (apport and abrt wrote
/// as root through symlinks the user planted): a dump folder that is a
/// symlink is refused, with a log line naming it, and nothing lands in the
/// directory it points to.
#[test]
fn symlinked_dump_folder_is_refused() {
    if !root("symlinked_dump_folder_is_refused") {
        return;
    }
    let fx = Fixture::new();
    let target = fx.path().join("target");
    fs::create_dir(&target).unwrap();
    fs::set_permissions(&target, fs::Permissions::from_mode(0o700)).unwrap();
    let link = fx.path().join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    fx.config_for(&link, &BOTH);
    let ran = Crash::segv().run(&fx, &fx.stream(&segv_core().bytes)).ok();
    assert!(
        ran.stderr.lines().any(|l| l.contains("symlink")
            && l.contains("refusing")
            && l.contains(&link.display().to_string())),
        "no refusal naming {}:\n{}",
        link.display(),
        ran.stderr
    );
    assert_eq!(
        names(&target),
        Vec::<String>::new(),
        "written through the link"
    );
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
}

/// CVE-2015-3315 / CVE-2015-1338 (ABRT and apport wrote reports by name
/// into directories where the user could plant a symlink): a symlink
/// planted under the exact names the dumps would get, pointing at a
/// victim file, is left alone; the dumps get the next free names.
#[test]
fn symlink_planted_under_the_dump_name_is_not_followed() {
    if !root("symlink_planted_under_the_dump_name_is_not_followed") {
        return;
    }
    let rec = segv_core();
    let fx = Fixture::new();
    fx.config(&BOTH);
    let folder = fx.folder();
    fs::create_dir(&folder).unwrap();
    fs::set_permissions(&folder, fs::Permissions::from_mode(0o700)).unwrap();
    let victim = fx.path().join("victim");
    fs::write(&victim, b"precious\n").unwrap();
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o644)).unwrap();
    let stem = format!("{}-crasher-{}", stamp(T0), rec.pid);
    for ext in ["dmp", "core"] {
        std::os::unix::fs::symlink(&victim, folder.join(format!("{stem}.{ext}"))).unwrap();
    }
    Crash::segv().run(&fx, &fx.stream(&rec.bytes)).ok();

    let victim_now = fs::read(&victim).unwrap();
    assert!(
        victim_now == b"precious\n",
        "victim written ({} bytes)",
        victim_now.len()
    );
    let m = fs::metadata(&victim).unwrap();
    assert_eq!(
        (m.mode() & 0o7777, m.uid()),
        (0o644, 0),
        "victim's mode/owner"
    );
    let rows = fx.rows();
    assert_eq!(rows.len(), 1);
    assert_eq!(dump_of(&rows[0], "minidump").name, format!("{stem}-1.dmp"));
    assert_eq!(dump_of(&rows[0], "core").name, format!("{stem}-1.core"));
    for ext in ["dmp", "core"] {
        let planted = folder.join(format!("{stem}.{ext}"));
        assert_eq!(
            fs::read_link(&planted).unwrap(),
            victim,
            "planted link kept"
        );
        let real = fs::symlink_metadata(folder.join(format!("{stem}-1.{ext}"))).unwrap();
        assert!(real.is_file() && real.uid() == 0, "{stem}-1.{ext}");
    }
}

/// CVE-2015-1324 / CVE-2019-11482 / CVE-2020-8833 (root writing into a
/// directory the crashing user controls): a folder owned by another user,
/// or writable by group or others, is refused as found, not repaired and
/// used.
#[test]
fn foreign_or_writable_dump_folder_is_refused() {
    if !root("foreign_or_writable_dump_folder_is_refused") {
        return;
    }
    let rec = segv_core();
    for (owner, mode, why) in [
        (NOBODY, 0o700, "owned by uid 65534"),
        (0, 0o777, "world-writable"),
        (0, 0o770, "group- or world-writable"),
    ] {
        let fx = Fixture::new();
        fx.config(&BOTH);
        let folder = fx.folder();
        fs::create_dir(&folder).unwrap();
        std::os::unix::fs::chown(&folder, Some(owner), Some(owner)).unwrap();
        fs::set_permissions(&folder, fs::Permissions::from_mode(mode)).unwrap();
        let ran = Crash::segv().run(&fx, &fx.stream(&rec.bytes)).ok();
        assert!(
            ran.stderr.lines().any(|l| l.contains(why)
                && l.contains("refusing")
                && l.contains(&folder.display().to_string())),
            "uid {owner} mode {mode:o}: no line saying {why:?}:\n{}",
            ran.stderr
        );
        assert_eq!(names(&folder), Vec::<String>::new(), "mode {mode:o}");
        let m = fs::metadata(&folder).unwrap();
        assert_eq!((m.uid(), m.mode() & 0o7777), (owner, mode), "left as found");
    }
}

// ---------------------------------------------------------------------------
// 3. PID reuse
// ---------------------------------------------------------------------------

/// CVE-2025-4598 / CVE-2025-5054 / CVE-2019-15790 (systemd-coredump,
/// apport and apport again read /proc/PID of whatever process held the
/// crashed PID by then, and gave its owner the dump): %P names process B
/// (nobody's, alive) while the kernel's pidfd is process A's. The handler
/// must notice, keep B's details out of the row, and grant nobody
/// anything.
#[test]
fn pid_reuse_with_another_process_behind_the_pidfd_is_refused() {
    if !root("pid_reuse_with_another_process_behind_the_pidfd_is_refused") {
        return;
    }
    let fx = Fixture::new();
    fx.config(&BOTH);
    let b = Live::start(&crasher(), Some(NOBODY));
    let a = Live::start(&crasher(), None);
    let crash = Crash {
        pidfd_of: Some(a.pid),
        ..Crash::of(&b, NOBODY, 1)
    };
    crash.run(&fx, &fx.stream(&segv_core().bytes)).ok();

    let rows = fx.rows();
    assert_eq!(rows.len(), 1, "the crash is still recorded");
    let r = &rows[0];
    assert_eq!(r.pid, b.pid);
    assert!(r.sensitive, "row not marked sensitive");
    assert!(r.cmdline.is_empty(), "B's cmdline leaked: {:?}", r.cmdline);
    assert_eq!(r.cwd, None, "B's cwd leaked");
    assert_eq!(r.start_time, 0, "B's start time used");
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("refused") && n.contains(&format!("pid {}", a.pid))),
        "no note about the refusal: {:?}",
        r.notes
    );
    assert!(!r.dumps.is_empty());
    for d in &r.dumps {
        assert!(
            !nobody_reads(&fx.folder().join(&d.name)),
            "{} is readable by uid {NOBODY}",
            d.name
        );
    }
}

// ---------------------------------------------------------------------------
// 4. Setuid and dump modes
// ---------------------------------------------------------------------------

/// CVE-2022-4415 (systemd-coredump let users read cores of setuid
/// programs) / CVE-2015-1324 / CVE-2017-14177: the crashing user gets its
/// dumps only for a plainly dumpable process (%d = 1); %d = 2
/// (suid_dumpable) keeps them root's. The folder lets the user reach its
/// file but not list others'.
#[test]
fn user_reads_its_dump_only_when_plainly_dumpable() {
    if !root("user_reads_its_dump_only_when_plainly_dumpable") {
        return;
    }
    let fx = Fixture::new();
    fx.config(&BOTH);
    let live = Live::start(&crasher(), Some(NOBODY));
    let stream = fx.stream(&live.core(fx.path()));

    Crash::of(&live, NOBODY, 1).run(&fx, &stream).ok();
    let rows = fx.rows();
    assert_eq!(rows.len(), 1);
    assert!(!rows[0].sensitive);
    assert_eq!(rows[0].start_time, live.start_time());
    assert!(
        !rows[0].cmdline.is_empty(),
        "metadata read through the pidfd"
    );
    assert_eq!(rows[0].dumps.len(), 2);
    for d in &rows[0].dumps {
        assert!(
            nobody_reads(&fx.folder().join(&d.name)),
            "%d=1: {} not readable by its user",
            d.name
        );
    }
    let ls = as_nobody("ls \"$1\"", &[&fx.folder()]);
    assert!(
        !ls.status.success(),
        "nobody can list the folder: {}",
        text(&ls)
    );

    Crash {
        time: T0 + 1,
        ..Crash::of(&live, NOBODY, 2)
    }
    .run(&fx, &stream)
    .ok();
    let rows = fx.rows();
    assert_eq!(rows.len(), 2);
    assert!(rows[1].sensitive);
    for d in &rows[1].dumps {
        assert!(
            !nobody_reads(&fx.folder().join(&d.name)),
            "%d=2: {} readable by uid {NOBODY}",
            d.name
        );
    }
}

/// CVE-2022-4415 again, without trusting %d: a setuid-root program run by
/// nobody (real uid 65534, effective 0, AT_SECURE) never gives nobody its
/// dump, even if the dump mode claims 1.
#[test]
fn setuid_program_dump_is_never_the_users() {
    if !root("setuid_program_dump_is_never_the_users") {
        return;
    }
    let fx = Fixture::new();
    fx.config(&BOTH);
    let bin = fx.path().join("bin");
    fs::create_dir(&bin).unwrap();
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    let suid = bin.join("crasher");
    fs::copy(crasher(), &suid).unwrap();
    fs::set_permissions(&suid, fs::Permissions::from_mode(0o4755)).unwrap();
    let live = Live::start(&suid, Some(NOBODY));
    let status = fs::read_to_string(format!("/proc/{}/status", live.pid)).unwrap();
    let uids = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    let ids: Vec<&str> = uids.split_whitespace().skip(1).collect();
    if ids[1] != "0" {
        eprintln!(
            "SKIP setuid_program_dump_is_never_the_users: {} is on a nosuid file system ({uids})",
            fx.path().display()
        );
        return;
    }
    assert_eq!(ids[0], NOBODY.to_string());
    let stream = fx.stream(&live.core(fx.path()));
    Crash::of(&live, NOBODY, 1).run(&fx, &stream).ok();
    let rows = fx.rows();
    assert_eq!(rows.len(), 1);
    assert!(rows[0].sensitive, "setuid crash not marked sensitive");
    assert_eq!(rows[0].dumps.len(), 2);
    for d in &rows[0].dumps {
        assert!(
            !nobody_reads(&fx.folder().join(&d.name)),
            "setuid: {} readable by uid {NOBODY}",
            d.name
        );
    }
}

// ---------------------------------------------------------------------------
// 5. Disk full
// ---------------------------------------------------------------------------

/// A tmpfs mounted for one test; unmounted when dropped, on every path.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        fs::create_dir(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size},mode=0700"))
            .arg("tmpfs")
            .arg(at)
            .output()
            .unwrap();
        if !out.status.success() {
            eprintln!("cannot mount a tmpfs: {}", text(&out));
            return None;
        }
        Some(Tmpfs(at.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Still busy (a child holding a file): detach it instead.
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// Disk filling (the disk-fill side of CVE-2015-1338): a full disk must
/// not leave a half-written dump that looks complete. With a 2 MiB file
/// system and a bigger core, the handler still exits 0, publishes no
/// `.core`, records the crash with a note saying why, and logs it.
#[test]
fn disk_full_leaves_no_half_written_core() {
    if !root("disk_full_leaves_no_half_written_core") {
        return;
    }
    let rec = segv_core();
    assert!(rec.bytes.len() > 2 << 20, "the core must not fit");
    let fx = Fixture::new();
    let Some(mnt) = Tmpfs::mount(&fx.path().join("small"), "2m") else {
        eprintln!("SKIP disk_full_leaves_no_half_written_core: no tmpfs");
        return;
    };
    let folder = mnt.0.join("dumps");
    fx.config_for(&folder, &BOTH);
    let ran = Crash::segv().run(&fx, &fx.stream(&rec.bytes)).ok();

    let files = names(&folder);
    assert!(
        !files.iter().any(|n| n.contains(".core")),
        "a core was published on a full disk: {files:?}\n{}",
        ran.stderr
    );
    assert!(
        ran.stderr
            .lines()
            .any(|l| l.contains("core not written") && l.contains("No space left on device")),
        "no log line about the failed write:\n{}",
        ran.stderr
    );
    let rows = rows(&folder);
    assert_eq!(rows.len(), 1, "the crash is recorded:\n{}", ran.stderr);
    assert!(
        rows[0].notes.iter().any(|n| n.contains("core not written")),
        "no note about the core: {:?}",
        rows[0].notes
    );
    assert!(!rows[0].dumps.iter().any(|d| d.format.starts_with("core")));
    // The minidump still has the stacks: memory the failed core would have
    // held is kept from the stream once the core write fails.
    let md = rows[0]
        .dumps
        .iter()
        .find(|d| d.format == "minidump")
        .unwrap_or_else(|| panic!("no minidump on a full disk:\n{}", ran.stderr));
    let dump = minidump::Minidump::read_path(folder.join(&md.name)).unwrap();
    let threads: minidump::MinidumpThreadList = dump.get_stream().unwrap();
    let exc: minidump::MinidumpException = dump.get_stream().unwrap();
    let crashing = threads
        .threads
        .iter()
        .find(|t| t.raw.thread_id == exc.raw.thread_id)
        .expect("the crashing thread");
    assert!(
        crashing.raw.stack.memory.data_size > 0,
        "the crashing thread's stack is missing"
    );
    assert!(
        rows[0]
            .signature
            .as_deref()
            .unwrap_or("")
            .contains("crash_segv_null"),
        "signature {:?}\n{}",
        rows[0].signature,
        ran.stderr
    );
    drop(mnt);
}

// ---------------------------------------------------------------------------
// 6. Crash floods
// ---------------------------------------------------------------------------

/// Denial of service by crash loop (the DoS class of peers' handler bugs):
/// a flood must not fill the disk or the CPU. 25 crashes of one
/// executable in one interval with a burst of 5 give 5 rows and 20 "rate
/// limit" lines; the first crash of the next interval says 20 were
/// suppressed before it.
#[test]
fn crash_flood_is_counted_not_dumped() {
    if !root("crash_flood_is_counted_not_dumped") {
        return;
    }
    let fx = Fixture::new();
    fx.config(&Cfg {
        types: r#"["core"]"#,
        compress: false,
        kernel: "rate_interval = 60\nrate_burst = 5\nrate_global_burst = 0",
    });
    let stream = fx.stream(&segv_core().bytes);
    let mut limited = 0;
    for i in 0..25 {
        let ran = Crash {
            time: T0 + i % 3,
            ..Crash::segv()
        }
        .run(&fx, &stream)
        .ok();
        if ran.says("rate limit") {
            limited += 1;
        }
    }
    assert_eq!(limited, 20, "crashes refused by the rate limit");
    let rows = fx.rows();
    assert_eq!(rows.len(), 5, "rows in the first interval");
    assert!(rows.iter().all(|r| r.suppressed_before == 0));
    assert_eq!(
        names(&fx.folder())
            .iter()
            .filter(|n| n.ends_with(".core"))
            .count(),
        5,
        "dumps in the first interval"
    );

    let ran = Crash {
        time: T0 + 60,
        ..Crash::segv()
    }
    .run(&fx, &stream)
    .ok();
    assert!(!ran.says("rate limit"), "{}", ran.stderr);
    let rows = fx.rows();
    assert_eq!(rows.len(), 6);
    assert_eq!(rows[5].suppressed_before, 20);
}

// ---------------------------------------------------------------------------
// 7. The handler crashing
// ---------------------------------------------------------------------------

/// The handler itself dying mid-stream (CVE-2020-15701 class: input that
/// crashes the handler; or an OOM kill) must leave nothing half-written
/// under a dump name, must not recurse into a core of itself, and must
/// leave the store usable for the next crash.
#[test]
fn handler_killed_mid_stream_leaves_nothing_half_written() {
    if !root("handler_killed_mid_stream_leaves_nothing_half_written") {
        return;
    }
    let rec = segv_core();
    let fx = Fixture::new();
    fx.config(&BOTH);
    let folder = fx.folder();
    let mut child = Crash::segv()
        .command(&fx.config)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let deadline = Instant::now() + PATIENCE;
    let alive = |child: &mut Child| {
        assert!(
            child.try_wait().unwrap().is_none(),
            "handler ended early: {:?}",
            child.try_wait()
        );
        assert!(Instant::now() < deadline, "handler never got there");
    };
    // Its first act: RLIMIT_CORE 1, so a crash of it never runs a handler.
    loop {
        alive(&mut child);
        let limits = fs::read_to_string(format!("/proc/{pid}/limits")).unwrap_or_default();
        let soft = limits
            .lines()
            .find(|l| l.starts_with("Max core file size"))
            .and_then(|l| l.split_whitespace().nth(4));
        if soft == Some("1") {
            break;
        }
        std::thread::yield_now();
    }
    // Part of the core, then wait until it sits in the nameless file.
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&rec.bytes[..1 << 20]).unwrap();
    let folder_text = folder.display().to_string();
    loop {
        alive(&mut child);
        let spooled = fs::read_dir(format!("/proc/{pid}/fd"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                let target = fs::read_link(e.path()).unwrap_or_default();
                let t = target.to_string_lossy();
                t.starts_with(&folder_text)
                    && t.ends_with("(deleted)")
                    && fs::metadata(e.path()).is_ok_and(|m| m.len() > 0)
            });
        if spooled {
            break;
        }
        std::thread::yield_now();
    }
    assert!(
        names(&folder).iter().all(|n| n.starts_with("reports.db")),
        "visible before the end: {:?}",
        names(&folder)
    );
    // std's stack-overflow handler takes the first SIGSEGV (not a guard
    // page fault: it restores the default action and returns), so the
    // signal is repeated until the process is gone.
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "the handler survives SIGSEGV");
        let _ = coroner_sys::kill(coroner_types::Pid(pid as i32), libc::SIGSEGV);
        std::thread::yield_now();
    };
    drop(stdin);
    assert_eq!(status.signal(), Some(SIGSEGV), "{status:?}");
    assert!(!status.core_dumped(), "the handler dumped core");
    assert!(
        names(&folder).iter().all(|n| n.starts_with("reports.db")),
        "left behind: {:?}",
        names(&folder)
    );
    assert!(rows(&folder).is_empty());

    // The next crash is handled normally: the store is neither locked nor
    // corrupt.
    Crash::segv().run(&fx, &fx.stream(&rec.bytes)).ok();
    let rows = rows(&folder);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].dumps.len(), 2);
}

// ---------------------------------------------------------------------------
// 8. Hostile names
// ---------------------------------------------------------------------------

/// Path traversal and hostile names from the crashing process
/// (CVE-2016-9950 / CVE-2017-10708 path traversal through report fields,
/// CVE-2021-25682 / 25683 crafted process names): file names keep only
/// [A-Za-z0-9._+-], every log line is one line without ESC, and `coroner
/// reports` shows the row on one line, escaped.
/// Two names: with a `/` (the executable's base name, which the log and
/// the list show, is then `x`) and without (the whole name is shown).
#[test]
fn hostile_command_name_stays_harmless() {
    if !root("hostile_command_name_stays_harmless") {
        return;
    }
    for (comm, shown) in [
        ("ev il\n\x1b[31mname/../x", "x"),
        ("ev il\n\x1b[31mname", r"ev il\x0a\x1b[31mname"),
    ] {
        hostile_name(comm, shown);
    }
}

fn hostile_name(comm: &str, shown: &str) {
    let fx = Fixture::new();
    fx.config(&BOTH);
    let ran = Crash {
        comm: comm.into(),
        ..Crash::segv()
    }
    .run(&fx, &fx.stream(&segv_core().bytes))
    .ok();

    let files = names(&fx.folder());
    assert!(files.iter().any(|n| n.ends_with(".dmp")), "{files:?}");
    for n in &files {
        assert!(
            n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b)),
            "file name {n:?}"
        );
    }
    assert!(
        names(fx.path()).iter().all(|n| !n.contains("name")),
        "escaped the folder"
    );
    assert!(
        !ran.stderr.contains('\x1b'),
        "ESC in the log:\n{}",
        ran.stderr
    );
    for l in ran.stderr.lines() {
        assert!(l.starts_with("coroner-handler["), "broken log line {l:?}");
    }
    assert!(
        ran.says(&format!("{shown} (signal 11) recorded")),
        "{}",
        ran.stderr
    );
    let rows = fx.rows();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].comm, comm, "stored as given");

    let out = Command::new(coroner())
        .args(["reports", "list", "--folder"])
        .arg(fx.folder())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let list = String::from_utf8(out.stdout).unwrap();
    assert_eq!(list.lines().count(), 1, "{list:?}");
    assert!(
        list.contains("SIGSEGV") && list.contains(shown) && !list.contains('\x1b'),
        "{list:?}"
    );
    let out = Command::new(coroner())
        .args(["reports", "show", "--folder"])
        .arg(fx.folder())
        .arg(rows[0].id.to_string())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let show = String::from_utf8(out.stdout).unwrap();
    assert!(!show.contains('\x1b'), "{show}");
    let escaped = comm.replace('\n', r"\x0a").replace('\x1b', r"\x1b");
    assert!(
        show.lines()
            .any(|l| l.starts_with("comm:") && l.ends_with(&escaped)),
        "{show}"
    );
}

// ---------------------------------------------------------------------------
// 9. Exclusion and double reports
// ---------------------------------------------------------------------------

/// `[kernel] exclude` (WER's ExcludedApplications): an excluded program
/// gets no row and no dump, only a log line.
#[test]
fn excluded_program_is_not_collected() {
    if !root("excluded_program_is_not_collected") {
        return;
    }
    let fx = Fixture::new();
    fx.config(&Cfg {
        kernel: "exclude = [\"crasher\"]",
        ..BOTH
    });
    let ran = Crash::segv().run(&fx, &fx.stream(&segv_core().bytes)).ok();
    assert!(ran.says("excluded"), "{}", ran.stderr);
    assert!(fx.rows().is_empty());
    assert!(
        names(&fx.folder())
            .iter()
            .all(|n| n.starts_with("reports.db")),
        "{:?}",
        names(&fx.folder())
    );
}

/// A crash the in-process runtime already reported (same boot, pid and
/// start time) is not reported twice by the kernel tier; a runtime row of
/// another process instance (other start time) does not stop it.
#[test]
fn crash_already_reported_by_the_runtime_is_not_reported_twice() {
    if !root("crash_already_reported_by_the_runtime_is_not_reported_twice") {
        return;
    }
    let fx = Fixture::new();
    fx.config(&Cfg {
        types: r#"["core"]"#,
        ..BOTH
    });
    let folder = fx.folder();
    fs::create_dir(&folder).unwrap();
    fs::set_permissions(&folder, fs::Permissions::from_mode(0o700)).unwrap();
    let live = Live::start(&crasher(), None);
    let boot_id = fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .unwrap()
        .trim()
        .to_owned();
    let runtime_row = |start_time: u64| NewReport {
        host: "testhost".into(),
        boot_id: boot_id.clone(),
        exe: crasher().display().to_string(),
        comm: "crasher".into(),
        cmdline: vec!["crasher".into()],
        cwd: Some("/".into()),
        pid: live.pid,
        tid: live.pid,
        start_time,
        uid: 0,
        gid: 0,
        signal: SIGSEGV,
        si_code: SEGV_MAPERR,
        fault_addr: Some(0),
        dumpable: Some(1),
        ..NewReport::new(Tier::Runtime, T0)
    };
    let stream = fx.stream(&segv_core().bytes);

    // Another instance of the pid: reported.
    Store::open(&folder)
        .unwrap()
        .insert(&runtime_row(live.start_time() + 1))
        .unwrap();
    let ran = Crash::of(&live, 0, 1).run(&fx, &stream).ok();
    assert!(!ran.says("already reported"), "{}", ran.stderr);
    assert_eq!(fx.rows().len(), 2);

    // This instance: not reported again.
    Store::open(&folder)
        .unwrap()
        .insert(&runtime_row(live.start_time()))
        .unwrap();
    let ran = Crash {
        time: T0 + 1,
        ..Crash::of(&live, 0, 1)
    }
    .run(&fx, &stream)
    .ok();
    assert!(ran.says("already reported"), "{}", ran.stderr);
    let rows = fx.rows();
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(
        rows.iter().filter(|r| r.tier == Tier::Kernel).count(),
        1,
        "kernel rows"
    );
}

// ---------------------------------------------------------------------------
// 10. Truncation
// ---------------------------------------------------------------------------

/// systemd's ProcessSizeMax: a core bigger than the cap is cut, marked
/// truncated, and both dumps stay readable (the core's headers patched to
/// what it holds; the minidump analysable).
#[test]
fn core_over_process_size_max_is_truncated_but_readable() {
    if !root("core_over_process_size_max_is_truncated_but_readable") {
        return;
    }
    let rec = segv_core();
    let fx = Fixture::new();
    fx.config(&Cfg {
        kernel: "process_size_max = \"1M\"",
        ..BOTH
    });
    assert!(rec.bytes.len() > 1 << 20);
    let ran = Crash::segv().run(&fx, &fx.stream(&rec.bytes)).ok();
    assert!(ran.says("truncated"), "{}", ran.stderr);
    let rows = fx.rows();
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert!(r.truncated, "row not marked truncated");
    assert!(
        r.notes.iter().any(|n| n.contains("size cap")),
        "{:?}",
        r.notes
    );
    let core = dump_of(r, "core");
    assert!(core.truncated && core.bytes <= 1 << 20, "{core:?}");
    let path = fx.folder().join(&core.name);
    assert_eq!(fs::metadata(&path).unwrap().len(), core.bytes);
    let opened = coroner_dump::corefile::CoreFile::open(&path).expect("truncated core opens");
    assert!(opened.crash_context().is_some(), "NT_SIGINFO kept");
    let dmp = fx.folder().join(&dump_of(r, "minidump").name);
    let out = Command::new(coroner())
        .arg("analyze")
        .arg(&dmp)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("SIGSEGV"));
}

// ---------------------------------------------------------------------------
// 11. Chaining
// ---------------------------------------------------------------------------

/// Chain, don't replace (STYLE rule 8), and run as root only what root
/// recorded (CVE-2015-1318 class: never a program the crashing process
/// chose): the pipe handler saved by `install_kernel` gets exactly the
/// core bytes and its own pattern's arguments; `chain = false` turns that
/// off.
#[test]
fn previous_pipe_handler_gets_the_core_and_its_arguments() {
    if !root("previous_pipe_handler_gets_the_core_and_its_arguments") {
        return;
    }
    let rec = segv_core();
    for chain in [true, false] {
        let fx = Fixture::new();
        fx.config(&Cfg {
            types: r#"["mini"]"#,
            compress: false,
            kernel: if chain { "" } else { "chain = false" },
        });
        // The previous handler: a root-owned recorder in a root-owned,
        // non-writable directory.
        let bin = fx.path().join("bin");
        let out = fx.path().join("out");
        fs::create_dir(&bin).unwrap();
        fs::create_dir(&out).unwrap();
        let recorder = bin.join("recorder");
        fs::write(
            &recorder,
            format!(
                "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{0}/args'\ncat > '{0}/core.out'\n",
                out.display()
            ),
        )
        .unwrap();
        fs::set_permissions(&recorder, fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
        // Installed the real way, against a stand-in sysctl directory.
        let sys = fx.path().join("sys");
        fs::create_dir(&sys).unwrap();
        fs::write(
            sys.join("core_pattern"),
            format!("|{} %P %s %e\n", recorder.display()),
        )
        .unwrap();
        fs::write(sys.join("core_pipe_limit"), "0\n").unwrap();
        let ours = handler_pattern(Path::new("/usr/libexec/coroner/coroner"), None).unwrap();
        install_kernel(
            &SysctlPaths { dir: sys.clone() },
            &fx.path().join("state"),
            &ours,
            4,
        )
        .unwrap();

        let ran = Crash::segv().run(&fx, &fx.stream(&rec.bytes)).ok();
        assert_eq!(fx.rows().len(), 1, "{}", ran.stderr);
        if chain {
            let args = fs::read_to_string(out.join("args"))
                .unwrap_or_else(|e| panic!("recorder not run ({e}):\n{}", ran.stderr));
            assert_eq!(args, format!("{}\n11\ncrasher\n", rec.pid));
            let core = fs::read(out.join("core.out")).unwrap();
            assert!(
                core == rec.bytes,
                "chained core differs ({} bytes)",
                core.len()
            );
        } else {
            assert_eq!(
                names(&out),
                Vec::<String>::new(),
                "chained with chain = false"
            );
        }
    }
}

/// The helper itself: the pidfd on fd 3 names the process asked for.
#[test]
fn withpidfd_puts_the_pidfd_on_fd_3() {
    let live = Live::start(&crasher(), None);
    let out = Command::new(crashers_bin("withpidfd"))
        .arg(live.pid.to_string())
        .args(["sh", "-c", "cat /proc/self/fdinfo/3"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let fdinfo = String::from_utf8_lossy(&out.stdout);
    assert!(
        fdinfo
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["Pid:", &live.pid.to_string()]),
        "{fdinfo}"
    );
}
