//! Which memory a dump of a given level holds.
//!
//! Owns: [`DumpLevel`] (mini, mini-plus, full) and [`plan_regions`], the
//! translation of a level into a list of address ranges. Both dump formats
//! (minidump and ELF core) use the same plan, so the two hold the same bytes.
//!
//! Must not: read target memory or do any I/O. The plan is computed from the
//! [`ProcessSnapshot`] alone (mappings, thread registers, the raw smaps text
//! when the snapshot carries it).
//!
//! Level rules:
//! - **mini**: each thread's stack, from its SP minus the 128-byte red zone
//!   (rounded down to a page) to the end of the stack mapping, capped at
//!   [`MAX_STACK_BYTES`]; and [`IP_CONTEXT_BYTES`] either side of each
//!   thread's instruction pointer, clipped to the readable mapping holding
//!   it. When a [`CrashContext`] is given, its SP and IP are used as well
//!   (the faulting frame may be on another stack than the signal handler).
//! - **mini-plus**: mini, plus every private, readable, writable mapping,
//!   except `[vvar]`/`[vsyscall]`, device (`io`) mappings, and areas that are
//!   reserved but untouched: smaps `Rss: 0 kB` when smaps is known, else
//!   anonymous mappings of [`UNTOUCHED_HEURISTIC_BYTES`] or more (ASan-style
//!   shadow reservations). Shared mappings, read-only file mappings and
//!   `PROT_NONE` guard areas are not private writable memory.
//! - **full**: every readable mapping except `[vvar]`/`[vsyscall]` and
//!   device (`io`) mappings.
//!
//! Invariants of the result: sorted by start, non-overlapping, no empty
//! region, and each region lies inside one mapping (touching pieces are only
//! merged when they belong to the same mapping), so an ELF core writer can
//! give each region the permissions of its mapping.

use coroner_proc::ProcessSnapshot;
use coroner_types::{CrashContext, Mapping};
use std::fmt;
use std::str::FromStr;

/// Bytes below SP the x86-64 ABI lets leaf functions use without moving SP.
pub const RED_ZONE: u64 = 128;
/// Most stack bytes a mini dump keeps per thread (from SP upwards).
pub const MAX_STACK_BYTES: u64 = 1024 * 1024;
/// Bytes kept before and after each thread's instruction pointer.
pub const IP_CONTEXT_BYTES: u64 = 256;
/// Without smaps, anonymous writable mappings this large or larger are taken
/// to be reservations (sanitizer shadow, GC heaps) and left out of mini-plus.
pub const UNTOUCHED_HEURISTIC_BYTES: u64 = 64 << 30;

const PAGE: u64 = 4096;

/// How much memory a dump holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum DumpLevel {
    /// Threads, stacks, code around each IP, modules, system information.
    #[default]
    Mini,
    /// Mini plus all private writable memory (heap, data, anonymous maps).
    MiniPlus,
    /// All readable memory.
    Full,
}

impl DumpLevel {
    /// The canonical spelling, as accepted by [`FromStr`].
    pub fn as_str(&self) -> &'static str {
        match self {
            DumpLevel::Mini => "mini",
            DumpLevel::MiniPlus => "mini-plus",
            DumpLevel::Full => "full",
        }
    }
}

impl fmt::Display for DumpLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A dump level name that is none of `mini`, `mini-plus`, `full`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown dump level {given:?} (expected mini, mini-plus or full)")]
pub struct ParseDumpLevelError {
    pub given: String,
}

impl FromStr for DumpLevel {
    type Err = ParseDumpLevelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "mini" => Ok(DumpLevel::Mini),
            "mini-plus" | "miniplus" | "mini_plus" => Ok(DumpLevel::MiniPlus),
            "full" => Ok(DumpLevel::Full),
            _ => Err(ParseDumpLevelError {
                given: s.to_owned(),
            }),
        }
    }
}

/// A range of target addresses: `[start, start + len)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Region {
    pub start: u64,
    pub len: u64,
}

impl Region {
    /// One past the last address (saturating at `u64::MAX`).
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.len)
    }
    /// Whether `addr` lies in the region.
    pub fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end()
    }
}

/// Per-mapping facts from `/proc/PID/smaps` that planning uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct SmapsFacts {
    rss_kb: Option<u64>,
    io: bool,
}

/// Parse raw smaps text into `(start, facts)` pairs, sorted by start.
/// Lines that do not parse are ignored (smaps is outside input).
fn parse_smaps(text: &[u8]) -> Vec<(u64, SmapsFacts)> {
    let mut out: Vec<(u64, SmapsFacts)> = Vec::new();
    for line in text.split(|&b| b == b'\n') {
        let Ok(line) = std::str::from_utf8(line) else {
            continue;
        };
        // A header line starts with "start-end ".
        let first = line.split(' ').next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-') {
            if let (Ok(start), Ok(_)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) {
                out.push((start, SmapsFacts::default()));
                continue;
            }
        }
        let Some((_, facts)) = out.last_mut() else {
            continue;
        };
        if let Some(rest) = line.strip_prefix("Rss:") {
            let num = rest.trim().trim_end_matches("kB").trim();
            facts.rss_kb = num.parse().ok();
        } else if let Some(rest) = line.strip_prefix("VmFlags:") {
            facts.io = rest.split_whitespace().any(|f| f == "io");
        }
    }
    out.sort_by_key(|(s, _)| *s);
    out
}

fn facts_for(smaps: &[(u64, SmapsFacts)], start: u64) -> Option<SmapsFacts> {
    smaps
        .binary_search_by_key(&start, |(s, _)| *s)
        .ok()
        .map(|i| smaps[i].1)
}

/// Whether a mapping may be read at all by a dump.
fn dumpable(m: &Mapping, facts: Option<SmapsFacts>) -> bool {
    m.perms.read && !m.is_empty() && !m.is_special_unreadable() && !facts.is_some_and(|f| f.io)
}

/// Whether mini-plus keeps the whole mapping.
fn private_writable(m: &Mapping, facts: Option<SmapsFacts>) -> bool {
    if !dumpable(m, facts) || !m.perms.write || m.perms.shared {
        return false;
    }
    match facts.and_then(|f| f.rss_kb) {
        Some(rss) => rss > 0,
        None => m.is_file() || m.len() < UNTOUCHED_HEURISTIC_BYTES,
    }
}

/// A piece of a plan: `[start, end)` inside mapping `map`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Piece {
    start: u64,
    end: u64,
    map: usize,
}

fn mapping_index(snap: &ProcessSnapshot, addr: u64) -> Option<usize> {
    let i = snap.mappings.partition_point(|m| m.end <= addr);
    snap.mappings.get(i).filter(|m| m.contains(addr)).map(|_| i)
}

/// The stack piece for a thread whose stack pointer is `sp`.
fn stack_piece(snap: &ProcessSnapshot, smaps: &[(u64, SmapsFacts)], sp: u64) -> Option<Piece> {
    // The red zone may lie below the mapping holding SP only in a broken
    // process; look SP itself up and clip.
    let idx = mapping_index(snap, sp)?;
    let m = &snap.mappings[idx];
    if !dumpable(m, facts_for(smaps, m.start)) {
        return None;
    }
    let start = (sp.saturating_sub(RED_ZONE) & !(PAGE - 1)).max(m.start);
    let end = start.saturating_add(MAX_STACK_BYTES).min(m.end);
    // Always keep at least the frames near SP, even when the cap would leave
    // SP itself out (cannot happen with a page-rounded start, but keep the
    // guarantee explicit).
    let end = end.max(sp.saturating_add(PAGE).min(m.end));
    (end > start).then_some(Piece {
        start,
        end,
        map: idx,
    })
}

/// The code piece around instruction pointer `ip`.
fn ip_piece(snap: &ProcessSnapshot, smaps: &[(u64, SmapsFacts)], ip: u64) -> Option<Piece> {
    let idx = mapping_index(snap, ip)?;
    let m = &snap.mappings[idx];
    if !dumpable(m, facts_for(smaps, m.start)) {
        return None;
    }
    let start = ip.saturating_sub(IP_CONTEXT_BYTES).max(m.start);
    let end = ip.saturating_add(IP_CONTEXT_BYTES).min(m.end);
    (end > start).then_some(Piece {
        start,
        end,
        map: idx,
    })
}

/// Memory a dump of this level holds: sorted, merged, non-overlapping, each
/// region inside one mapping (see the module docs for the rules).
pub fn plan_regions(
    snap: &ProcessSnapshot,
    level: DumpLevel,
    crash: Option<&CrashContext>,
) -> Vec<Region> {
    let smaps = snap
        .files
        .smaps
        .as_deref()
        .map(parse_smaps)
        .unwrap_or_default();
    let mut pieces: Vec<Piece> = Vec::new();

    let mut sps_ips: Vec<(u64, u64)> = snap
        .threads
        .iter()
        .filter_map(|t| t.regs.as_ref().map(|r| (r.sp(), r.pc())))
        .collect();
    if let Some(c) = crash {
        sps_ips.push((c.regs.sp(), c.regs.pc()));
    }
    for (sp, ip) in sps_ips {
        pieces.extend(stack_piece(snap, &smaps, sp));
        pieces.extend(ip_piece(snap, &smaps, ip));
    }

    for (idx, m) in snap.mappings.iter().enumerate() {
        let facts = facts_for(&smaps, m.start);
        let keep = match level {
            DumpLevel::Mini => false,
            DumpLevel::MiniPlus => private_writable(m, facts),
            DumpLevel::Full => dumpable(m, facts),
        };
        if keep {
            pieces.push(Piece {
                start: m.start,
                end: m.end,
                map: idx,
            });
        }
    }

    pieces.sort();
    let mut merged: Vec<Piece> = Vec::with_capacity(pieces.len());
    for p in pieces {
        match merged.last_mut() {
            Some(last) if last.map == p.map && p.start <= last.end => {
                last.end = last.end.max(p.end);
            }
            _ => merged.push(p),
        }
    }
    merged
        .into_iter()
        .map(|p| Region {
            start: p.start,
            len: p.end - p.start,
        })
        .collect()
}

/// The stack range a dump keeps for each stack pointer in `sps` (the same
/// ranges [`plan_regions`] includes), `None` where SP is not in a dumpable
/// mapping.
pub fn stack_ranges(snap: &ProcessSnapshot, sps: &[u64]) -> Vec<Option<Region>> {
    let smaps = snap
        .files
        .smaps
        .as_deref()
        .map(parse_smaps)
        .unwrap_or_default();
    sps.iter()
        .map(|&sp| {
            stack_piece(snap, &smaps, sp).map(|p| Region {
                start: p.start,
                len: p.end - p.start,
            })
        })
        .collect()
}

/// Total bytes of a plan.
pub fn total_bytes(regions: &[Region]) -> u64 {
    regions.iter().map(|r| r.len).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use coroner_proc::ThreadSnapshot;
    use coroner_types::{Perms, ThreadRegs, Tid};

    fn map(start: u64, end: u64, perms: &str, name: &str, inode: u64) -> Mapping {
        Mapping {
            start,
            end,
            perms: Perms::from_text(perms.as_bytes()).expect("test perms"),
            offset: 0,
            dev_major: 0,
            dev_minor: 0,
            inode,
            name: name.as_bytes().to_vec(),
        }
    }

    fn thread(tid: i32, sp: u64, ip: u64) -> ThreadSnapshot {
        let mut regs = ThreadRegs::default();
        regs.gp.rsp = sp;
        regs.gp.rip = ip;
        ThreadSnapshot {
            tid: Tid(tid),
            name: b"t".to_vec(),
            regs: Some(regs),
        }
    }

    fn snap() -> ProcessSnapshot {
        ProcessSnapshot {
            mappings: vec![
                map(0x40_0000, 0x40_1000, "r--p", "/bin/x", 5),
                map(0x40_1000, 0x40_3000, "r-xp", "/bin/x", 5),
                map(0x40_3000, 0x40_4000, "rw-p", "/bin/x", 5),
                map(0x50_0000, 0x60_0000, "rw-p", "[heap]", 0),
                map(0x60_0000, 0x60_1000, "---p", "", 0),
                map(0x70_0000, 0x70_1000, "rw-s", "/dev/shm/x", 9),
                map(0x7f_0000_0000, 0x7f_0040_0000, "rw-p", "[stack]", 0),
                map(0x7f_ff00_0000, 0x7f_ff00_1000, "r--p", "[vvar]", 0),
            ],
            threads: vec![thread(1, 0x7f_003f_f000, 0x40_1010)],
            ..ProcessSnapshot::default()
        }
    }

    #[test]
    fn level_names() {
        assert_eq!("mini".parse(), Ok(DumpLevel::Mini));
        assert_eq!("MiniPlus".parse(), Ok(DumpLevel::MiniPlus));
        assert_eq!("mini-plus".parse(), Ok(DumpLevel::MiniPlus));
        assert_eq!("full".parse(), Ok(DumpLevel::Full));
        assert!("core".parse::<DumpLevel>().is_err());
        assert_eq!(
            DumpLevel::MiniPlus.to_string().parse(),
            Ok(DumpLevel::MiniPlus)
        );
    }

    #[test]
    fn mini_is_stack_and_code() {
        let r = plan_regions(&snap(), DumpLevel::Mini, None);
        assert_eq!(
            r,
            vec![
                Region {
                    start: 0x40_1000,
                    len: 0x110
                },
                Region {
                    start: 0x7f_003f_e000,
                    len: 0x2000
                },
            ]
        );
    }

    #[test]
    fn stack_capped_and_ip_clipped() {
        let mut s = snap();
        s.threads = vec![thread(1, 0x7f_0000_2000, 0x40_1000)];
        let r = plan_regions(&s, DumpLevel::Mini, None);
        // IP at the start of its mapping: nothing before it is taken.
        assert_eq!(
            r[0],
            Region {
                start: 0x40_1000,
                len: 0x100
            }
        );
        assert_eq!(
            r[1],
            Region {
                start: 0x7f_0000_1000,
                len: MAX_STACK_BYTES
            }
        );
    }

    #[test]
    fn mini_plus_private_writable_only() {
        let r = plan_regions(&snap(), DumpLevel::MiniPlus, None);
        let starts: Vec<u64> = r.iter().map(|r| r.start).collect();
        assert_eq!(
            starts,
            vec![0x40_1000, 0x40_3000, 0x50_0000, 0x7f_0000_0000]
        );
        assert_eq!(r[3].len, 0x40_0000);
    }

    #[test]
    fn smaps_rss_zero_skips_untouched() {
        let mut s = snap();
        s.files.smaps = Some(
            b"500000-600000 rw-p 00000000 00:00 0 [heap]\nSize: 1024 kB\nRss:                   0 kB\nVmFlags: rd wr mr\n\
              403000-404000 rw-p 00003000 08:01 5 /bin/x\nRss: 4 kB\n"
                .to_vec(),
        );
        let r = plan_regions(&s, DumpLevel::MiniPlus, None);
        assert!(!r.iter().any(|r| r.start == 0x50_0000));
        assert!(r.iter().any(|r| r.start == 0x40_3000));
    }

    #[test]
    fn full_skips_vvar_guard_and_io() {
        let mut s = snap();
        s.files.smaps = Some(
            b"700000-701000 rw-s 00000000 00:05 9 /dev/shm/x\nVmFlags: rd wr sh io\n".to_vec(),
        );
        let r = plan_regions(&s, DumpLevel::Full, None);
        let starts: Vec<u64> = r.iter().map(|r| r.start).collect();
        assert_eq!(
            starts,
            vec![0x40_0000, 0x40_1000, 0x40_3000, 0x50_0000, 0x7f_0000_0000]
        );
        for w in r.windows(2) {
            assert!(w[0].end() <= w[1].start);
        }
    }

    #[test]
    fn crash_context_stack_is_kept() {
        let mut s = snap();
        s.mappings
            .push(map(0x7f_1000_0000, 0x7f_1000_8000, "rw-p", "", 0));
        s.mappings.sort_by_key(|m| m.start);
        let mut regs = ThreadRegs::default();
        regs.gp.rsp = 0x7f_1000_4000;
        regs.gp.rip = 0x99; // unmapped: no code piece, no panic
        let c = CrashContext {
            tid: Tid(1),
            siginfo: Default::default(),
            regs,
        };
        let r = plan_regions(&s, DumpLevel::Mini, Some(&c));
        assert!(r.contains(&Region {
            start: 0x7f_1000_3000,
            len: 0x5000
        }));
    }

    #[test]
    fn garbage_sp_is_ignored() {
        let mut s = snap();
        s.threads = vec![thread(1, u64::MAX, u64::MAX), thread(2, 0, 0)];
        assert!(plan_regions(&s, DumpLevel::Mini, None).is_empty());
    }
}
