//! Any bytes as an ELF core: open, snapshot, crash context, memory reads.
#![no_main]

use coroner_dump::corefile::CoreFile;
use coroner_proc::MemorySource;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // CoreFile reads from a path (pread, no mmap): one scratch file per process.
    let path = std::env::temp_dir().join(format!("coroner-fuzz-core-{}", std::process::id()));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    if let Ok(core) = CoreFile::open(&path) {
        let snap = core.snapshot();
        let _ = core.crash_context();
        let mut buf = [0u8; 256];
        for t in &snap.threads {
            if let Some(r) = &t.regs {
                let _ = core.read(r.sp(), &mut buf);
                let _ = core.read(r.pc(), &mut buf);
            }
        }
        for l in core.loads() {
            let _ = core.read(l.vaddr, &mut buf);
            let _ = core.read(l.vaddr.wrapping_add(l.memsz).wrapping_sub(1), &mut buf);
        }
    }
});
