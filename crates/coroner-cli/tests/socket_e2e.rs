//! The kernel tier over the coredump socket, for real: `coroner handler
//! --serve` listens, `coroner install --system --socket` points
//! `kernel.core_pattern` at it (`@@PATH`, request mode), and real crashes
//! are collected, rejected when excluded, and rejected past the rate limit
//! (the kernel then writes no core at all). A connection from a process
//! that is not dumping core is refused. The server is then restarted under
//! systemd's socket activation (`systemd-socket-activate`, the way the
//! shipped units run it) and collects again. Uninstall restores
//! `core_pattern` byte for byte.
//!
//! Alone in its test binary (it sets `core_pattern`): the sysctls are saved
//! first and put back on every exit path (a guard's `Drop`), and the
//! servers are killed by theirs. Needs root and Linux 6.17+; elsewhere it
//! says so and passes.

mod common;

use common::sysctl::{run, trim_nl, Restore, PATTERN};
use common::{coroner, crasher, tool};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running server; its stderr lines arrive on `lines`. Killed on drop.
struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Its first line: where it listens.
    listening: String,
}

impl Server {
    /// Start it and wait for its first line containing `ready`.
    fn start(cmd: &mut Command, ready: &str) -> Server {
        let mut child = cmd.stderr(Stdio::piped()).spawn().unwrap();
        let err = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let mut s = Server {
            child,
            lines,
            listening: String::new(),
        };
        s.listening = s.expect(ready);
        s
    }

    /// The next line containing `what` (earlier lines are skipped), or a
    /// failure naming what was seen instead.
    fn expect(&mut self, what: &str) -> String {
        let mut seen = Vec::new();
        loop {
            match self.lines.recv_timeout(Duration::from_secs(60)) {
                Ok(l) if l.contains(what) => return l,
                Ok(l) => seen.push(l),
                Err(e) => panic!(
                    "no server line with {what:?} ({e}); saw:\n{}",
                    seen.join("\n")
                ),
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rows(folder: &Path) -> Vec<coroner_store::Report> {
    coroner_store::Store::open(folder)
        .unwrap()
        .list(&coroner_store::Filter::default())
        .unwrap()
}

fn kernel_has_requests() -> bool {
    let rel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    coroner_config::kernel::socket_support(rel.trim())
        == coroner_config::kernel::SocketSupport::Request
}

#[test]
fn socket_server_collects_rejects_and_rate_limits_real_crashes() {
    if coroner_sys::uids().1 != 0 || !kernel_has_requests() {
        eprintln!("SKIP: needs root and Linux 6.17+ (coredump socket request mode)");
        return;
    }
    let saved = Restore::save();
    // Short paths: `@@` + the socket path must fit core_pattern's 127 bytes.
    let t = tempfile::Builder::new()
        .prefix("cs")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = t.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let server_exe = bin.join("coroner");
    std::fs::copy(coroner(), &server_exe).unwrap();
    // An excluded program: the crasher under another name.
    let excluded = bin.join("noreport");
    std::fs::copy(crasher(), &excluded).unwrap();
    let folder = t.path().join("dumps");
    let config = t.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[localdumps]\nfolder = \"{}\"\ntype = [\"mini\", \"core\"]\n\
             [kernel]\nstate_dir = \"{}\"\nkeep_free = 0\nexclude = [\"noreport\"]\n\
             rate_interval = 3600\nrate_burst = 2\n",
            folder.display(),
            t.path().join("state").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    let socket = t.path().join("s");

    let mut server = Server::start(
        Command::new(&server_exe)
            .args(["handler", "--serve", "--config"])
            .arg(&config)
            .arg("--socket")
            .arg(&socket),
        "listening on",
    );
    // Root-only: the kernel connects with its own credentials, nobody else
    // may.
    let m = std::fs::symlink_metadata(&socket).unwrap();
    assert_eq!((m.uid(), m.mode() & 0o777), (0, 0o600));

    // A process that is not dumping core is refused and hears nothing.
    let mut fake = UnixStream::connect(&socket).unwrap();
    let _ = fake.write_all(&[16, 0, 0, 0, 16, 0, 0, 0, 15, 0, 0, 0, 0, 0, 0, 0]);
    let mut answer = Vec::new();
    fake.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let _ = fake.read_to_end(&mut answer);
    assert!(
        answer.is_empty(),
        "the server answered a fake request: {answer:?}"
    );
    server.expect("not dumping core");

    let out = run(Command::new(&server_exe)
        .args(["install", "--system", "--config"])
        .arg(&config)
        .arg(format!("--socket={}", socket.display())));
    assert_eq!(
        trim_nl(&std::fs::read(PATTERN).unwrap()),
        format!("@@{}", socket.display()).as_bytes(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Collected: the kernel waits for the collecting process (WAIT), so
    // the row exists once the crashed process is reaped.
    let st = Command::new(crasher()).arg("segv-null").status().unwrap();
    assert_eq!(st.signal(), Some(libc::SIGSEGV));
    assert!(st.core_dumped(), "a collected crash is reported as dumped");
    let r = rows(&folder);
    assert_eq!(r.len(), 1, "{r:#?}");
    let row = &r[0];
    assert_eq!(Path::new(&row.exe), crasher().as_path());
    assert_eq!((row.signal, row.si_code), (libc::SIGSEGV, 1));
    assert_eq!(row.fault_addr, Some(0));
    assert_ne!(row.tid, 0);
    assert_eq!(row.dumpable, Some(1));
    assert!(
        row.signature
            .as_deref()
            .unwrap_or("")
            .contains("crash_segv_null"),
        "{:?}",
        row.signature
    );
    let dmp = folder.join(
        &row.dumps
            .iter()
            .find(|d| d.format == "minidump")
            .unwrap()
            .name,
    );
    let dump = minidump::Minidump::read_path(&dmp).unwrap();
    let exc: minidump::MinidumpException = dump.get_stream().unwrap();
    assert_eq!(
        exc.raw.exception_record.exception_code,
        libc::SIGSEGV as u32
    );
    assert_eq!(exc.raw.thread_id, row.tid);
    let core = folder.join(&row.dumps.iter().find(|d| d.format == "core").unwrap().name);
    if tool("gdb") {
        let out = run(Command::new("gdb")
            .args(["-batch", "-nx", "-ex", "bt"])
            .arg(crasher())
            .arg(&core));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("crash_segv_null"), "gdb bt:\n{text}");
    }

    // Excluded: rejected before the kernel writes anything.
    let st = Command::new(&excluded).arg("segv-null").status().unwrap();
    assert_eq!(st.signal(), Some(libc::SIGSEGV));
    assert!(!st.core_dumped(), "an excluded crash must get no core");
    server.expect("noreport is excluded");
    server.expect("rejected");
    assert_eq!(rows(&folder).len(), 1);

    // Rate limit 2 per interval: one more is collected, the rest rejected
    // and counted.
    for i in 0..3 {
        let st = Command::new(crasher()).arg("segv-null").status().unwrap();
        assert_eq!(st.signal(), Some(libc::SIGSEGV));
        assert_eq!(st.core_dumped(), i == 0, "crash {i} past a burst of 2");
    }
    server.expect("rate limit: crasher crashed 1 times over");
    server.expect("rate limit: crasher crashed 2 times over");
    assert_eq!(rows(&folder).len(), 2);

    // Socket activation: systemd binds, the server takes fd 3.
    drop(server);
    std::fs::remove_file(&socket).unwrap();
    if tool("systemd-socket-activate") {
        // It binds and listens itself and starts the server at the first
        // connection: the crash below.
        let mut activated = Server::start(
            Command::new("systemd-socket-activate")
                .arg("-l")
                .arg(&socket)
                .arg(&server_exe)
                .args(["handler", "--serve", "--config"])
                .arg(&config),
            "Listening on",
        );
        let other = bin.join("other");
        std::fs::copy(crasher(), &other).unwrap();
        let st = Command::new(&other).arg("abort").status().unwrap();
        assert_eq!(st.signal(), Some(libc::SIGABRT));
        assert!(st.core_dumped());
        let line = activated.expect("listening on");
        assert!(line.contains("the socket systemd passed"), "{line}");
        let r = rows(&folder);
        assert!(
            r.iter()
                .any(|r| Path::new(&r.exe) == other && r.signal == libc::SIGABRT),
            "{r:#?}"
        );
    }

    saved.check_uninstall_restores(&server_exe, &config);
}

/// Installing `--socket` with no server behind it would lose every crash:
/// refused, and `core_pattern` is untouched. Uses a scratch sysctl
/// directory, so it changes nothing on the host.
#[test]
fn socket_install_without_a_listening_server_is_refused() {
    if !kernel_has_requests() {
        eprintln!("SKIP: needs Linux 6.16+");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let sys = t.path().join("sys");
    std::fs::create_dir(&sys).unwrap();
    std::fs::write(sys.join("core_pattern"), "core\n").unwrap();
    std::fs::write(sys.join("core_pipe_limit"), "0\n").unwrap();
    let config = t.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[kernel]\nstate_dir = \"{}\"\n",
            t.path().join("state").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    let socket: PathBuf = t.path().join("nobody-listens");
    let out = Command::new(coroner())
        .args(["install", "--system", "--config"])
        .arg(&config)
        .arg("--sysctl-dir")
        .arg(&sys)
        .arg(format!("--socket={}", socket.display()))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    if coroner_sys::uids().1 != 0 {
        // Non-root: refused earlier (the program's owner); either way no change.
        assert!(!out.status.success());
    } else {
        assert!(!out.status.success(), "{err}");
        assert!(err.contains("nothing listens on"), "{err}");
    }
    assert_eq!(std::fs::read(sys.join("core_pattern")).unwrap(), b"core\n");
    assert_eq!(std::fs::read(sys.join("core_pipe_limit")).unwrap(), b"0\n");
}
