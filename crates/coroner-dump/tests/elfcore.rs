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
    Mapping {
        start,
        end: start + len,
        perms: Perms::from_text(perms.as_bytes()).expect("test perms"),
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
        durable: false,
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

#[test]
fn core_reader_reads_back_threads_crash_and_memory() {
    use coroner_dump::corefile::CoreFile;
    let (snap, mem, crash) = synthetic();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("core");
    let mut file = std::fs::File::create(&path).unwrap();
    let opts = options(DumpLevel::Mini, Some(crash.clone()));
    write_elf_core(&mut file, &snap, &mem, &opts, &NoProgress).unwrap();
    drop(file);

    let core = CoreFile::open(&path).unwrap();
    let back = core.snapshot();
    assert_eq!(back.pid, snap.pid);
    assert_eq!(back.ppid, snap.ppid);
    assert_eq!(back.comm, snap.comm);
    let tids: Vec<Tid> = back.threads.iter().map(|t| t.tid).collect();
    assert_eq!(tids, [Tid(4243), Tid(4242)]);
    assert_eq!(back.threads[0].regs.as_ref(), Some(&crash.regs));
    assert_eq!(back.threads[1].regs, snap.threads[0].regs);
    assert_eq!(back.auxv, snap.auxv);
    assert_eq!(core.crash_context(), Some(crash.clone()));

    // Memory the mini core holds reads back; memory it left out does not.
    let sp = crash.regs.sp();
    let mut got = [0u8; 64];
    let mut want = [0u8; 64];
    core.read_exact(sp, &mut got).unwrap();
    mem.read_exact(sp, &mut want).unwrap();
    assert_eq!(got, want);
    core.read_exact(LIB, &mut got).unwrap();
    assert_eq!(&got[..4], b"\x7fELF");
    let mut one = [0u8; 1];
    assert!(
        !matches!(core.read(ANON + 0x100, &mut one), Ok(1)),
        "anonymous memory is not in a mini core"
    );
}

// ---------------------------------------------------------------------------
// The dynamic linker's structures, laid out by hand: what a mini core must
// keep so gdb finds the shared libraries.

#[test]
fn link_map_walk_keeps_dynamic_r_debug_and_names_and_survives_cycles() {
    use coroner_dump::elfcore::link_map_regions;
    const EXE: u64 = 0x5555_0000_0000;
    const DATA: u64 = 0x5555_0010_0000;
    let mut exe = vec![0u8; 0x1000];
    // Program headers at EXE + 0x40: PT_PHDR (link-time 0x40), PT_DYNAMIC
    // (link-time 0x100000, 2 entries).
    let ph = |t: u32, vaddr: u64, memsz: u64| {
        let mut e = vec![0u8; 56];
        e[0..4].copy_from_slice(&t.to_le_bytes());
        e[16..24].copy_from_slice(&vaddr.to_le_bytes());
        e[40..48].copy_from_slice(&memsz.to_le_bytes());
        e
    };
    exe[0x40..0x40 + 56].copy_from_slice(&ph(6, 0x40, 112));
    exe[0x40 + 56..0x40 + 112].copy_from_slice(&ph(2, 0x100000, 32));
    let mut data = vec![0u8; 0x3000];
    let put = |d: &mut Vec<u8>, at: u64, v: u64| {
        let o = (at - DATA) as usize;
        d[o..o + 8].copy_from_slice(&v.to_le_bytes());
    };
    // _DYNAMIC: DT_DEBUG -> r_debug at DATA + 0x800.
    put(&mut data, DATA, 21);
    put(&mut data, DATA + 8, DATA + 0x800);
    // r_debug.r_map -> link_map at DATA + 0x2000; that one -> DATA + 0x2100,
    // whose l_next points back (a cycle).
    put(&mut data, DATA + 0x808, DATA + 0x2000);
    put(&mut data, DATA + 0x2008, DATA + 0x2800); // l_name
    put(&mut data, DATA + 0x2018, DATA + 0x2100); // l_next
    put(&mut data, DATA + 0x2118, DATA + 0x2000); // l_next: cycle
    data[0x2800..0x2800 + 11].copy_from_slice(b"/lib/x.so\0\0");
    let mem = VecMemory(vec![(EXE, exe), (DATA, data)]);
    let snap = ProcessSnapshot {
        auxv: [3u64, EXE + 0x40, 4, 56, 5, 2, 0, 0]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect(),
        ..ProcessSnapshot::default()
    };
    let regions: Vec<(u64, u64)> = link_map_regions(&snap, &mem)
        .iter()
        .map(|r| (r.start, r.len))
        .collect();
    assert_eq!(
        regions,
        [
            (EXE + 0x40, 112),
            (DATA, 32),
            (DATA + 0x800, 48),
            (DATA + 0x2000, 40),
            (DATA + 0x2800, 10),
            (DATA + 0x2100, 40),
        ]
    );
    // No auxv: nothing, no panic.
    assert!(link_map_regions(&ProcessSnapshot::default(), &mem).is_empty());
}

// ---------------------------------------------------------------------------
// Interop: gdb opens a core of a live process.

fn gdb_available() -> bool {
    let found = std::process::Command::new("gdb")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("CORONER_REQUIRE_INTEROP").is_none_or(|v| v != "1"),
            "CORONER_REQUIRE_INTEROP=1 but gdb is not on PATH: install gdb to run the ELF core interop test"
        );
        eprintln!("skipping the gdb interop test: gdb is not on PATH (set CORONER_REQUIRE_INTEROP=1 to make this fail)");
    }
    found
}

fn gdb(exe: &std::path::Path, core: &std::path::Path, marker: u64, extra: &[&str]) -> String {
    let out = std::process::Command::new("gdb")
        .args(["-batch", "-nx", "-ex", "info threads", "-ex", "bt"])
        .args(["-ex", &format!("x/gx {marker:#x}")])
        .args(extra.iter().flat_map(|e| ["-ex", e]))
        .arg(exe)
        .arg(core)
        .output()
        .expect("run gdb");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "gdb failed:\n{text}");
    text
}

#[test]
fn gdb_reads_cores_of_a_live_process() {
    use coroner_proc::Attached;
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    if !gdb_available() {
        return;
    }
    let exe = coroner_crashers::crasher_path().expect("crasher binary");
    let mut child = Command::new(&exe)
        .args(["live", "8", "2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start crasher");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ready = coroner_crashers::parse_ready_line(&line)
        .unwrap_or_else(|| panic!("not a ready line: {line:?}"));
    let marker = ready.marker.expect("live prints its marker address");
    let threads = ready.threads.expect("live prints its thread count");

    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full.core");
    let mini = dir.path().join("mini.core");
    let crashed = dir.path().join("crashed.core");
    {
        let att = Attached::seize(Pid(ready.pid as i32), std::time::Duration::from_secs(20))
            .expect("seize the crasher");
        let snap = att.snapshot().expect("snapshot");
        for (path, level) in [(&full, DumpLevel::Full), (&mini, DumpLevel::Mini)] {
            let mut f = std::fs::File::create(path).unwrap();
            let stats = write_elf_core(
                &mut f,
                &snap,
                att.memory(),
                &options(level, None),
                &NoProgress,
            )
            .unwrap();
            assert_eq!(stats.threads, threads + 1);
        }
        // A crash context for a worker thread: it goes first, with the
        // signal, and gdb reports it as the terminating signal.
        let worker = &snap.threads[1];
        let crash = CrashContext {
            tid: worker.tid,
            siginfo: SigInfo::new_fault(11, 1, 0x10),
            regs: worker.regs.clone().expect("worker registers"),
        };
        let mut f = std::fs::File::create(&crashed).unwrap();
        write_elf_core(
            &mut f,
            &snap,
            att.memory(),
            &options(DumpLevel::Mini, Some(crash)),
            &NoProgress,
        )
        .unwrap();
        // Dropping `att` detaches; the crasher then runs on.
    }
    drop(child.stdin.take());
    assert!(
        child.wait().unwrap().success(),
        "the crasher survives the dump"
    );

    let text = gdb(&exe, &full, marker, &[]);
    let lwps = text
        .lines()
        .filter(|l| l.contains("LWP ") && !l.starts_with('['))
        .count();
    assert!(lwps > threads, "gdb lists {} threads:\n{text}", threads + 1);
    assert!(text.contains(&format!("LWP {}", ready.pid)), "{text}");
    // The main thread may still be returning from printing `ready`, so
    // look for the crasher's `live` module rather than one function.
    assert!(
        text.contains("in crasher::live::"),
        "backtrace with function names:\n{text}"
    );
    assert!(
        text.contains("0x434f524f4e45524d"),
        "the marker is in a full core:\n{text}"
    );
    assert!(
        !text.contains("Program terminated with signal"),
        "no signal without a crash:\n{text}"
    );

    // A mini core has no heap, but gdb still finds every thread and the
    // libraries (link map kept), so the backtrace has names.
    let text = gdb(&exe, &mini, marker, &[]);
    assert!(
        text.contains("in crasher::live::"),
        "mini backtrace with function names:\n{text}"
    );
    assert!(
        text.contains("__GI___libc_") || text.contains("syscall ()"),
        "libc frames are named (the link map is in the core):\n{text}"
    );
    assert!(!text.contains("in ?? ()\n#1  0x0000000000000000"), "{text}");
    assert!(std::fs::metadata(&mini).unwrap().len() < std::fs::metadata(&full).unwrap().len());

    let text = gdb(&exe, &crashed, marker, &["p $_siginfo.si_signo"]);
    assert!(
        text.contains("Program terminated with signal SIGSEGV"),
        "pr_cursig of the first thread:\n{text}"
    );
    assert!(text.contains("= 11"), "$_siginfo from NT_SIGINFO:\n{text}");
    let current = text
        .lines()
        .find(|l| l.starts_with("* "))
        .unwrap_or_else(|| panic!("no current thread:\n{text}"));
    assert!(
        !current.contains(&format!("LWP {})", ready.pid)),
        "the crashing worker, not the leader, is current:\n{text}"
    );
}
