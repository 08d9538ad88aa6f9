//! Any bytes as a kernel core stream: `ingest` with each output kind and
//! dump level, in odd-sized reads, then memory reads of what it kept.
#![no_main]

use coroner_dump::plan::DumpLevel;
use coroner_dump::stream::{ingest, CoreOut, StreamPlan};
use coroner_proc::MemorySource;
use libfuzzer_sys::fuzz_target;
use std::fs::File;
use std::io::{self, Read};

/// Hands the stream out `step` bytes at a time.
struct Chunks<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Chunks<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.step.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// A read-write file with no name (one per use).
fn scratch(tag: &str) -> Option<File> {
    let path =
        std::env::temp_dir().join(format!("coroner-fuzz-stream-{}-{tag}", std::process::id()));
    let f = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .ok()?;
    let _ = std::fs::remove_file(&path);
    Some(f)
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the set-up; the rest is the stream.
    let Some((&sel, stream)) = data.split_first() else {
        return;
    };
    let minidump = match sel & 3 {
        0 => None,
        1 => Some(DumpLevel::Mini),
        2 => Some(DumpLevel::MiniPlus),
        _ => Some(DumpLevel::Full),
    };
    let core = match (sel >> 2) & 3 {
        0 | 3 => None,
        1 => scratch("core").map(CoreOut::Plain),
        _ => scratch("zcore").map(|file| CoreOut::Zstd { file, level: 1 }),
    };
    let plan = StreamPlan {
        core,
        minidump,
        max_bytes: if sel & 0x10 != 0 {
            (stream.len() / 2) as u64
        } else {
            u64::MAX
        },
        deadline: None,
        scratch: if sel & 0x20 != 0 {
            scratch("scratch")
        } else {
            None
        },
    };
    let step = [1, 7, 4096, 1 << 20][usize::from(sel >> 6)];
    let mut input = Chunks { data: stream, step };
    if let Ok(ing) = ingest(&mut input, plan) {
        let mut buf = [0u8; 256];
        for t in &ing.snapshot.threads {
            if let Some(r) = &t.regs {
                let _ = ing.memory.read(r.sp(), &mut buf);
                let _ = ing.memory.read(r.pc(), &mut buf);
            }
        }
        for r in ing.memory.kept_regions() {
            let _ = ing.memory.read(r.start, &mut buf);
            let _ = ing.memory.read(r.end().wrapping_sub(1), &mut buf);
        }
        for m in &ing.snapshot.mappings {
            let _ = ing.memory.read(m.start, &mut buf);
        }
    }
});
