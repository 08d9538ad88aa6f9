//! Round trip: write minidumps of a synthetic process at every level and
//! read them back with the independent `minidump` crate.

use coroner_dump::{
    minidump::XSTATE_STREAM, write_dump, DumpError, DumpFormat, DumpLevel, DumpOptions, NoProgress,
};
use coroner_proc::{LinuxFiles, MemorySource, ProcessSnapshot, ThreadSnapshot};
use coroner_types::{CrashContext, Mapping, Perms, Pid, SigInfo, ThreadRegs, Tid};
use minidump::{
    Minidump, MinidumpException, MinidumpLinuxCpuInfo, MinidumpLinuxEnviron,
    MinidumpLinuxLsbRelease, MinidumpLinuxMaps, MinidumpLinuxProcStatus, MinidumpMemory64List,
    MinidumpMemoryInfoList, MinidumpMemoryList, MinidumpMiscInfo, MinidumpModuleList,
    MinidumpRawContext, MinidumpSoftErrors, MinidumpSystemInfo, MinidumpThreadList,
    MinidumpThreadNames, Module,
};
use std::collections::BTreeMap;
use std::io;

const LIB: u64 = 0x1000_0000;
const VDSO: u64 = 0x7fff_f000_0000;
const HEAP: u64 = 0x2000_0000;
const BAD: u64 = 0x3000_0000;
const STACK1: u64 = 0x7ff0_0000_0000;
const STACK2: u64 = 0x7fe0_0000_0000;
const SHM: u64 = 0x4000_0000;
const PAGE: u64 = 4096;
const BUILD_ID: [u8; 20] =
    *b"\x01\x23\x45\x67\x89\xab\xcd\xef\x10\x32\x54\x76\x98\xba\xdc\xfe\xaa\xbb\xcc\xdd";
const VDSO_ID: [u8; 8] = [9, 8, 7, 6, 5, 4, 3, 2];

/// Memory as byte blocks; `holes` are addresses whose page reads fail.
struct SynthMem {
    blocks: BTreeMap<u64, Vec<u8>>,
    holes: Vec<u64>,
}

impl MemorySource for SynthMem {
    fn read(&self, addr: u64, buf: &mut [u8]) -> io::Result<usize> {
        if self.holes.iter().any(|&h| h <= addr && addr < h + PAGE) {
            return Err(io::Error::from_raw_os_error(libc::EFAULT));
        }
        let Some((&start, data)) = self.blocks.range(..=addr).next_back() else {
            return Ok(0);
        };
        let off = (addr - start) as usize;
        if off >= data.len() {
            return Ok(0);
        }
        let mut n = buf.len().min(data.len() - off);
        // Stop before a hole, as process_vm_readv does.
        if let Some(h) = self.holes.iter().filter(|&&h| h > addr).min() {
            n = n.min((h - addr) as usize);
        }
        buf[..n].copy_from_slice(&data[off..off + n]);
        Ok(n)
    }
}

fn mapping(start: u64, len: u64, perms: &str, offset: u64, inode: u64, name: &str) -> Mapping {
    Mapping {
        start,
        end: start + len,
        perms: Perms::from_text(perms.as_bytes()).expect("test perms"),
        offset,
        dev_major: 8,
        dev_minor: 1,
        inode,
        name: name.as_bytes().to_vec(),
    }
}

/// A page holding an ELF64 header, one PT_LOAD (offset 0, vaddr 0) and a
/// PT_NOTE with a GNU build-id.
fn elf_page(build_id: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; PAGE as usize];
    p[..4].copy_from_slice(b"\x7fELF");
    p[4] = 2;
    p[5] = 1;
    p[6] = 1;
    p[16..18].copy_from_slice(&3u16.to_le_bytes()); // ET_DYN
    p[18..20].copy_from_slice(&62u16.to_le_bytes());
    p[0x20..0x28].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
    p[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
    p[0x38..0x3a].copy_from_slice(&2u16.to_le_bytes());
    let note_off = 0x200u64;
    let mut note = Vec::new();
    note.extend_from_slice(&4u32.to_le_bytes());
    note.extend_from_slice(&(build_id.len() as u32).to_le_bytes());
    note.extend_from_slice(&3u32.to_le_bytes());
    note.extend_from_slice(b"GNU\0");
    note.extend_from_slice(build_id);
    let ph = |p: &mut Vec<u8>, i: usize, ty: u32, off: u64, size: u64| {
        let o = 64 + i * 56;
        p[o..o + 4].copy_from_slice(&ty.to_le_bytes());
        p[o + 8..o + 16].copy_from_slice(&off.to_le_bytes());
        p[o + 16..o + 24].copy_from_slice(&off.to_le_bytes());
        p[o + 32..o + 40].copy_from_slice(&size.to_le_bytes());
        p[o + 40..o + 48].copy_from_slice(&size.to_le_bytes());
    };
    ph(&mut p, 0, 1, 0, 3 * PAGE);
    ph(&mut p, 1, 4, note_off, note.len() as u64);
    p[note_off as usize..note_off as usize + note.len()].copy_from_slice(&note);
    p
}

fn pattern(base: u64, len: u64) -> Vec<u8> {
    (0..len)
        .map(|i| {
            ((base + i) as u32)
                .wrapping_mul(2_654_435_761)
                .to_le_bytes()[3]
                | 1
        })
        .collect()
}

fn regs(rip: u64, rsp: u64, fp: bool) -> ThreadRegs {
    let mut r = ThreadRegs::default();
    r.gp.rip = rip;
    r.gp.rsp = rsp;
    r.gp.rax = 0x1111;
    r.gp.cs = 0x33;
    r.gp.ss = 0x2b;
    r.gp.eflags = 0x246;
    r.gp.fs_base = 0x7f00_0000_1000;
    if fp {
        let mut fx = Box::new([0u8; 512]);
        fx[24..28].copy_from_slice(&0x1f80u32.to_le_bytes());
        fx[160] = 0x42; // xmm0 low byte
        r.fp = Some(fx);
        r.xstate = Some(vec![0x5a; 832]);
    }
    r
}

fn synth() -> (ProcessSnapshot, SynthMem) {
    let mut blocks = BTreeMap::new();
    let mut lib = elf_page(&BUILD_ID);
    lib.extend(pattern(LIB + PAGE, 2 * PAGE));
    blocks.insert(LIB, lib);
    let mut vdso = elf_page(&VDSO_ID);
    vdso.extend(pattern(VDSO + PAGE, PAGE));
    blocks.insert(VDSO, vdso);
    blocks.insert(HEAP, pattern(HEAP, 16 * PAGE));
    blocks.insert(BAD, pattern(BAD, 4 * PAGE));
    blocks.insert(STACK1, pattern(STACK1, 64 * PAGE));
    blocks.insert(STACK2, pattern(STACK2, 16 * PAGE));
    blocks.insert(SHM, pattern(SHM, PAGE));
    let mem = SynthMem {
        blocks,
        holes: vec![BAD + 2 * PAGE],
    };

    let mappings = vec![
        mapping(LIB, PAGE, "r--p", 0, 77, "/usr/lib/libfake.so"),
        mapping(LIB + PAGE, PAGE, "r-xp", PAGE, 77, "/usr/lib/libfake.so"),
        mapping(
            LIB + 2 * PAGE,
            PAGE,
            "rw-p",
            2 * PAGE,
            77,
            "/usr/lib/libfake.so",
        ),
        mapping(HEAP, 16 * PAGE, "rw-p", 0, 0, "[heap]"),
        mapping(BAD, 4 * PAGE, "rw-p", 0, 0, ""),
        mapping(SHM, PAGE, "rw-s", 0, 99, "/dev/shm/x"),
        mapping(STACK2, 16 * PAGE, "rw-p", 0, 0, ""),
        mapping(STACK1, 64 * PAGE, "rw-p", 0, 0, "[stack]"),
        mapping(VDSO, 2 * PAGE, "r-xp", 0, 0, "[vdso]"),
    ];
    let snap = ProcessSnapshot {
        pid: Pid(100),
        ppid: Pid(1),
        comm: b"synth".to_vec(),
        threads: vec![
            ThreadSnapshot {
                tid: Tid(100),
                name: b"main".to_vec(),
                regs: Some(regs(LIB + PAGE + 0x10, STACK1 + 60 * PAGE + 0x88, true)),
            },
            ThreadSnapshot {
                tid: Tid(101),
                name: b"worker-\xff".to_vec(),
                regs: Some(regs(LIB + PAGE + 0x800, STACK2 + 10 * PAGE, false)),
            },
        ],
        mappings,
        auxv: [6u64, 4096, 0, 0].iter().flat_map(|w| w.to_ne_bytes()).collect(),
        files: LinuxFiles {
            cmdline: Some(b"synth\0--flag\0".to_vec()),
            environ: Some(b"A=1\0B=2\0".to_vec()),
            status: Some(b"Name:\tsynth\nPid:\t100\n".to_vec()),
            cpuinfo: Some(b"processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 85\nstepping\t: 7\n\n".to_vec()),
            os_release: Some(b"ID=debian\nVERSION_ID=\"12\"\n".to_vec()),
            limits: Some(b"Limit Soft Hard Units\n".to_vec()),
            maps: None,
            smaps: None,
        },
        start_time: 1_700_000_000,
        soft_errors: vec!["snapshot: something odd".to_owned()],
        ..ProcessSnapshot::default()
    };
    (snap, mem)
}

fn crash() -> CrashContext {
    CrashContext {
        tid: Tid(101),
        siginfo: SigInfo::new_fault(11, 1, 0xdead),
        regs: regs(LIB + PAGE + 0x900, STACK2 + 9 * PAGE, true),
    }
}

fn write(
    level: DumpLevel,
    crash: Option<CrashContext>,
    comment: Option<&str>,
) -> (
    tempfile::TempDir,
    std::path::PathBuf,
    coroner_dump::DumpStats,
) {
    let (snap, mem) = synth();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.dmp");
    let mut f = std::fs::File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .unwrap();
    let opts = DumpOptions {
        level,
        format: DumpFormat::Minidump,
        comment: comment.map(str::to_owned),
        crash,
        durable: false,
    };
    let stats = write_dump(&mut f, &snap, &mem, &opts, &NoProgress).unwrap();
    assert_eq!(stats.bytes_written, f.metadata().unwrap().len());
    (dir, path, stats)
}

fn mem_u8<T: std::ops::Deref<Target = [u8]>>(dump: &Minidump<'_, T>, addr: u64) -> Option<u8> {
    dump.get_memory()?
        .memory_at_address(addr)?
        .get_memory_at_address::<u8>(addr)
}

fn check_common(path: &std::path::Path, level: DumpLevel, crashed: bool) {
    let dump = Minidump::read_path(path).unwrap();
    let sys = dump.get_stream::<MinidumpSystemInfo>().unwrap();
    assert_eq!(sys.os, minidump::system_info::Os::Linux);
    assert_eq!(sys.cpu, minidump::system_info::Cpu::X86_64);
    assert_eq!(sys.raw.number_of_processors, 1);
    let misc = dump.get_stream::<MinidumpMiscInfo>().unwrap();
    assert_eq!(misc.raw.process_id(), Some(&100));

    // Threads and contexts.
    let threads = dump.get_stream::<MinidumpThreadList>().unwrap();
    assert_eq!(threads.threads.len(), 2);
    let memory = dump.get_memory().unwrap();
    for (t, (tid, rip, rsp)) in threads.threads.iter().zip([
        (100u32, LIB + PAGE + 0x10, STACK1 + 60 * PAGE + 0x88),
        (101, LIB + PAGE + 0x800, STACK2 + 10 * PAGE),
    ]) {
        assert_eq!(t.raw.thread_id, tid);
        let ctx = t.context(&sys, Some(&misc)).unwrap();
        assert_eq!(ctx.get_instruction_pointer(), rip);
        assert_eq!(ctx.get_stack_pointer(), rsp);
        let MinidumpRawContext::Amd64(raw) = &ctx.raw else {
            panic!("not an AMD64 context")
        };
        assert_eq!((raw.rax, raw.cs, raw.eflags), (0x1111, 0x33, 0x246));
        // The stack is found, holds SP and the red zone, and has the right bytes.
        let stack = t.stack_memory(&memory).unwrap();
        assert!(stack.base_address() <= rsp - 128, "tid {tid}");
        assert!(rsp < stack.base_address() + stack.size());
        let at = rsp - 8;
        assert_eq!(
            stack.get_memory_at_address::<u8>(at),
            Some(pattern(at, 1)[0])
        );
    }
    let first = threads.threads[0].context(&sys, Some(&misc)).unwrap();
    let MinidumpRawContext::Amd64(raw) = &first.raw else {
        panic!()
    };
    assert_eq!(raw.mx_csr, 0x1f80);
    assert_eq!(raw.float_save[160], 0x42);
    assert_eq!(raw.context_flags, 0x0010_000f);

    let names = dump.get_stream::<MinidumpThreadNames>().unwrap();
    assert_eq!(names.get_name(100).as_deref(), Some("main"));
    assert_eq!(names.get_name(101).as_deref(), Some("worker-\u{fffd}"));

    // Modules: the library with its build-id, and the vdso.
    let modules = dump.get_stream::<MinidumpModuleList>().unwrap();
    let mods: Vec<_> = modules.iter().collect();
    assert_eq!(mods.len(), 2);
    assert_eq!(mods[0].code_file(), "/usr/lib/libfake.so");
    assert_eq!(mods[0].base_address(), LIB);
    assert_eq!(mods[0].size(), 3 * PAGE);
    let hex: String = BUILD_ID.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(mods[0].code_identifier().unwrap().as_str(), hex);
    assert_eq!(mods[1].code_file(), "linux-gate.so");
    assert_eq!(
        mods[1].code_identifier().unwrap().as_str(),
        "0908070605040302"
    );

    // Exception.
    let exc = dump.get_stream::<MinidumpException>().unwrap();
    if crashed {
        assert_eq!(exc.get_crashing_thread_id(), 101);
        assert_eq!(exc.raw.exception_record.exception_code, 11);
        assert_eq!(exc.raw.exception_record.exception_flags, 1);
        assert_eq!(exc.raw.exception_record.exception_address, 0xdead);
        let ectx = exc.context(&sys, Some(&misc)).unwrap();
        assert_eq!(ectx.get_instruction_pointer(), LIB + PAGE + 0x900);
        assert_eq!(ectx.get_stack_pointer(), STACK2 + 9 * PAGE);
    } else {
        assert_eq!(exc.get_crashing_thread_id(), 100);
        assert_eq!(exc.raw.exception_record.exception_code, 0xFFFF_FFFF);
        let ectx = exc.context(&sys, Some(&misc)).unwrap();
        assert_eq!(ectx.get_instruction_pointer(), LIB + PAGE + 0x10);
    }

    // Memory around each IP.
    let ip = LIB + PAGE + 0x10;
    assert_eq!(mem_u8(&dump, ip), Some(pattern(ip, 1)[0]));
    assert_eq!(mem_u8(&dump, ip + 255), Some(pattern(ip + 255, 1)[0]));

    // Memory info, Linux streams.
    let info = dump.get_stream::<MinidumpMemoryInfoList>().unwrap();
    assert_eq!(info.iter().count(), 9);
    let maps = dump.get_stream::<MinidumpLinuxMaps>().unwrap();
    assert_eq!(maps.iter().count(), 9);
    let cpu = dump.get_stream::<MinidumpLinuxCpuInfo>().unwrap();
    assert!(cpu
        .iter()
        .any(|(k, v)| k.as_bytes() == b"vendor_id" && v.as_bytes() == b"GenuineIntel"));
    dump.get_stream::<MinidumpLinuxEnviron>().unwrap();
    assert_eq!(dump.get_raw_stream(0x4767_0007).unwrap(), b"A=1\0B=2\0");
    dump.get_stream::<MinidumpLinuxProcStatus>().unwrap();
    dump.get_stream::<MinidumpLinuxLsbRelease>().unwrap();
    for ty in [0x4767_0006u32, 0x4767_0008, 0x4d7a_0003] {
        assert!(dump.get_raw_stream(ty).is_ok(), "stream {ty:#x}");
    }
    let x = dump.get_raw_stream(XSTATE_STREAM).unwrap();
    assert_eq!(
        u32::from_le_bytes(x[4..8].try_into().unwrap()),
        if crashed { 2 } else { 1 }
    );
    assert_eq!(u32::from_le_bytes(x[8..12].try_into().unwrap()), 100);
    assert_eq!(u32::from_le_bytes(x[12..16].try_into().unwrap()), 832);

    let soft = dump.get_stream::<MinidumpSoftErrors>().unwrap();
    let json = soft.as_ref();
    assert!(json.starts_with('[') && json.ends_with(']'), "{json}");
    assert!(json.contains("snapshot: something odd"), "{json}");
    // No DT_DEBUG in this synthetic process: recorded, not fatal.
    assert!(json.contains("LinuxDsoDebug"), "{json}");

    match level {
        DumpLevel::Mini => {
            assert!(dump.get_stream::<MinidumpMemoryList>().is_ok());
            assert!(dump.get_stream::<MinidumpMemory64List>().is_err());
            assert_eq!(mem_u8(&dump, HEAP), None);
        }
        _ => {
            assert!(dump.get_stream::<MinidumpMemory64List>().is_ok());
            assert!(dump.get_stream::<MinidumpMemoryList>().is_err());
            assert_eq!(mem_u8(&dump, HEAP + 5000), Some(pattern(HEAP + 5000, 1)[0]));
            // The unreadable page reads as zeros and is a soft error.
            assert_eq!(mem_u8(&dump, BAD + 2 * PAGE + 7), Some(0));
            assert_eq!(
                mem_u8(&dump, BAD + 3 * PAGE),
                Some(pattern(BAD + 3 * PAGE, 1)[0])
            );
            let hole = format!("{:#x}-{:#x}", BAD + 2 * PAGE, BAD + 3 * PAGE);
            assert!(json.contains(&hole), "{json}");
            // Shared memory is only in full dumps; code only there too.
            let full = level == DumpLevel::Full;
            assert_eq!(mem_u8(&dump, SHM).is_some(), full);
            assert_eq!(mem_u8(&dump, LIB).is_some(), full);
        }
    }
}

#[test]
fn mini_round_trip_with_crash() {
    let (_d, path, stats) = write(DumpLevel::Mini, Some(crash()), Some("hello dump"));
    assert_eq!((stats.threads, stats.modules), (2, 2));
    check_common(&path, DumpLevel::Mini, true);
    let dump = Minidump::read_path(&path).unwrap();
    assert_eq!(dump.get_raw_stream(10).unwrap(), b"hello dump\0");
    // The crash context's own stack (below the live SP) is in the dump.
    assert!(mem_u8(&dump, STACK2 + 9 * PAGE).is_some());
}

#[test]
fn mini_plus_round_trip_dump_requested() {
    let (_d, path, stats) = write(DumpLevel::MiniPlus, None, None);
    check_common(&path, DumpLevel::MiniPlus, false);
    assert!(
        stats.soft_errors.iter().any(|e| e.contains("unreadable")),
        "{:?}",
        stats.soft_errors
    );
    let dump = Minidump::read_path(&path).unwrap();
    assert!(dump.get_raw_stream(10).is_err());
}

#[test]
fn full_round_trip() {
    let (_d, path, stats) = write(DumpLevel::Full, Some(crash()), None);
    check_common(&path, DumpLevel::Full, true);
    // A stack past 4 GiB gets RVA 0: readers must find it in Memory64List.
    let mut bytes = std::fs::read(&path).unwrap();
    let loc = {
        let dump = Minidump::read(&bytes[..]).unwrap();
        let dir_rva = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
        let n = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
        drop(dump);
        (0..n)
            .map(|i| dir_rva + 12 * i)
            .find(|&o| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap()) == 3)
            .map(|o| u32::from_le_bytes(bytes[o + 8..o + 12].try_into().unwrap()) as usize)
            .unwrap()
    };
    // First MINIDUMP_THREAD at loc + 4; its stack RVA at +24+12.
    let rva_off = loc + 4 + 24 + 12;
    bytes[rva_off..rva_off + 4].copy_from_slice(&0u32.to_le_bytes());
    let dump = Minidump::read(&bytes[..]).unwrap();
    let threads = dump.get_stream::<MinidumpThreadList>().unwrap();
    let memory = dump.get_memory().unwrap();
    let rsp = STACK1 + 60 * PAGE + 0x88;
    let stack = threads.threads[0].stack_memory(&memory).unwrap();
    assert!(stack.base_address() <= rsp && rsp < stack.base_address() + stack.size());
    assert_eq!(
        stack.get_memory_at_address::<u8>(rsp),
        Some(pattern(rsp, 1)[0])
    );
    assert!(stats.memory_bytes >= (16 + 4 + 64 + 16 + 3 + 2 + 1) * PAGE);
}

#[test]
fn crash_thread_must_exist() {
    let (snap, mem) = synth();
    let dir = tempfile::tempdir().unwrap();
    let mut f = std::fs::File::create(dir.path().join("x")).unwrap();
    let mut c = crash();
    c.tid = Tid(555);
    let opts = DumpOptions {
        crash: Some(c),
        ..DumpOptions::default()
    };
    assert!(matches!(
        write_dump(&mut f, &snap, &mem, &opts, &NoProgress),
        Err(DumpError::CrashThread { tid: Tid(555), .. })
    ));
}

#[test]
fn garbage_snapshot_does_not_panic() {
    let (mut snap, mem) = synth();
    snap.threads.push(ThreadSnapshot {
        tid: Tid(102),
        name: vec![],
        regs: None,
    });
    snap.threads[0].regs.as_mut().unwrap().gp.rsp = u64::MAX;
    snap.mappings
        .push(mapping(u64::MAX - PAGE, PAGE, "rw-p", 0, 0, ""));
    snap.auxv = vec![1, 2, 3];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x");
    let mut f = std::fs::File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .unwrap();
    let opts = DumpOptions {
        level: DumpLevel::Full,
        ..DumpOptions::default()
    };
    let stats = write_dump(&mut f, &snap, &mem, &opts, &NoProgress).unwrap();
    assert!(stats.soft_errors.iter().any(|e| e.contains("thread 102")));
    let dump = Minidump::read_path(&path).unwrap();
    assert_eq!(
        dump.get_stream::<MinidumpThreadList>()
            .unwrap()
            .threads
            .len(),
        3
    );
}
