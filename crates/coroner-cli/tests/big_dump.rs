//! A full dump larger than 4 GiB with one region larger than 2 GiB reads
//! back correctly (Memory64List offsets past 4 GiB, process_vm_readv split
//! at its per-call limit). Slow: marked ignored, run by CI with
//! `--include-ignored`.

mod common;

use common::*;
use coroner_crashers::{live_page_word, LIVE_MARKER, LIVE_PAGE};
use minidump::{Minidump, MinidumpMemory64List};
use std::process::Command;

#[test]
#[ignore = "slow: writes a 4.3 GiB dump"]
fn full_dump_over_4_gib_with_a_region_over_2_gib() {
    const MIB: usize = 4300;
    let live = Live::start(MIB, 2);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.dmp");
    let out = Command::new(coroner())
        .args(["dump", "-q", "-ma", &live.pid.to_string()])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::metadata(&path).unwrap().len() > 4 << 30);
    let md = Minidump::read_path(&path).unwrap();
    let mem: MinidumpMemory64List = md.get_stream().expect("Memory64List");
    let heap = mem
        .iter()
        .find(|r| r.base_address <= live.marker && live.marker < r.base_address + r.size)
        .expect("heap region in the dump");
    assert!(heap.size > 2 << 30, "heap region is {} bytes", heap.size);
    assert_eq!(
        heap.get_memory_at_address::<u64>(live.marker),
        Some(LIVE_MARKER)
    );
    // Pages before and after the 2 GiB and 4 GiB marks of the region, and
    // the last one: each holds its own index.
    let pages = MIB * 1024 * 1024 / LIVE_PAGE;
    for page in [
        1,
        (2 << 30) / LIVE_PAGE - 1,
        (2 << 30) / LIVE_PAGE,
        (4 << 30) / LIVE_PAGE + 3,
        pages - 1,
    ] {
        let addr = live.marker + (page * LIVE_PAGE) as u64 + 16;
        let region = mem.memory_at_address(addr).expect("page in dump");
        assert_eq!(
            region.get_memory_at_address::<u64>(addr),
            Some(live_page_word(page)),
            "page {page}"
        );
    }
    // Memory that lies past 4 GiB in the file is found too.
    let last = mem.iter().map(|r| r.base_address + r.size).max().unwrap();
    assert!(last > 0);
    drop(md);
    live.finish();
}
