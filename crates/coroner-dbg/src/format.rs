//! CDB's output formats for registers, memory, stacks, threads, modules
//! and exception records, as plain functions of data (no target access),
//! so each is unit-tested here and the session only gathers the data.

use crate::disasm::fmt_addr;
use coroner_types::{si_code_name, signal_name, SigInfo, UserRegs};
use std::fmt::Write as _;

/// `r` for x86-64: the register block CDB prints, then the flags line.
pub fn registers(r: &UserRegs) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "rax={:016x} rbx={:016x} rcx={:016x}",
        r.rax, r.rbx, r.rcx
    );
    let _ = writeln!(
        s,
        "rdx={:016x} rsi={:016x} rdi={:016x}",
        r.rdx, r.rsi, r.rdi
    );
    let _ = writeln!(
        s,
        "rip={:016x} rsp={:016x} rbp={:016x}",
        r.rip, r.rsp, r.rbp
    );
    let _ = writeln!(s, " r8={:016x}  r9={:016x} r10={:016x}", r.r8, r.r9, r.r10);
    let _ = writeln!(
        s,
        "r11={:016x} r12={:016x} r13={:016x}",
        r.r11, r.r12, r.r13
    );
    let _ = writeln!(s, "r14={:016x} r15={:016x}", r.r14, r.r15);
    let _ = writeln!(
        s,
        "iopl={}         {}",
        (r.eflags >> 12) & 3,
        flags_text(r.eflags)
    );
    let _ = writeln!(
        s,
        "cs={:04x}  ss={:04x}  ds={:04x}  es={:04x}  fs={:04x}  gs={:04x}             efl={:08x}",
        r.cs, r.ss, r.ds, r.es, r.fs, r.gs, r.eflags
    );
    s
}

/// `nv up ei pl zr na po nc`: CDB's flag mnemonics (OF DF IF SF ZF AF PF CF).
pub fn flags_text(efl: u64) -> String {
    let bit = |n: u32| efl & (1 << n) != 0;
    [
        if bit(11) { "ov" } else { "nv" },
        if bit(10) { "dn" } else { "up" },
        if bit(9) { "ei" } else { "di" },
        if bit(7) { "ng" } else { "pl" },
        if bit(6) { "zr" } else { "nz" },
        if bit(4) { "ac" } else { "na" },
        if bit(2) { "pe" } else { "po" },
        if bit(0) { "cy" } else { "nc" },
    ]
    .join(" ")
}

/// `db`: 16 bytes per line, a dash between the halves, then ASCII.
pub fn bytes_lines(addr: u64, data: &[u8]) -> String {
    let mut s = String::new();
    for (i, chunk) in data.chunks(16).enumerate() {
        let a = addr.wrapping_add(i as u64 * 16);
        let _ = write!(s, "{}  ", fmt_addr(a));
        for j in 0..16 {
            match chunk.get(j) {
                Some(b) => {
                    let sep = if j == 7 && chunk.len() > 8 { '-' } else { ' ' };
                    let _ = write!(s, "{b:02x}{sep}");
                }
                None => s.push_str("   "),
            }
        }
        s.push(' ');
        for b in chunk {
            s.push(if b.is_ascii_graphic() || *b == b' ' {
                *b as char
            } else {
                '.'
            });
        }
        s.push('\n');
    }
    s
}

/// `dw`, `dd`, `dq`: 16 bytes per line as little-endian numbers of `unit`
/// bytes (2, 4 or 8): eight words, four dwords or two qwords (with CDB's
/// backtick), two spaces after the address and one between numbers.
/// Bytes that do not fill a last number are not shown.
pub fn numbers_lines(addr: u64, data: &[u8], unit: usize) -> String {
    let mut s = String::new();
    for (i, chunk) in data.chunks(16).enumerate() {
        let _ = write!(s, "{} ", fmt_addr(addr.wrapping_add(i as u64 * 16)));
        for w in chunk.chunks_exact(unit) {
            let mut b = [0u8; 8];
            b[..unit].copy_from_slice(w);
            let v = u64::from_le_bytes(b);
            match unit {
                2 => {
                    let _ = write!(s, " {v:04x}");
                }
                4 => {
                    let _ = write!(s, " {v:08x}");
                }
                _ => {
                    let _ = write!(s, " {}", fmt_addr(v));
                }
            }
        }
        s.push('\n');
    }
    s
}

/// The signal and code words printed after an exception code:
/// `SIGSEGV SEGV_MAPERR`.
pub fn signal_words(si: &SigInfo) -> String {
    let name = signal_name(si.signo()).unwrap_or("signal");
    match si_code_name(si.signo(), si.code()) {
        Some(code) => format!("{name} {code}"),
        None => format!("{name} code {}", si.code()),
    }
}

/// `.exr` for a signal (spec §13.3): exception address and symbol, code
/// (signal number) and name, flags (si_code) and name, parameters, and the
/// decoded access line for faults.
pub fn exception_record(
    si: &SigInfo,
    pc: u64,
    symbol: Option<&str>,
    access: Option<&str>,
) -> String {
    let mut s = String::new();
    match symbol {
        Some(sym) => {
            let _ = writeln!(s, "ExceptionAddress: {pc:016x} ({sym})");
        }
        None => {
            let _ = writeln!(s, "ExceptionAddress: {pc:016x}");
        }
    }
    let _ = writeln!(
        s,
        "   ExceptionCode: {:08x} ({})",
        si.signo() as u32,
        signal_name(si.signo()).unwrap_or("unknown signal")
    );
    let code_name = si_code_name(si.signo(), si.code()).unwrap_or("");
    if code_name.is_empty() {
        let _ = writeln!(s, "  ExceptionFlags: {:08x}", si.code() as u32);
    } else {
        let _ = writeln!(
            s,
            "  ExceptionFlags: {:08x} ({code_name})",
            si.code() as u32
        );
    }
    match si.fault_address() {
        Some(addr) => {
            let _ = writeln!(s, "NumberParameters: 2");
            let kind = match access {
                Some("write") => 1u64,
                Some("execute") => 8,
                _ => 0,
            };
            let _ = writeln!(s, "   Parameter[0]: {kind:016x}");
            let _ = writeln!(s, "   Parameter[1]: {addr:016x}");
            let verb = match access {
                Some("write") => "Attempt to write to address",
                Some("execute") => "Attempt to execute non-executable address",
                _ => "Attempt to read from address",
            };
            if si.signo() == libc::SIGSEGV || si.signo() == libc::SIGBUS {
                let _ = writeln!(s, "{verb} {addr:016x}");
            }
        }
        None if !si.is_from_kernel() => {
            let _ = writeln!(s, "NumberParameters: 2");
            let _ = writeln!(s, "   Parameter[0]: {:016x}", si.sender_pid() as u32);
            let _ = writeln!(s, "   Parameter[1]: {:016x}", si.sender_uid());
            let _ = writeln!(
                s,
                "Sent by process {} (uid {})",
                si.sender_pid(),
                si.sender_uid()
            );
        }
        None => {
            let _ = writeln!(s, "NumberParameters: 0");
        }
    }
    s
}

/// The access kind of an x86-64 page fault from the context's error code
/// (`REG_ERR`, which ptrace does not expose; `None` when unknown).
pub fn access_from_err(err: Option<u64>) -> Option<&'static str> {
    let e = err?;
    Some(if e & 0x10 != 0 {
        "execute"
    } else if e & 0x2 != 0 {
        "write"
    } else {
        "read"
    })
}

/// Whether the instruction at `pc` writes or reads memory: a memory
/// destination (first operand) is a write. A heuristic (a `cmp` with a
/// memory first operand counts as a write); only used to word `.exr`'s
/// access line when the fault's error code is not available.
pub fn memory_access(code: &[u8], pc: u64) -> Option<&'static str> {
    use iced_x86::{Decoder, DecoderOptions, OpKind};
    let mut d = Decoder::with_ip(64, code, pc, DecoderOptions::NONE);
    if !d.can_decode() {
        return None;
    }
    let insn = d.decode();
    if insn.is_invalid() {
        return None;
    }
    if insn.op_count() > 0 && insn.op0_kind() == OpKind::Memory {
        return Some("write");
    }
    Some("read")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_block_is_cdb_shaped() {
        let r = UserRegs {
            rax: 1,
            rip: 0x7ff7_91d8_1014,
            eflags: 0x246,
            cs: 0x33,
            ss: 0x2b,
            ..Default::default()
        };
        let text = registers(&r);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "rax=0000000000000001 rbx=0000000000000000 rcx=0000000000000000"
        );
        assert_eq!(
            lines[2],
            "rip=00007ff791d81014 rsp=0000000000000000 rbp=0000000000000000"
        );
        assert_eq!(
            lines[3],
            " r8=0000000000000000  r9=0000000000000000 r10=0000000000000000"
        );
        assert_eq!(lines[6], "iopl=0         nv up ei pl zr na pe nc");
        assert!(lines[7].starts_with("cs=0033  ss=002b"));
        assert!(lines[7].ends_with("efl=00000246"));
    }

    #[test]
    fn memory_lines() {
        let data: Vec<u8> = (0u8..20).collect();
        let b = bytes_lines(0x1000, &data);
        assert_eq!(
            b.lines().next().unwrap(),
            "00000000`00001000  00 01 02 03 04 05 06 07-08 09 0a 0b 0c 0d 0e 0f  ................"
        );
        // CDB separates the numbers by one space (two after the address).
        let q = numbers_lines(0x1000, &data[..16], 8);
        assert_eq!(
            q,
            "00000000`00001000  07060504`03020100 0f0e0d0c`0b0a0908\n"
        );
        let d = numbers_lines(0x1000, &data[..8], 4);
        assert_eq!(d, "00000000`00001000  03020100 07060504\n");
        let w = numbers_lines(0x1000, &data, 2);
        assert_eq!(
            w,
            "00000000`00001000  0100 0302 0504 0706 0908 0b0a 0d0c 0f0e\n\
             00000000`00001010  1110 1312\n"
        );
    }

    #[test]
    fn exr_for_a_null_write() {
        let si = SigInfo::new_fault(11, 1, 0);
        let text = exception_record(
            &si,
            0x401000,
            Some("crasher!crash_segv_null+0x4"),
            Some("write"),
        );
        assert!(text.contains("ExceptionAddress: 0000000000401000 (crasher!crash_segv_null+0x4)"));
        assert!(text.contains("   ExceptionCode: 0000000b (SIGSEGV)"));
        assert!(text.contains("  ExceptionFlags: 00000001 (SEGV_MAPERR)"));
        assert!(text.contains("Attempt to write to address 0000000000000000"));
    }
}
