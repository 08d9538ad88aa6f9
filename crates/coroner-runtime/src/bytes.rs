//! Byte helpers for start-up that call no libc function.
//!
//! Each function of libc lives on some page of its text, and the first call
//! in a process costs a page fault for that page (about 2 µs under KVM,
//! docs/benchmarks.md). A process that starts and exits (`true`, a shell
//! pipeline stage) never calls `memcpy`, `memset` or `strlen` otherwise, so
//! start-up must not make the compiler emit them: it recognises a plain
//! copy loop as `memcpy`, a zeroed array as `memset` and a NUL scan as
//! `strlen`. These loops carry a second exit or a volatile store, which it
//! leaves alone. Only for the short strings of start-up.

use core::mem::MaybeUninit;

/// Longest string [`c_prefix`] measures.
const MAX_C: usize = 1 << 20;

/// The bytes at `s` up to the first `stop` byte or NUL (at most
/// [`MAX_C`]).
///
/// # Safety
/// `s` points to a NUL-terminated string that lives for `'a`.
pub(crate) unsafe fn c_prefix<'a>(s: *const u8, stop: u8) -> &'a [u8] {
    let mut n = 0usize;
    while n < MAX_C {
        // SAFETY: every byte before the NUL, and the NUL, is readable;
        // the loop stops at the NUL at the latest.
        let b = unsafe { *s.add(n) };
        if b == 0 || b == stop {
            break;
        }
        n += 1;
    }
    // SAFETY: the `n` bytes just read.
    unsafe { core::slice::from_raw_parts(s, n) }
}

/// Copies `src` into the start of `dst` (which is at least as long).
pub(crate) fn copy(dst: &mut [u8], src: &[u8]) {
    for (d, &b) in dst.iter_mut().zip(src) {
        // SAFETY: `d` is a valid, aligned, exclusive reference; the
        // volatile store only keeps the loop a loop.
        unsafe { core::ptr::write_volatile(d, b) };
    }
}

/// `buf` as the bytes it holds.
///
/// # Safety
/// Every byte of `buf` was written.
pub(crate) unsafe fn assume_init(buf: &[MaybeUninit<u8>]) -> &[u8] {
    // SAFETY: MaybeUninit<u8> has u8's layout; the caller says they are
    // initialised.
    unsafe { core::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), buf.len()) }
}

/// `buf` as room for bytes (initialised bytes are valid `MaybeUninit`s, and
/// only bytes are ever written back).
pub(crate) fn as_uninit(buf: &mut [u8]) -> &mut [MaybeUninit<u8>] {
    // SAFETY: same layout; every u8 is a valid MaybeUninit<u8>, and writes
    // through the result store initialised bytes only.
    unsafe { core::slice::from_raw_parts_mut(buf.as_mut_ptr().cast(), buf.len()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_copies() {
        // SAFETY: NUL-terminated literals.
        unsafe {
            assert_eq!(c_prefix(c"HOME=/h".as_ptr().cast(), b'='), b"HOME");
            assert_eq!(c_prefix(c"HOME=/h".as_ptr().cast(), 0), b"HOME=/h");
            assert_eq!(c_prefix(c"NOEQ".as_ptr().cast(), b'='), b"NOEQ");
            assert_eq!(c_prefix(c"".as_ptr().cast(), 0), b"");
        }
        let mut d = [0u8; 4];
        copy(&mut d, b"abc");
        assert_eq!(&d, b"abc\0");
    }
}
