//! Driving `coroner dbg` from the end-to-end tests: a whole script on
//! stdin ([`dbg`]), or a conversation ([`Conversation`]) where each command
//! is followed by an `.echo` marker and the test reads up to that marker
//! before it goes on. The marker is the handshake: the debugger prints it
//! only once it is back at its prompt, so nothing here waits on time.

use super::coroner;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a test waits for a line before it gives up and fails: a
/// guard against a hung debugger, never a way to synchronise.
const HANG: Duration = Duration::from_secs(120);

/// Run `coroner dbg ARGS` with `script` on stdin (no core files, bounded
/// by `timeout`). Returns the output; stdout is the session transcript.
pub fn dbg(args: &[&OsStr], script: &str) -> Output {
    dbg_env(args, script, &[])
}

/// [`dbg`] with extra environment variables.
pub fn dbg_env(args: &[&OsStr], script: &str, env: &[(&str, &OsStr)]) -> Output {
    let mut child = dbg_command(args, env)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn coroner dbg");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(script.as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_ne!(
        out.status.code(),
        Some(124),
        "coroner dbg timed out:\n{}",
        text(&out)
    );
    out
}

/// `sh -c 'ulimit -c 0; exec timeout 120 coroner dbg ARGS'`, stdin and
/// stderr piped.
fn dbg_command(args: &[&OsStr], env: &[(&str, &OsStr)]) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("ulimit -c 0; exec timeout 120 \"$@\"")
        .arg("sh")
        .arg(coroner())
        .arg("dbg")
        .args(args)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

pub fn text(o: &Output) -> String {
    format!(
        "--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

pub fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

/// The `Call Site` column of a `k` listing in a transcript, between the
/// header and the next blank/prompt-less line.
pub fn call_sites(transcript: &str, nth: usize) -> Vec<String> {
    let mut blocks = transcript.split("Child-SP          RetAddr               Call Site\n");
    let block = blocks.nth(nth + 1).unwrap_or("");
    block
        .lines()
        .take_while(|l| l.len() > 36 && l.as_bytes()[8] == b'`')
        .map(|l| l[40..].trim().split(" [").next().unwrap_or("").to_string())
        .collect()
}

/// The lines between the line `==NAME==` (from `.echo ==NAME==`) and the
/// next such marker line: the output of the commands in between.
pub fn section(transcript: &str, name: &str) -> String {
    let start = format!("=={name}==");
    let is_mark = |l: &str| l.len() > 4 && l.starts_with("==") && l.ends_with("==");
    let mut lines = transcript.lines().skip_while(|l| *l != start).skip(1);
    let mut out = String::new();
    for l in lines.by_ref().take_while(|l| !is_mark(l)) {
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// Where a stop (a step, a breakpoint, `r`) left the thread: the last
/// `module!symbol+0xoff:` line and the instruction line under it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    /// `crasher!crash_recover_fault+0x1c`
    pub symbol: String,
    pub address: u64,
    /// Instruction bytes as printed (`8808`).
    pub bytes: String,
    /// `mov     byte ptr [rax],cl`
    pub instruction: String,
}

impl Place {
    /// The last place shown in `out`.
    pub fn last_in(out: &str) -> Option<Place> {
        let lines: Vec<&str> = out.lines().collect();
        for i in (1..lines.len()).rev() {
            let l = lines[i];
            let addr = l.get(..17).filter(|a| a.as_bytes()[8] == b'`');
            let Some(addr) = addr else { continue };
            let Ok(address) = u64::from_str_radix(&addr.replace('`', ""), 16) else {
                continue;
            };
            let symbol = lines[i - 1].strip_suffix(':')?.to_string();
            let rest = l[17..].trim_start();
            let (bytes, instruction) = rest.split_once(' ')?;
            return Some(Place {
                symbol,
                address,
                bytes: bytes.to_string(),
                instruction: instruction.trim().to_string(),
            });
        }
        None
    }

    /// The function part of the symbol (`crasher!crash_recover_fault`).
    pub fn function(&self) -> &str {
        self.symbol.split('+').next().unwrap_or(&self.symbol)
    }

    pub fn len(&self) -> u64 {
        self.bytes.len() as u64 / 2
    }

    /// The target of a direct call or jump: the `(00005555`55554000)` at
    /// the end of the instruction.
    pub fn branch_target(&self) -> Option<u64> {
        let open = self.instruction.rfind('(')?;
        let inner = self.instruction[open + 1..].strip_suffix(')')?;
        u64::from_str_radix(&inner.replace('`', ""), 16).ok()
    }
}

/// A `coroner dbg` session driven one command at a time.
pub struct Conversation {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    /// Everything stdout said so far.
    pub transcript: String,
    marks: u32,
    ended: bool,
}

impl Conversation {
    pub fn start(args: &[&OsStr]) -> Conversation {
        Conversation::start_env(args, &[])
    }

    pub fn start_env(args: &[&OsStr], env: &[(&str, &OsStr)]) -> Conversation {
        let mut child = dbg_command(args, env)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn coroner dbg");
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        let mut err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    return;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let stdin = child.stdin.take();
        Conversation {
            child,
            stdin,
            lines,
            stderr,
            transcript: String::new(),
            marks: 0,
            ended: false,
        }
    }

    /// Type `line`, then an `.echo` of a fresh marker; returns the marker.
    /// Commands that run the target (`g`, `p`) are answered at the next
    /// break, so the marker comes after that break's output.
    pub fn send(&mut self, line: &str) -> String {
        self.marks += 1;
        let mark = format!("@@mark-{}@@", self.marks);
        let stdin = self.stdin.as_mut().expect("stdin still open");
        writeln!(stdin, "{line}\n.echo {mark}").expect("write a command");
        stdin.flush().unwrap();
        mark
    }

    /// Run one command line; returns what it printed (up to the prompt
    /// that follows it).
    pub fn cmd(&mut self, line: &str) -> String {
        let mark = self.send(line);
        self.until(|l| l == mark)
    }

    /// Read stdout up to and including the first line `done` accepts, and
    /// return it all; at the end of the output, what there was.
    pub fn until(&mut self, mut done: impl FnMut(&str) -> bool) -> String {
        let mut got = String::new();
        if self.ended {
            return got;
        }
        loop {
            match self.lines.recv_timeout(HANG) {
                Ok(line) => {
                    self.transcript.push_str(&line);
                    self.transcript.push('\n');
                    let stop = done(&line);
                    if !line.starts_with("@@mark-") {
                        got.push_str(&line);
                        got.push('\n');
                    }
                    if stop {
                        return got;
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.ended = true;
                    return got;
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.stop();
                    panic!(
                        "coroner dbg hung (nothing for {} s):\n{}",
                        HANG.as_secs(),
                        self.text()
                    );
                }
            }
        }
    }

    /// Transcript and stderr so far, for failure messages.
    pub fn text(&self) -> String {
        format!(
            "--- stdout\n{}\n--- stderr\n{}",
            self.transcript,
            self.stderr.lock().unwrap()
        )
    }

    /// Close stdin (end of input) and wait for the debugger to exit.
    pub fn finish(mut self) -> (ExitStatus, String) {
        drop(self.stdin.take());
        self.until(|_| false);
        let st = self.child.wait().unwrap();
        assert_ne!(
            st.code(),
            Some(124),
            "coroner dbg timed out:\n{}",
            self.text()
        );
        let t = self.text();
        (st, t)
    }
}

impl Conversation {
    /// End a debugger that is still running (a failed test): SIGTERM to
    /// `timeout`, which passes it on to `coroner dbg` (a SIGKILL would
    /// leave the debugger behind); the debugger's end kills what it
    /// launched.
    fn stop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(self.child.id().to_string())
                .status();
            let _ = self.child.wait();
        }
    }
}

impl Drop for Conversation {
    fn drop(&mut self) {
        self.stop();
    }
}
