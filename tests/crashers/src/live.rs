//! `live` and `sleep`: a process that stays alive in a known state for
//! debuggers and live dumps to look at, until its stdin reaches EOF.

use std::hint::black_box;
use std::io::{self, Read};
use std::ptr;
use std::sync::{Arc, Barrier};
use std::thread;

use coroner_crashers::{
    live_page_word, live_worker_name, LIVE_FRAME_BUFFER, LIVE_MARKER, LIVE_PAGE, LIVE_WORKER_DEPTH,
};

use crate::faults::die_setup;
use crate::say;

/// Heap block of `mib` MiB with every page written, `threads` workers parked
/// `LIVE_WORKER_DEPTH` frames deep, then `ready <pid> marker=.. threads=..`.
pub fn live(mib: usize, threads: usize) {
    let words = mib * (1 << 20) / 8;
    let per_page = LIVE_PAGE / 8;
    let mut block: Vec<u64> = (0..words).map(|i| live_page_word(i / per_page)).collect();
    block[0] = LIVE_MARKER;
    let block = black_box(block);

    let barrier = Arc::new(Barrier::new(threads + 1));
    for index in 0..threads {
        let barrier = Arc::clone(&barrier);
        // std names the OS thread with pthread_setname_np.
        let spawned = thread::Builder::new()
            .name(live_worker_name(index))
            .spawn(move || live_worker_recurse(LIVE_WORKER_DEPTH, &barrier));
        if spawned.is_err() {
            die_setup("spawning a thread");
        }
    }
    barrier.wait();
    let ready = format!(
        "ready {} marker={:#x} threads={threads}",
        std::process::id(),
        block.as_ptr() as u64
    );
    live_main_wait(0, &ready);
    drop(black_box(block));
}

/// `ready <pid>`, then wait for EOF on stdin.
pub fn sleep() {
    live_main_wait(0, &format!("ready {}", std::process::id()));
}

/// One of `LIVE_WORKER_DEPTH` frames of a worker, each with a filled
/// `LIVE_FRAME_BUFFER`-byte buffer; the deepest meets the barrier and parks.
#[no_mangle]
#[inline(never)]
pub fn live_worker_recurse(depth: usize, barrier: &Barrier) -> u64 {
    let mut frame = [0u8; LIVE_FRAME_BUFFER];
    for (i, byte) in frame.iter_mut().enumerate() {
        // SAFETY: `byte` is a valid, exclusive reference into `frame`.
        unsafe { ptr::write_volatile(byte, (depth as u8).wrapping_add(i as u8)) };
    }
    let below = if depth <= 1 {
        live_worker_park(barrier)
    } else {
        live_worker_recurse(depth - 1, barrier)
    };
    // Reading the buffer after the call keeps the frame (no tail call).
    below ^ u64::from(black_box(&frame)[depth % LIVE_FRAME_BUFFER])
}

/// The bottom of a worker: tells the main thread it is in place, then parks
/// until the process exits.
#[no_mangle]
#[inline(never)]
pub fn live_worker_park(barrier: &Barrier) -> u64 {
    barrier.wait();
    loop {
        thread::park();
    }
}

/// The main thread's wait, a few named frames deep: `live_main_wait` ×3,
/// which prints `ready` and then calls `live_main_read_stdin`. The line is
/// printed from inside the named frames so that a dump taken the moment the
/// reader sees it (while `write` is still returning) still shows them.
#[no_mangle]
#[inline(never)]
pub fn live_main_wait(depth: u32, ready: &str) -> u64 {
    if depth < 2 {
        black_box(live_main_wait(black_box(depth + 1), ready)) ^ u64::from(depth)
    } else {
        say(ready);
        // Not a tail call: the deepest `live_main_wait` frame stays on the
        // stack under `live_main_read_stdin`.
        black_box(live_main_read_stdin()) ^ u64::from(depth)
    }
}

/// Reads stdin until EOF; returns the bytes read.
#[no_mangle]
#[inline(never)]
pub fn live_main_read_stdin() -> u64 {
    let mut stdin = io::stdin().lock();
    let mut buf = [0u8; 512];
    let mut total = 0u64;
    loop {
        match stdin.read(&mut buf) {
            Ok(0) => return total,
            Ok(n) => total += n as u64,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return total,
        }
    }
}
