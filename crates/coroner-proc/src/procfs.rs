//! `/proc` readers and parsers: maps, status, stat, tasks, auxv, comm, exe.
//!
//! The parsers take bytes and never panic (no indexing or unwrapping of
//! untrusted data): `/proc` text holds names the target chose. The readers
//! are thin: read one file, hand it to the parser, name the path on error.
//!
//! Must not: ptrace, or keep state between calls.

use crate::error::{ParseError, ProcError};
use coroner_types::{Mapping, Perms, Pid, Tid};
use std::path::PathBuf;

fn proc_path(pid: Pid, rest: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{}/{rest}", pid.0))
}

/// Read `/proc/PID/<rest>` whole.
pub fn read_proc_file(pid: Pid, rest: &str) -> Result<Vec<u8>, ProcError> {
    let path = proc_path(pid, rest);
    std::fs::read(&path).map_err(|e| ProcError::read(pid, path, e))
}

fn err(line: usize, what: &'static str) -> ParseError {
    ParseError { line, what }
}

fn parse_hex(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 16 {
        return None;
    }
    b.iter().try_fold(0u64, |acc, &c| {
        let d = (c as char).to_digit(16)?;
        Some((acc << 4) | u64::from(d))
    })
}

fn parse_dec(b: &[u8]) -> Option<u64> {
    if b.is_empty() {
        return None;
    }
    b.iter().try_fold(0u64, |acc, &c| {
        let d = (c as char).to_digit(10)?;
        acc.checked_mul(10)?.checked_add(u64::from(d))
    })
}

fn parse_i32(b: &[u8]) -> Option<i32> {
    parse_dec(b).and_then(|v| i32::try_from(v).ok())
}

/// Split off the next space-delimited field; the rest starts after the
/// single separating space.
fn next_field(s: &[u8]) -> (&[u8], &[u8]) {
    match s.iter().position(|&c| c == b' ') {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, &[]),
    }
}

fn parse_maps_line(line: &[u8], n: usize) -> Result<Mapping, ParseError> {
    let (range, rest) = next_field(line);
    let (perms, rest) = next_field(rest);
    let (offset, rest) = next_field(rest);
    let (dev, rest) = next_field(rest);
    let (inode, rest) = next_field(rest);
    let dash = range
        .iter()
        .position(|&c| c == b'-')
        .ok_or(err(n, "address range without '-'"))?;
    let start = parse_hex(&range[..dash]).ok_or(err(n, "bad start address"))?;
    let end = parse_hex(&range[dash + 1..]).ok_or(err(n, "bad end address"))?;
    if end < start {
        return Err(err(n, "end address below start"));
    }
    let perms = Perms::from_text(perms).ok_or(err(n, "bad permissions (want rwxp, r--s, ...)"))?;
    let offset = parse_hex(offset).ok_or(err(n, "bad offset"))?;
    let colon = dev
        .iter()
        .position(|&c| c == b':')
        .ok_or(err(n, "device without ':'"))?;
    let dev_major = parse_hex(&dev[..colon])
        .and_then(|v| u32::try_from(v).ok())
        .ok_or(err(n, "bad device major"))?;
    let dev_minor = parse_hex(&dev[colon + 1..])
        .and_then(|v| u32::try_from(v).ok())
        .ok_or(err(n, "bad device minor"))?;
    let inode = parse_dec(inode).ok_or(err(n, "bad inode"))?;
    // The kernel pads with spaces before the name; everything after the
    // padding is the name, spaces included.
    let name_start = rest.iter().position(|&c| c != b' ').unwrap_or(rest.len());
    let name = rest.get(name_start..).unwrap_or_default().to_vec();
    Ok(Mapping {
        start,
        end,
        perms,
        offset,
        dev_major,
        dev_minor,
        inode,
        name,
    })
}

/// Parse `/proc/PID/maps`. Names may contain spaces and end in
/// ` (deleted)` (kept as is). Empty lines are skipped; any other malformed
/// line is an error naming its line number.
pub fn parse_maps(text: &[u8]) -> Result<Vec<Mapping>, ParseError> {
    text.split(|&c| c == b'\n')
        .enumerate()
        .filter(|(_, l)| !l.is_empty())
        .map(|(i, l)| parse_maps_line(l, i + 1))
        .collect()
}

/// `/proc/PID/maps`, parsed.
pub fn read_maps(pid: Pid) -> Result<Vec<Mapping>, ProcError> {
    let text = read_proc_file(pid, "maps")?;
    parse_maps(&text).map_err(|source| ProcError::Parse {
        path: proc_path(pid, "maps"),
        source,
    })
}

/// The fields of `/proc/PID/status` coroner uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcStatus {
    /// `Name:` as the kernel printed it (escaped, raw bytes).
    pub name: Vec<u8>,
    /// First letter of `State:` (`R`, `S`, `D`, `T`, `t`, `Z`, `X`, `I`).
    pub state: char,
    pub tgid: Pid,
    pub pid: Pid,
    pub ppid: Pid,
    /// `Pid(0)` when not traced.
    pub tracer_pid: Pid,
    /// Real, effective, saved, filesystem.
    pub uid: [u32; 4],
    pub gid: [u32; 4],
    pub threads: u32,
    pub sig_pnd: u64,
    pub shd_pnd: u64,
    pub sig_blk: u64,
    pub sig_ign: u64,
    pub sig_cgt: u64,
}

fn parse_ids(v: &[u8], n: usize) -> Result<[u32; 4], ParseError> {
    let mut out = [0u32; 4];
    let mut it = v
        .split(|c| c.is_ascii_whitespace())
        .filter(|f| !f.is_empty());
    for slot in out.iter_mut() {
        let f = it.next().ok_or(err(n, "fewer than 4 ids"))?;
        *slot = parse_dec(f)
            .and_then(|x| u32::try_from(x).ok())
            .ok_or(err(n, "bad id"))?;
    }
    Ok(out)
}

/// Parse `/proc/PID/status`. `State:` and `Tgid:` are required; other
/// fields missing from the text stay at their defaults.
pub fn parse_status(text: &[u8]) -> Result<ProcStatus, ParseError> {
    let mut st = ProcStatus::default();
    let (mut have_state, mut have_tgid) = (false, false);
    for (i, line) in text.split(|&c| c == b'\n').enumerate() {
        let n = i + 1;
        let Some(colon) = line.iter().position(|&c| c == b':') else {
            continue;
        };
        let key = &line[..colon];
        let raw_val = &line[colon + 1..];
        let v = raw_val.trim_ascii();
        let pid = |v: &[u8]| parse_i32(v).map(Pid).ok_or(err(n, "bad pid"));
        let hex = |v: &[u8]| parse_hex(v).ok_or(err(n, "bad signal mask"));
        match key {
            // The name may itself hold spaces: only drop the tab separator.
            b"Name" => st.name = raw_val.strip_prefix(b"\t").unwrap_or(raw_val).to_vec(),
            b"State" => {
                st.state = match v.first() {
                    Some(&c) if c.is_ascii_alphabetic() => c as char,
                    _ => return Err(err(n, "bad state")),
                };
                have_state = true;
            }
            b"Tgid" => {
                st.tgid = pid(v)?;
                have_tgid = true;
            }
            b"Pid" => st.pid = pid(v)?,
            b"PPid" => st.ppid = pid(v)?,
            b"TracerPid" => st.tracer_pid = pid(v)?,
            b"Uid" => st.uid = parse_ids(v, n)?,
            b"Gid" => st.gid = parse_ids(v, n)?,
            b"Threads" => {
                st.threads = parse_dec(v)
                    .and_then(|x| u32::try_from(x).ok())
                    .ok_or(err(n, "bad thread count"))?
            }
            b"SigPnd" => st.sig_pnd = hex(v)?,
            b"ShdPnd" => st.shd_pnd = hex(v)?,
            b"SigBlk" => st.sig_blk = hex(v)?,
            b"SigIgn" => st.sig_ign = hex(v)?,
            b"SigCgt" => st.sig_cgt = hex(v)?,
            _ => {}
        }
    }
    if !have_state {
        return Err(err(0, "no State: line"));
    }
    if !have_tgid {
        return Err(err(0, "no Tgid: line"));
    }
    Ok(st)
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`), empty if unreadable.
/// With a PID and its start time it names one process for good: the key
/// both crash tiers record, so the kernel tier can tell a crash the runtime
/// already reported.
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// `/proc/PID/status`, parsed.
pub fn read_status(pid: Pid) -> Result<ProcStatus, ProcError> {
    let text = read_proc_file(pid, "status")?;
    parse_status(&text).map_err(|source| ProcError::Parse {
        path: proc_path(pid, "status"),
        source,
    })
}

/// The state letter and start time (clock ticks after boot, field 22) from
/// `/proc/PID/stat` text. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted from the last `)`.
pub fn parse_stat(text: &[u8]) -> Result<(char, u64), ParseError> {
    let close = text
        .iter()
        .rposition(|&c| c == b')')
        .ok_or(err(1, "no ')' after comm"))?;
    let rest = text.get(close + 1..).unwrap_or_default();
    let mut fields = rest
        .split(|c| c.is_ascii_whitespace())
        .filter(|f| !f.is_empty());
    let state = fields
        .next()
        .and_then(|f| f.first())
        .filter(|c| c.is_ascii_alphabetic())
        .map(|&c| c as char)
        .ok_or(err(1, "bad state"))?;
    // `state` was field 3; field 22 is 19 further on.
    let start = fields
        .nth(18)
        .and_then(parse_dec)
        .ok_or(err(1, "bad start time"))?;
    Ok((state, start))
}

/// `btime` (boot time, seconds since the epoch) from `/proc/stat` text.
pub fn parse_btime(text: &[u8]) -> Result<u64, ParseError> {
    text.split(|&c| c == b'\n')
        .find_map(|l| l.strip_prefix(b"btime "))
        .and_then(|v| parse_dec(v.trim_ascii()))
        .ok_or(err(0, "no btime line"))
}

/// When the process started, in seconds since the epoch
/// (`btime` + `starttime / USER_HZ`).
pub fn start_time(pid: Pid) -> Result<u64, ProcError> {
    let stat = read_proc_file(pid, "stat")?;
    let (_, ticks) = parse_stat(&stat).map_err(|source| ProcError::Parse {
        path: proc_path(pid, "stat"),
        source,
    })?;
    let path = PathBuf::from("/proc/stat");
    let sys = std::fs::read(&path).map_err(|source| ProcError::Read {
        path: path.clone(),
        source,
    })?;
    let btime = parse_btime(&sys).map_err(|source| ProcError::Parse { path, source })?;
    Ok(btime + ticks / coroner_sys::clock_ticks_per_second())
}

/// The state letter of one thread (`/proc/PID/task/TID/stat`).
pub fn task_state(pid: Pid, tid: Tid) -> Result<char, ProcError> {
    let rest = format!("task/{}/stat", tid.0);
    let text = read_proc_file(pid, &rest)?;
    parse_stat(&text)
        .map(|(s, _)| s)
        .map_err(|source| ProcError::Parse {
            path: proc_path(pid, &rest),
            source,
        })
}

/// The threads of `pid` (`/proc/PID/task`), sorted by tid.
pub fn list_tasks(pid: Pid) -> Result<Vec<Tid>, ProcError> {
    let path = proc_path(pid, "task");
    let dir = std::fs::read_dir(&path).map_err(|e| ProcError::read(pid, path.clone(), e))?;
    let mut tids = Vec::new();
    for entry in dir {
        let entry = entry.map_err(|e| ProcError::read(pid, path.clone(), e))?;
        if let Some(tid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        {
            tids.push(Tid(tid));
        }
    }
    tids.sort_unstable();
    Ok(tids)
}

/// Raw `/proc/PID/auxv` (pairs of native-endian u64).
pub fn read_auxv(pid: Pid) -> Result<Vec<u8>, ProcError> {
    read_proc_file(pid, "auxv")
}

/// `/proc/PID/task/TID/comm` without its newline (raw bytes).
pub fn thread_name(pid: Pid, tid: Tid) -> Result<Vec<u8>, ProcError> {
    let mut name = read_proc_file(pid, &format!("task/{}/comm", tid.0))?;
    if name.last() == Some(&b'\n') {
        name.pop();
    }
    Ok(name)
}

/// `/proc/PID/comm` without its newline (raw bytes).
pub fn comm(pid: Pid) -> Result<Vec<u8>, ProcError> {
    let mut name = read_proc_file(pid, "comm")?;
    if name.last() == Some(&b'\n') {
        name.pop();
    }
    Ok(name)
}

/// Target of `/proc/PID/exe` (may end in ` (deleted)`).
pub fn exe_path(pid: Pid) -> Result<PathBuf, ProcError> {
    let path = proc_path(pid, "exe");
    std::fs::read_link(&path).map_err(|e| ProcError::read(pid, path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &[u8] = b"\
55d4c8a00000-55d4c8a02000 r--p 00000000 fd:01 1835023                    /usr/bin/cat
55d4c8a02000-55d4c8a07000 r-xp 00002000 fd:01 1835023                    /usr/bin/cat
7f1e2c000000-7f1e2c021000 rw-s 00000000 00:05 4242                       /memfd:my region (deleted)
7f1e2d000000-7f1e2d001000 rw-p 00000000 00:00 0 
7f1e2e000000-7f1e2e001000 r--p 00001000 103:02 77                         /home/u/My Files/lib foo.so
7ffc1a2b3000-7ffc1a2d4000 rw-p 00000000 00:00 0                          [stack]
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
";

    #[test]
    fn maps_fields_names_with_spaces_deleted_pseudo() {
        let m = parse_maps(MAPS).unwrap();
        assert_eq!(m.len(), 7);
        assert_eq!(m[0].start, 0x55d4c8a00000);
        assert_eq!(m[0].end, 0x55d4c8a02000);
        assert_eq!(m[0].name, b"/usr/bin/cat");
        assert_eq!(
            (m[0].dev_major, m[0].dev_minor, m[0].inode),
            (0xfd, 1, 1835023)
        );
        assert!(m[1].perms.exec && m[1].perms.read && !m[1].perms.write);
        assert_eq!(m[1].offset, 0x2000);
        assert!(m[2].perms.shared);
        assert_eq!(m[2].name, b"/memfd:my region (deleted)");
        assert!(m[3].name.is_empty(), "anonymous mapping has no name");
        assert_eq!(m[4].name, b"/home/u/My Files/lib foo.so");
        assert_eq!((m[4].dev_major, m[4].dev_minor), (0x103, 2));
        assert_eq!(m[5].name, b"[stack]");
        assert_eq!(m[6].end, 0xffffffffff601000);
        assert!(m[6].is_special_unreadable());
    }

    #[test]
    fn maps_garbage_is_an_error_with_line() {
        let cases: &[&[u8]] = &[
            b"hello world\n",
            b"0-1000 r--p 0 00:00 0\n10-20 rwzp 0 00:00 0\n",
            b"2000-1000 r--p 0 00:00 0\n",
            b"1000-2000 r--p 0 0000 0\n",
            b"1000-2000 r--p 0 00:00 x\n",
            b"10000000000000000-2 r--p 0 00:00 0\n",
            b"1000-2000 r--p 0 fffffffff:00 0\n",
            b"1000-2000 r-p 0 00:00 0\n",
            b"-\n",
        ];
        for c in cases {
            assert!(
                parse_maps(c).is_err(),
                "accepted {:?}",
                String::from_utf8_lossy(c)
            );
        }
        assert_eq!(parse_maps(cases[1]).unwrap_err().line, 2);
        assert_eq!(parse_maps(b"").unwrap(), vec![]);
    }

    /// Every prefix and every one-byte corruption of real text parses or
    /// fails cleanly: no panics.
    #[test]
    fn maps_parser_never_panics() {
        let own = std::fs::read("/proc/self/maps").unwrap();
        assert!(!parse_maps(&own).unwrap().is_empty());
        for input in [MAPS, own.as_slice()] {
            for cut in 0..input.len().min(600) {
                let _ = parse_maps(&input[..cut]);
            }
            let mut buf = input[..input.len().min(400)].to_vec();
            for i in 0..buf.len() {
                for b in [0u8, b' ', b'-', b':', b'\n', 0xff, b'f'] {
                    let old = buf[i];
                    buf[i] = b;
                    let _ = parse_maps(&buf);
                    let _ = parse_status(&buf);
                    let _ = parse_stat(&buf);
                    buf[i] = old;
                }
            }
        }
    }

    #[test]
    fn status_fields() {
        let text = b"Name:\tmy prog\nUmask:\t0022\nState:\tt (tracing stop)\nTgid:\t42\nNgid:\t0\n\
Pid:\t43\nPPid:\t1\nTracerPid:\t7\nUid:\t1000\t1001\t1002\t1003\nGid:\t5\t6\t7\t8\n\
Threads:\t3\nSigPnd:\t0000000000000000\nShdPnd:\t0000000000000100\nSigBlk:\t0000000000010000\n\
SigIgn:\t0000000000001000\nSigCgt:\t0000000180004a07\n";
        let s = parse_status(text).unwrap();
        assert_eq!(s.name, b"my prog");
        assert_eq!(s.state, 't');
        assert_eq!(
            (s.tgid, s.pid, s.ppid, s.tracer_pid),
            (Pid(42), Pid(43), Pid(1), Pid(7))
        );
        assert_eq!(s.uid, [1000, 1001, 1002, 1003]);
        assert_eq!(s.gid, [5, 6, 7, 8]);
        assert_eq!(s.threads, 3);
        assert_eq!(s.shd_pnd, 0x100);
        assert_eq!(s.sig_blk, 0x10000);
        assert_eq!(s.sig_ign, 0x1000);
        assert_eq!(s.sig_cgt, 0x180004a07);
        assert!(parse_status(b"Name:\tx\n").is_err());
        assert!(parse_status(b"State:\tS\nTgid:\tabc\n").is_err());
        assert!(parse_status(b"State:\tS\nTgid:\t1\nUid:\t1 2\n").is_err());
        let own = read_status(coroner_sys::getpid()).unwrap();
        assert_eq!(own.tgid, coroner_sys::getpid());
        assert!(own.threads >= 1);
    }

    #[test]
    fn stat_with_hostile_comm() {
        let text = b"1234 (a) b (c) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 \n";
        assert_eq!(parse_stat(text).unwrap(), ('S', 987654));
        assert!(parse_stat(b"1234 (x S 1").is_err());
        assert!(parse_stat(b"1234 (x) S 1 2").is_err());
        assert_eq!(
            parse_btime(b"cpu 1 2\nbtime 1700000000\n").unwrap(),
            1_700_000_000
        );
        assert!(parse_btime(b"cpu 1 2\n").is_err());
    }

    #[test]
    fn own_process_readers() {
        let me = coroner_sys::getpid();
        let tasks = list_tasks(me).unwrap();
        assert!(tasks.contains(&coroner_sys::gettid()));
        assert!(tasks.contains(&Tid(me.0)));
        assert!(tasks.windows(2).all(|w| w[0] < w[1]));
        let auxv = read_auxv(me).unwrap();
        assert_eq!(auxv.len() % 16, 0);
        assert!(!auxv.is_empty());
        let exe = exe_path(me).unwrap();
        assert_eq!(exe, std::env::current_exe().unwrap());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let started = start_time(me).unwrap();
        assert!(
            started <= now && now - started < 3600,
            "started {started}, now {now}"
        );
        assert!(!thread_name(me, Tid(me.0)).unwrap().ends_with(b"\n"));
        assert!(matches!(
            list_tasks(Pid(i32::MAX)),
            Err(ProcError::NoSuchProcess { .. })
        ));
    }
}
