//! ELF core writer round trips: a synthetic process written as a core and
//! read back by a test-local ELF parser (headers, every note, the memory of
//! every `PT_LOAD`), and, when gdb is installed, a live crasher dumped and
//! opened in gdb.

use coroner_dump::elfcore::{
    write_elf_core, NT_AUXV, NT_FILE, NT_PRFPREG, NT_PRPSINFO, NT_PRSTATUS, NT_SIGINFO,
    NT_X86_XSTATE,
};
use coroner_dump::{DumpFormat, DumpLevel, DumpOptions, NoProgress};
use coroner_proc::{LinuxFiles, MemorySource, ProcessSnapshot, ThreadSnapshot};
use coroner_types::{CrashContext, Mapping, Perms, Pid, SigInfo, ThreadRegs, Tid, UserRegs};
use std::io::{self, Read, Seek, SeekFrom, Write};

// ---------------------------------------------------------------------------
// A test-local ELF core reader: independent of the writer's code.

#[derive(Debug, Clone, PartialEq)]
struct Phdr {
    ptype: u32,
    flags: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
    memsz: u64,
    align: u64,
}

#[derive(Debug, Clone, PartialEq)]
struct Note {
    name: String,
    ntype: u32,
    desc: Vec<u8>,
}

struct Core {
    bytes: Vec<u8>,
    phdrs: Vec<Phdr>,
    notes: Vec<Note>,
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes(b[o..o + 2].try_into().unwrap())
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

fn parse_core(bytes: Vec<u8>) -> Core {
    assert!(bytes.len() >= 64, "core shorter than an ELF header");
    assert_eq!(&bytes[0..4], b"\x7fELF");
    assert_eq!((bytes[4], bytes[5], bytes[6]), (2, 1, 1), "ELF64 LSB v1");
    assert_eq!(u16_at(&bytes, 16), 4, "ET_CORE");
    assert_eq!(u16_at(&bytes, 18), 62, "EM_X86_64");
    assert_eq!(u16_at(&bytes, 52), 64, "e_ehsize");
    assert_eq!(u16_at(&bytes, 54), 56, "e_phentsize");
    let phoff = u64_at(&bytes, 32) as usize;
    let phnum = u16_at(&bytes, 56) as usize;
    let mut phdrs = Vec::new();
    for i in 0..phnum {
        let o = phoff + i * 56;
        phdrs.push(Phdr {
            ptype: u32_at(&bytes, o),
            flags: u32_at(&bytes, o + 4),
            offset: u64_at(&bytes, o + 8),
            vaddr: u64_at(&bytes, o + 16),
            filesz: u64_at(&bytes, o + 32),
            memsz: u64_at(&bytes, o + 40),
            align: u64_at(&bytes, o + 48),
        });
    }
    assert_eq!(phdrs.first().map(|p| p.ptype), Some(4), "PT_NOTE first");
    let note = &phdrs[0];
    let mut b = &bytes[note.offset as usize..(note.offset + note.filesz) as usize];
    let mut notes = Vec::new();
    while !b.is_empty() {
        let (namesz, descsz, ntype) = (u32_at(b, 0) as usize, u32_at(b, 4) as usize, u32_at(b, 8));
        let desc_start = 12 + namesz.div_ceil(4) * 4;
        let next = desc_start + descsz.div_ceil(4) * 4;
        assert!(next <= b.len(), "note overruns PT_NOTE");
        assert_eq!(b[12 + namesz - 1], 0);
        notes.push(Note {
            name: String::from_utf8(b[12..12 + namesz - 1].to_vec()).unwrap(),
            ntype,
            desc: b[desc_start..desc_start + descsz].to_vec(),
        });
        b = &b[next..];
    }
    Core {
        bytes,
        phdrs,
        notes,
    }
}

impl Core {
    fn loads(&self) -> impl Iterator<Item = &Phdr> {
        self.phdrs.iter().filter(|p| p.ptype == 1)
    }
    fn data(&self, p: &Phdr) -> &[u8] {
        &self.bytes[p.offset as usize..(p.offset + p.filesz) as usize]
    }
    fn notes_of(&self, ntype: u32) -> Vec<&Note> {
        self.notes.iter().filter(|n| n.ntype == ntype).collect()
    }
}

// ---------------------------------------------------------------------------
// A synthetic process.

/// Memory as a list of readable byte ranges; everything else is unreadable.
struct VecMemory(Vec<(u64, Vec<u8>)>);

impl MemorySource for VecMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> io::Result<usize> {
        for (start, bytes) in &self.0 {
            if addr >= *start && addr < start + bytes.len() as u64 {
                let from = (addr - start) as usize;
                let n = buf.len().min(bytes.len() - from);
                buf[..n].copy_from_slice(&bytes[from..from + n]);
                return Ok(n);
            }
        }
        Err(io::Error::from_raw_os_error(14))
    }
}

const LIB: u64 = 0x7f00_0000_0000;
const ANON: u64 = 0x7f00_0010_0000;
const STACK: u64 = 0x7ffd_0000_0000;
const VDSO: u64 = 0x7ffd_1000_0000;
const VVAR: u64 = 0x7ffd_0ff0_0000;

fn map(start: u64, len: u64, perms: &str, name: &str, offset: u64) -> Mapping {
    let p = perms.as_bytes();
    Mapping {
        start,
        end: start + len,
        perms: Perms {
            read: p[0] == b'r',
            write: p[1] == b'w',
            exec: p[2] == b'x',
            shared: p[3] == b's',
        },
        offset,
        dev_major: 8,
        dev_minor: 1,
        inode: if name.starts_with('/') { 1234 } else { 0 },
        name: name.as_bytes().to_vec(),
    }
}

/// Bytes that differ per page and per address, so a misplaced page shows.
fn pattern(start: u64, len: u64) -> Vec<u8> {
    (start..start + len)
        .map(|a| (a ^ (a >> 12) ^ (a >> 20)) as u8)
        .collect()
}

fn regs(rip: u64, rsp: u64, fill: u8) -> ThreadRegs {
    ThreadRegs {
        gp: UserRegs {
            rip,
            rsp,
            rbp: rsp + 0x40,
            ..UserRegs::default()
        },
        fp: Some(Box::new([fill; 512])),
        xstate: Some(vec![fill; 1088]),
    }
}

fn synthetic() -> (ProcessSnapshot, VecMemory, CrashContext) {
    let mappings = vec![
        map(LIB, 0x2000, "r--p", "/usr/lib/libfake.so", 0),
        map(LIB + 0x2000, 0x3000, "r-xp", "/usr/lib/libfake.so", 0x2000),
        map(LIB + 0x5000, 0x1000, "---p", "", 0),
        // A file mapping whose last page is past the end of the file: reads
        // of it fail, the core holds zeros there.
        map(LIB + 0x6000, 0x2000, "rw-p", "/usr/lib/libfake.so", 0x5000),
        map(ANON, 0x10000, "rw-p", "", 0),
        map(STACK, 0x21000, "rw-p", "[stack]", 0),
        map(VVAR, 0x4000, "r--p", "[vvar]", 0),
        map(VDSO, 0x2000, "r-xp", "[vdso]", 0),
    ];
    let mut lib = pattern(LIB, 0x5000);
    lib[..4].copy_from_slice(b"\x7fELF");
    let mut vdso = pattern(VDSO, 0x2000);
    vdso[..4].copy_from_slice(b"\x7fELF");
    let mut anon = pattern(ANON, 0x10000);
    // A zero block in the middle: written sparse, must still read as zeros.
    anon[0x4000..0xc000].fill(0);
    let mem = VecMemory(vec![
        (LIB, lib),
        (LIB + 0x6000, pattern(LIB + 0x6000, 0x1000)),
        (ANON, anon),
        (STACK, pattern(STACK, 0x21000)),
        (VDSO, vdso),
    ]);
    let crash = CrashContext {
        tid: Tid(4243),
        siginfo: SigInfo::new_fault(11, 1, 0x10),
        regs: regs(LIB + 0x2100, STACK + 0x1f000, 0xc5),
    };
    let snap = ProcessSnapshot {
        pid: Pid(4242),
        ppid: Pid(1),
        uid: 1000,
        gid: 1000,
        exe: "/usr/bin/fake".into(),
        comm: b"fake".to_vec(),
        threads: vec![
            ThreadSnapshot {
                tid: Tid(4242),
                name: b"fake".to_vec(),
                regs: Some(regs(LIB + 0x2200, STACK + 0x20000, 0xa1)),
            },
            // Live registers of the crashing thread (in its handler): the
            // core must carry the crash context's instead.
            ThreadSnapshot {
                tid: Tid(4243),
                name: b"worker".to_vec(),
                regs: Some(regs(LIB + 0x2300, STACK + 0x1e000, 0xb2)),
            },
        ],
        mappings,
        auxv: [33u64, VDSO, 6, 4096, 0, 0]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect(),
        files: LinuxFiles {
            cmdline: Some(b"/usr/bin/fake\0--flag\0".to_vec()),
            status: Some(
                b"Name:\tfake\nState:\tt (tracing stop)\nNSpgid:\t4242\nNSsid:\t4000\n".to_vec(),
            ),
            ..LinuxFiles::default()
        },
        start_time: 0,
        soft_errors: vec!["collector: example soft error".into()],
    };
    (snap, mem, crash)
}

fn options(level: DumpLevel, crash: Option<CrashContext>) -> DumpOptions {
    DumpOptions {
        level,
        format: DumpFormat::ElfCore,
        comment: Some("synthetic".into()),
        crash,
    }
}

fn write_core(
    snap: &ProcessSnapshot,
    mem: &VecMemory,
    opts: &DumpOptions,
) -> (Core, coroner_dump::DumpStats) {
    let mut file = tempfile::tempfile().unwrap();
    // Stale content the writer must replace entirely.
    file.write_all(&vec![0xeeu8; 3 << 20]).unwrap();
    let stats = write_elf_core(&mut file, snap, mem, opts, &NoProgress).unwrap();
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0)).unwrap();
    file.read_to_end(&mut bytes).unwrap();
    assert_eq!(stats.bytes_written, bytes.len() as u64);
    (parse_core(bytes), stats)
}

/// Checks every core must pass: segments page-aligned, whole-or-nothing,
/// covering each dumped mapping exactly, data equal to the memory (zeros
/// where unreadable), file length = end of the last data.
fn check_memory(core: &Core, snap: &ProcessSnapshot, mem: &VecMemory) {
    let loads: Vec<&Phdr> = core.loads().collect();
    for m in &snap.mappings {
        let segs: Vec<&&Phdr> = loads
            .iter()
            .filter(|p| p.vaddr >= m.start && p.vaddr < m.end)
            .collect();
        if m.name == b"[vvar]" {
            assert!(segs.is_empty(), "[vvar] must not be dumped");
            continue;
        }
        let mut at = m.start;
        for p in &segs {
            assert_eq!(p.vaddr, at, "segments of {} leave a gap", m.name_lossy());
            at += p.memsz;
            let want_flags = u32::from(m.perms.read) * 4
                + u32::from(m.perms.write) * 2
                + u32::from(m.perms.exec);
            assert_eq!(p.flags, want_flags);
        }
        assert_eq!(
            at,
            m.end,
            "segments of {} do not end at the mapping end",
            m.name_lossy()
        );
    }
    let mut end = 0;
    for p in &loads {
        assert_eq!(p.offset % 4096, 0, "{p:?}");
        assert_eq!(p.align, 4096);
        assert!(p.filesz == 0 || p.filesz == p.memsz, "{p:?}");
        if p.filesz == 0 {
            continue;
        }
        let mut want = vec![0u8; p.filesz as usize];
        let mut done = 0;
        while done < want.len() {
            match mem.read(p.vaddr + done as u64, &mut want[done..]) {
                Ok(n) if n > 0 => done += n,
                _ => done += 1, // unreadable byte: the core holds 0
            }
        }
        assert!(
            core.data(p) == want.as_slice(),
            "data of segment at {:#x} differs from memory",
            p.vaddr
        );
        end = end.max(p.offset + p.filesz);
    }
    assert_eq!(
        core.bytes.len() as u64,
        end,
        "file ends with the last segment"
    );
}

fn present(core: &Core, addr: u64) -> bool {
    core.loads()
        .any(|p| p.filesz > 0 && p.vaddr <= addr && addr < p.vaddr + p.memsz)
}

#[test]
fn full_core_round_trips() {
    let (snap, mem, crash) = synthetic();
    let (core, stats) = write_core(&snap, &mem, &options(DumpLevel::Full, Some(crash.clone())));
    check_memory(&core, &snap, &mem);
    for addr in [
        LIB,
        LIB + 0x2000,
        LIB + 0x6000,
        ANON,
        ANON + 0x5000,
        STACK,
        VDSO,
    ] {
        assert!(present(&core, addr), "{addr:#x} should be in a full core");
    }
    assert!(!present(&core, LIB + 0x5000), "a ---p guard holds no data");
    assert_eq!(stats.threads, 2);
    assert!(stats
        .soft_errors
        .iter()
        .any(|e| e.contains("example soft error")));
    assert!(
        stats.soft_errors.len() >= 2,
        "the unreadable page of the file mapping is reported: {:?}",
        stats.soft_errors
    );

    // Notes, in the kernel's order.
    let kinds: Vec<(&str, u32, usize)> = core
        .notes
        .iter()
        .map(|n| (n.name.as_str(), n.ntype, n.desc.len()))
        .collect();
    let file_len = core.notes_of(NT_FILE)[0].desc.len();
    let want = [
        ("CORE", NT_PRSTATUS, 336),
        ("CORE", NT_PRPSINFO, 136),
        ("CORE", NT_SIGINFO, 128),
        ("CORE", NT_AUXV, 48),
        ("CORE", NT_FILE, file_len),
    ];
    assert_eq!(&kinds[..5], &want);
    let rest: Vec<_> = kinds[5..]
        .iter()
        .filter(|k| k.0 != "CORONER")
        .copied()
        .collect();
    assert_eq!(
        rest,
        [
            ("CORE", NT_PRFPREG, 512),
            ("LINUX", NT_X86_XSTATE, 1088),
            ("CORE", NT_PRSTATUS, 336),
            ("CORE", NT_PRFPREG, 512),
            ("LINUX", NT_X86_XSTATE, 1088),
        ]
    );

    // The crashing thread first, with the crash registers and signal.
    let prs = core.notes_of(NT_PRSTATUS);
    let first = &prs[0].desc;
    assert_eq!(u32_at(first, 32), 4243, "pr_pid of the first PRSTATUS");
    assert_eq!(u16_at(first, 12), 11, "pr_cursig");
    assert_eq!(UserRegs::from_bytes(&first[112..328]), Some(crash.regs.gp));
    assert_eq!(u32_at(first, 328), 1, "pr_fpvalid");
    assert_eq!(core.notes_of(NT_PRFPREG)[0].desc, vec![0xc5; 512]);
    assert_eq!(u32_at(&prs[1].desc, 32), 4242);
    assert_eq!(
        UserRegs::from_bytes(&prs[1].desc[112..328]).map(|r| r.rip),
        Some(LIB + 0x2200)
    );
    assert_eq!(
        core.notes_of(NT_SIGINFO)[0].desc,
        crash.siginfo.raw.to_vec()
    );
    assert_eq!(core.notes_of(NT_AUXV)[0].desc, snap.auxv);

    let ps = &core.notes_of(NT_PRPSINFO)[0].desc;
    assert_eq!(&ps[40..45], b"fake\0");
    assert_eq!(&ps[56..76], b"/usr/bin/fake --flag");
    assert_eq!(ps[76], 0);
    assert_eq!(u32_at(ps, 24), 4242);
    assert_eq!(u32_at(ps, 32), 4242, "pgrp");
    assert_eq!(u32_at(ps, 36), 4000, "sid");

    // NT_FILE: the three file mappings, offsets in pages, then names.
    let f = &core.notes_of(NT_FILE)[0].desc;
    assert_eq!((u64_at(f, 0), u64_at(f, 8)), (3, 4096));
    assert_eq!(
        (u64_at(f, 16), u64_at(f, 24), u64_at(f, 32)),
        (LIB, LIB + 0x2000, 0)
    );
    assert_eq!(
        (u64_at(f, 40), u64_at(f, 48), u64_at(f, 56)),
        (LIB + 0x2000, LIB + 0x5000, 2)
    );
    assert_eq!(u64_at(f, 80), 5);
    assert_eq!(&f[88..], "/usr/lib/libfake.so\0".repeat(3).as_bytes());
}

#[test]
fn mini_core_keeps_elf_headers_and_splits_mappings() {
    let (snap, mem, crash) = synthetic();
    let (core, _) = write_core(&snap, &mem, &options(DumpLevel::Mini, Some(crash)));
    check_memory(&core, &snap, &mem);
    // coredump_filter bit 4: the first page of every mapped ELF file.
    assert!(present(&core, LIB), "first page of the mapped library");
    assert!(present(&core, VDSO), "first page of the vDSO");
    // The crashing thread's stack is in every level; a mini dump does not
    // hold the whole 132 KiB stack mapping, so that mapping is split.
    assert!(present(&core, STACK + 0x1f000));
    let stack_segs = core
        .loads()
        .filter(|p| p.vaddr >= STACK && p.vaddr < STACK + 0x21000)
        .count();
    assert!(
        stack_segs >= 2,
        "the stack mapping is split into present and absent parts"
    );
    let (full, _) = write_core(&snap, &mem, &options(DumpLevel::Full, None));
    assert!(
        core.bytes.len() < full.bytes.len(),
        "mini is smaller than full"
    );
}

#[test]
fn dump_requested_without_a_crash_has_no_siginfo() {
    let (snap, mem, _) = synthetic();
    let (core, stats) = write_core(&snap, &mem, &options(DumpLevel::MiniPlus, None));
    check_memory(&core, &snap, &mem);
    assert!(core.notes_of(NT_SIGINFO).is_empty());
    let prs = core.notes_of(NT_PRSTATUS);
    assert_eq!(prs.len(), 2);
    assert_eq!(u32_at(&prs[0].desc, 32), 4242, "leader first");
    assert_eq!(u16_at(&prs[0].desc, 12), 0, "no current signal");
    assert_eq!(
        UserRegs::from_bytes(&prs[1].desc[112..328]).map(|r| r.rip),
        Some(LIB + 0x2300)
    );
    assert_eq!(stats.threads, 2);
}

#[test]
fn empty_snapshot_still_makes_a_valid_core() {
    let snap = ProcessSnapshot::default();
    let mem = VecMemory(Vec::new());
    let (core, stats) = write_core(&snap, &mem, &options(DumpLevel::Full, None));
    assert_eq!(core.loads().count(), 0);
    assert_eq!(stats.threads, 0);
    assert_eq!(core.notes_of(NT_PRPSINFO).len(), 1);
    assert_eq!(core.notes_of(NT_FILE)[0].desc.len(), 16);
}
