//! Bulk memory copy from a target into a dump file.
//!
//! Owns: [`copy_regions`], the one place where dump writers move target
//! memory into a file, and the [`Progress`] hook it reports through.
//!
//! How: a reader thread fills a small pool of pre-faulted [`CHUNK`]-byte
//! buffers from the [`MemorySource`] while the calling thread writes the
//! previous ones (read and write overlap on two cores). Buffers travel
//! back and forth over two bounded channels, so memory use is at most
//! `POOL * CHUNK` (16 MiB) whatever the dump size, and nothing is allocated
//! per chunk. All-zero [`ZERO_BLOCK`]-byte blocks that land past the file's
//! original end are skipped (the file stays sparse there); the file is
//! extended to cover the last block at the end.
//!
//! Unreadable bytes are written as zeros and reported, one message per
//! unreadable range (merged across chunks), in the caller's soft errors.
//!
//! Must not: decide what to copy (that is `plan`), know about dump formats,
//! or write anywhere but from the file's current position onwards.

use crate::plan::Region;
use coroner_proc::MemorySource;
use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::sync::mpsc;

/// Size of one read/write chunk (the sweet spot of `process_vm_readv`).
pub const CHUNK: usize = 4 << 20;
/// Granularity of zero detection and sparse skipping.
pub const ZERO_BLOCK: usize = 64 << 10;
/// Buffers in flight.
const POOL: usize = 4;
const PAGE: u64 = 4096;

/// Progress reporting for long copies. Called from the writing thread.
pub trait Progress: Sync {
    /// Total bytes the copy will cover (called once, first).
    fn set_total(&self, bytes: u64);
    /// `bytes` more have been written.
    fn advance(&self, bytes: u64);
}

/// A [`Progress`] that reports nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn set_total(&self, _bytes: u64) {}
    fn advance(&self, _bytes: u64) {}
}

/// A range of target memory that could not be read.
#[derive(Debug)]
struct Unreadable {
    start: u64,
    end: u64,
    why: String,
}

fn record(bad: &mut Vec<Unreadable>, start: u64, end: u64, why: impl FnOnce() -> String) {
    match bad.last_mut() {
        Some(last) if last.end == start => last.end = end,
        _ => bad.push(Unreadable {
            start,
            end,
            why: why(),
        }),
    }
}

/// Fill `buf` from target address `addr`; unreadable pages become zeros.
fn fill(mem: &dyn MemorySource, addr: u64, buf: &mut [u8], bad: &mut Vec<Unreadable>) {
    let mut done = 0usize;
    while done < buf.len() {
        let a = addr.saturating_add(done as u64);
        let res = mem.read(a, &mut buf[done..]);
        match res {
            Ok(n) if n > 0 => done += n.min(buf.len() - done),
            other => {
                // Skip to the next page boundary: readability changes per page.
                let next_page = (a | (PAGE - 1)).saturating_add(1);
                let skip = (next_page - a).min((buf.len() - done) as u64) as usize;
                buf[done..done + skip].fill(0);
                let end = a.saturating_add(skip as u64);
                record(bad, a, end, || match other {
                    Err(e) => e.to_string(),
                    Ok(_) => "not readable".to_owned(),
                });
                done += skip;
            }
        }
    }
}

fn is_zero(b: &[u8]) -> bool {
    // OR-folding fixed 64-byte lanes vectorises; the early exit keeps
    // non-zero data cheap.
    let mut lanes = b.chunks_exact(64);
    let lanes_zero = lanes.all(|c| c.iter().fold(0u8, |a, &x| a | x) == 0);
    lanes_zero && b.chunks_exact(64).remainder().iter().all(|&x| x == 0)
}

/// Write `data` at file offset `pos`, skipping all-zero blocks that lie at
/// or past `sparse_from` (bytes there already read as zero).
fn write_chunk(out: &File, data: &[u8], pos: u64, sparse_from: u64) -> io::Result<()> {
    let mut run_start: Option<usize> = None;
    let mut off = 0usize;
    while off < data.len() {
        let end = (off + ZERO_BLOCK).min(data.len());
        let skippable = pos + off as u64 >= sparse_from && is_zero(&data[off..end]);
        match (skippable, run_start) {
            (true, Some(s)) => {
                out.write_all_at(&data[s..off], pos + s as u64)?;
                run_start = None;
            }
            (false, None) => run_start = Some(off),
            _ => {}
        }
        off = end;
    }
    if let Some(s) = run_start {
        out.write_all_at(&data[s..], pos + s as u64)?;
    }
    Ok(())
}

/// A buffer the reader has filled: `buf[..len]` is target memory.
struct Filled {
    buf: Vec<u8>,
    len: usize,
}

/// Stream the regions' bytes, back to back, into `out` at its current
/// position, and leave the position after them. Unreadable bytes are
/// written as zeros and described in `soft_errors` (one entry per
/// unreadable range, merged). All-zero blocks past the file's original end
/// are not written (sparse); the file is extended to the end of the copy.
/// Returns the bytes covered (the sum of the region lengths).
pub fn copy_regions(
    mem: &dyn MemorySource,
    regions: &[Region],
    out: &mut File,
    progress: &dyn Progress,
    soft_errors: &mut Vec<String>,
) -> io::Result<u64> {
    let total: u64 = regions.iter().map(|r| r.len).sum();
    progress.set_total(total);
    let base = out.stream_position()?;
    if total == 0 {
        return Ok(0);
    }
    let sparse_from = out.metadata()?.len().max(base);

    let buf_size = (total.div_ceil(PAGE) * PAGE).min(CHUNK as u64) as usize;
    let nbuf = total.div_ceil(buf_size as u64).min(POOL as u64) as usize;
    let (free_tx, free_rx) = mpsc::sync_channel::<Vec<u8>>(nbuf);
    let (full_tx, full_rx) = mpsc::sync_channel::<Filled>(nbuf);
    for _ in 0..nbuf {
        // A non-zero fill touches every page now (a zeroed Vec would be
        // calloc'ed and fault during the copy instead).
        let buf = vec![0xa5u8; buf_size];
        free_tx
            .send(buf)
            .map_err(|_| io::Error::other("copy buffer pool closed while filling"))?;
    }

    let file: &File = out;
    let (written, bad) = std::thread::scope(|s| {
        let reader = s.spawn(move || {
            let mut bad: Vec<Unreadable> = Vec::new();
            for r in regions {
                let mut off = 0u64;
                while off < r.len {
                    // The writer hung up (write error): stop quietly.
                    let Ok(mut buf) = free_rx.recv() else {
                        return bad;
                    };
                    let len = (r.len - off).min(buf_size as u64) as usize;
                    fill(mem, r.start.saturating_add(off), &mut buf[..len], &mut bad);
                    if full_tx.send(Filled { buf, len }).is_err() {
                        return bad;
                    }
                    off += len as u64;
                }
            }
            bad
        });
        // The writer owns its channel ends, so on error they are dropped
        // before the scope joins the reader, which then stops.
        let written = write_all_chunks(file, full_rx, free_tx, base, sparse_from, progress);
        let bad = reader
            .join()
            .map_err(|_| io::Error::other("memory reader thread panicked"));
        (written, bad)
    });
    let written = written?;
    let bad = bad?;
    if written != total {
        return Err(io::Error::other(format!(
            "memory copy stopped after {written} of {total} bytes"
        )));
    }
    let end = base + total;
    if out.metadata()?.len() < end {
        out.set_len(end)?;
    }
    out.seek(SeekFrom::Start(end))?;
    for u in bad {
        soft_errors.push(format!(
            "memory {:#x}-{:#x} ({} bytes) unreadable, written as zeros: {}",
            u.start,
            u.end,
            u.end - u.start,
            u.why
        ));
    }
    Ok(total)
}

fn write_all_chunks(
    file: &File,
    full_rx: mpsc::Receiver<Filled>,
    free_tx: mpsc::SyncSender<Vec<u8>>,
    base: u64,
    sparse_from: u64,
    progress: &dyn Progress,
) -> io::Result<u64> {
    let mut pos = base;
    while let Ok(f) = full_rx.recv() {
        write_chunk(file, &f.buf[..f.len], pos, sparse_from)?;
        pos += f.len as u64;
        progress.advance(f.len as u64);
        // The reader may already be done; a closed pool is fine then.
        let _ = free_tx.send(f.buf);
    }
    Ok(pos - base)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Memory at `base..base+data.len()`, with an unreadable hole.
    struct VecMem {
        base: u64,
        data: Vec<u8>,
        hole: std::ops::Range<u64>,
    }

    impl MemorySource for VecMem {
        fn read(&self, addr: u64, buf: &mut [u8]) -> io::Result<usize> {
            if self.hole.contains(&addr) || addr < self.base {
                return Err(io::Error::from_raw_os_error(libc::EFAULT));
            }
            let off = (addr - self.base) as usize;
            if off >= self.data.len() {
                return Ok(0);
            }
            let mut n = buf.len().min(self.data.len() - off);
            if addr < self.hole.start {
                n = n.min((self.hole.start - addr) as usize);
            }
            buf[..n].copy_from_slice(&self.data[off..off + n]);
            Ok(n)
        }
    }

    fn pattern(len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        // Dense data with long zero runs (sparse candidates) in between.
        for (i, b) in v.iter_mut().enumerate() {
            let block = i / ZERO_BLOCK;
            if block % 3 != 1 {
                *b = (i as u32).wrapping_mul(2654435761).to_le_bytes()[3] | 1;
            }
        }
        v
    }

    struct Count(AtomicU64, AtomicU64);
    impl Progress for Count {
        fn set_total(&self, b: u64) {
            self.0.store(b, Ordering::Relaxed);
        }
        fn advance(&self, b: u64) {
            self.1.fetch_add(b, Ordering::Relaxed);
        }
    }

    #[test]
    fn sparse_equals_dense_and_holes_are_reported() {
        let base = 0x10_0000u64;
        let len = 3 * CHUNK + 12345;
        let data = pattern(len);
        let hole = base + 5 * PAGE..base + 7 * PAGE;
        let mem = VecMem {
            base,
            data: data.clone(),
            hole: hole.clone(),
        };
        let regions = [
            Region {
                start: base,
                len: CHUNK as u64 + 100,
            },
            Region {
                start: base + 2 * CHUNK as u64,
                len: (len - 2 * CHUNK) as u64,
            },
            // A region that ends in zeros, so the file must be extended.
            Region {
                start: base + 3 * ZERO_BLOCK as u64,
                len: ZERO_BLOCK as u64 * 2,
            },
        ];
        let dir = tempfile::tempdir().unwrap();
        let mut f = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(dir.path().join("d"))
            .unwrap();
        f.write_all(b"HDR").unwrap();
        let mut soft = Vec::new();
        let progress = Count(AtomicU64::new(0), AtomicU64::new(0));
        let n = copy_regions(&mem, &regions, &mut f, &progress, &mut soft).unwrap();
        let total: u64 = regions.iter().map(|r| r.len).sum();
        assert_eq!(n, total);
        assert_eq!(progress.0.load(Ordering::Relaxed), total);
        assert_eq!(progress.1.load(Ordering::Relaxed), total);
        assert_eq!(f.stream_position().unwrap(), 3 + total);

        let mut expect = b"HDR".to_vec();
        for r in &regions {
            let off = (r.start - base) as usize;
            let mut bytes = data[off..off + r.len as usize].to_vec();
            for (i, b) in bytes.iter_mut().enumerate() {
                if hole.contains(&(r.start + i as u64)) {
                    *b = 0;
                }
            }
            expect.extend_from_slice(&bytes);
        }
        let mut got = Vec::new();
        f.seek(SeekFrom::Start(0)).unwrap();
        f.read_to_end(&mut got).unwrap();
        assert_eq!(got.len(), expect.len());
        assert!(got == expect, "sparse copy differs from the dense bytes");
        assert_eq!(soft.len(), 1, "{soft:?}");
        assert!(
            soft[0].contains(&format!("{:#x}-{:#x}", hole.start, hole.end)),
            "{soft:?}"
        );
    }

    #[test]
    fn zero_detection() {
        let mut v = vec![0u8; ZERO_BLOCK + 7];
        assert!(is_zero(&v));
        v[ZERO_BLOCK + 6] = 1;
        assert!(!is_zero(&v));
        v[ZERO_BLOCK + 6] = 0;
        v[100] = 1;
        assert!(!is_zero(&v));
    }

    #[test]
    fn existing_bytes_are_overwritten_not_skipped() {
        // Zeros copied over old non-zero file content must be written.
        let dir = tempfile::tempdir().unwrap();
        let mut f = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(dir.path().join("d"))
            .unwrap();
        f.write_all(&vec![0xffu8; 3 * ZERO_BLOCK]).unwrap();
        f.seek(SeekFrom::Start(0)).unwrap();
        let mem = VecMem {
            base: 0,
            data: vec![0u8; 2 * ZERO_BLOCK],
            hole: 0..0,
        };
        let regions = [Region {
            start: 0,
            len: 2 * ZERO_BLOCK as u64,
        }];
        copy_regions(&mem, &regions, &mut f, &NoProgress, &mut Vec::new()).unwrap();
        let mut got = Vec::new();
        f.seek(SeekFrom::Start(0)).unwrap();
        f.read_to_end(&mut got).unwrap();
        assert!(got[..2 * ZERO_BLOCK].iter().all(|&b| b == 0));
        assert!(got[2 * ZERO_BLOCK..].iter().all(|&b| b == 0xff));
    }

    #[test]
    fn empty_plan_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = File::create(dir.path().join("d")).unwrap();
        let mem = VecMem {
            base: 0,
            data: vec![],
            hole: 0..0,
        };
        assert_eq!(
            copy_regions(&mem, &[], &mut f, &NoProgress, &mut Vec::new()).unwrap(),
            0
        );
        assert_eq!(f.metadata().unwrap().len(), 0);
    }
}
