//! x86-64 disassembly in CDB's layout (`u`, the current-instruction line of
//! a register dump, step-over decisions).
//!
//! Owns: decoding bytes with iced-x86, formatting them in Intel syntax the way
//! CDB prints it (`mov     dword ptr [r11],r11d`: mnemonic padded to eight
//! columns, no space after commas, MASM-style `28h` hex, `int     3`), the
//! ``00007ff7`91d81014`` address form, and the "is this a call, how long is it"
//! questions step-over needs.
//!
//! Must not: read target memory or look symbols up itself (callers pass the
//! bytes and a symbolizer), or panic on any byte sequence: undecodable bytes
//! become one-byte `???` lines.
//!
//! Branch and call targets and RIP-relative memory operands are printed as
//! CDB does: ``symbol (00007ff7`91d81014)`` when the symbolizer knows the
//! address, else the bare address. Other immediates and displacements are
//! never symbolized (CDB does not either).

use std::collections::HashMap;

use iced_x86::{
    Code, Decoder, DecoderOptions, Formatter, Instruction, IntelFormatter, MemorySizeOptions,
    Mnemonic, OpKind, SymbolResolver, SymbolResult,
};

/// An address as CDB prints 64-bit pointers: 16 lowercase hex digits with a
/// backtick between the halves, ``00007ff7`91d81014``.
pub fn fmt_addr(a: u64) -> String {
    format!("{:08x}`{:08x}", a >> 32, a & 0xffff_ffff)
}

/// One disassembled instruction (or one undecodable byte).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisasmLine {
    pub address: u64,
    pub bytes: Vec<u8>,
    /// Mnemonic and operands, e.g. `mov     dword ptr [r11],r11d`; `???` for
    /// bytes that do not decode.
    pub text: String,
    pub len: usize,
}

impl DisasmLine {
    /// The full CDB line: address, the bytes in hex padded to 15 columns, a
    /// space, then the instruction text.
    pub fn render(&self) -> String {
        let hex: String = self.bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!("{} {:<15} {}", fmt_addr(self.address), hex, self.text)
    }
}

/// Hands iced the precomputed text for branch targets and RIP-relative
/// operands; everything else is left to the formatter.
struct Targets {
    text: HashMap<u64, String>,
}

impl SymbolResolver for Targets {
    fn symbol(
        &mut self,
        instruction: &Instruction,
        _operand: u32,
        instruction_operand: Option<u32>,
        address: u64,
        _address_size: u32,
    ) -> Option<SymbolResult<'_>> {
        let op = instruction_operand?;
        let wanted = match instruction.op_kind(op) {
            OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64 => true,
            OpKind::Memory => instruction.is_ip_rel_memory_operand(),
            _ => false,
        };
        if !wanted {
            return None;
        }
        let text = self.text.get(&address)?;
        Some(SymbolResult::with_str(address, text))
    }
}

/// The address an instruction refers to that CDB would symbolize, if any.
fn target_of(instr: &Instruction) -> Option<u64> {
    let branch = (0..instr.op_count()).any(|i| {
        matches!(
            instr.op_kind(i),
            OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64
        )
    });
    if branch {
        Some(instr.near_branch_target())
    } else if instr.is_ip_rel_memory_operand() {
        Some(instr.ip_rel_memory_address())
    } else {
        None
    }
}

fn cdb_formatter(targets: Targets) -> IntelFormatter {
    let mut f = IntelFormatter::with_options(Some(Box::new(targets)), None);
    let o = f.options_mut();
    o.set_first_operand_char_index(8);
    o.set_space_after_operand_separator(false);
    o.set_hex_prefix("");
    o.set_hex_suffix("h");
    o.set_uppercase_hex(true);
    o.set_add_leading_zero_to_hex_numbers(true);
    o.set_small_hex_numbers_in_decimal(true);
    o.set_show_branch_size(false);
    o.set_memory_size_options(MemorySizeOptions::Always);
    o.set_rip_relative_addresses(false);
    o.set_signed_immediate_operands(false);
    o.set_signed_memory_displacements(true);
    f
}

/// Decode one instruction at the start of `code`; `None` if it does not
/// decode (including when `code` ends inside it).
fn decode_one(code: &[u8], address: u64) -> Option<Instruction> {
    let mut decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    if !decoder.can_decode() {
        return None;
    }
    let instr = decoder.decode();
    (!instr.is_invalid() && instr.len() > 0 && instr.len() <= code.len()).then_some(instr)
}

/// Disassemble up to `max` instructions of `code`, which starts at `address`.
/// Stops early when the bytes run out; a truncated last instruction is
/// reported as `???` lines, one per byte.
pub fn disassemble(
    code: &[u8],
    address: u64,
    max: usize,
    symbolize: &dyn Fn(u64) -> Option<String>,
) -> Vec<DisasmLine> {
    // Pass 1: decode, so every target can be symbolized before the formatter
    // (which owns its resolver) exists.
    let mut decoded: Vec<(u64, usize, Option<Instruction>)> = Vec::new();
    let mut offset = 0usize;
    while decoded.len() < max {
        let Some(rest) = code.get(offset..).filter(|r| !r.is_empty()) else {
            break;
        };
        let here = address.wrapping_add(offset as u64);
        match decode_one(rest, here) {
            Some(instr) => {
                decoded.push((here, instr.len(), Some(instr)));
                offset += instr.len();
            }
            None => {
                decoded.push((here, 1, None));
                offset += 1;
            }
        }
    }
    let mut text = HashMap::new();
    for instr in decoded.iter().filter_map(|d| d.2.as_ref()) {
        if let Some(t) = target_of(instr) {
            text.entry(t).or_insert_with(|| match symbolize(t) {
                Some(name) => format!("{name} ({})", fmt_addr(t)),
                None => fmt_addr(t),
            });
        }
    }
    // Pass 2: format.
    let mut formatter = cdb_formatter(Targets { text });
    let mut out = Vec::with_capacity(decoded.len());
    let mut start = 0usize;
    for (here, len, instr) in decoded {
        let bytes = code.get(start..start + len).unwrap_or_default().to_vec();
        start += len;
        let text = match instr {
            None => "???".to_string(),
            Some(i) if i.code() == Code::Int3 => "int     3".to_string(),
            Some(i) => {
                let mut s = String::new();
                formatter.format(&i, &mut s);
                s
            }
        };
        out.push(DisasmLine {
            address: here,
            bytes,
            text,
            len,
        });
    }
    out
}

/// Length of the instruction at the start of `code`, or `None` if the bytes
/// do not decode.
pub fn instruction_len(code: &[u8], address: u64) -> Option<usize> {
    decode_one(code, address).map(|i| i.len())
}

/// If the instruction at the start of `code` is a call (direct, indirect or
/// far), its length (so step-over can set a breakpoint after it); else `None`.
pub fn is_call(code: &[u8], address: u64) -> Option<usize> {
    let instr = decode_one(code, address)?;
    // `Mnemonic::Call` covers near, far, direct and indirect forms (the
    // crate is built without iced's `instr_info` feature, so no FlowControl).
    (instr.mnemonic() == Mnemonic::Call).then_some(instr.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: u64 = 0x0000_7ff7_91d8_1014;

    fn nosym(_: u64) -> Option<String> {
        None
    }

    fn one(code: &[u8]) -> DisasmLine {
        let lines = disassemble(code, BASE, 1, &nosym);
        assert_eq!(lines.len(), 1, "{code:02x?}");
        lines.into_iter().next().unwrap_or_else(|| unreachable!())
    }

    #[test]
    fn address_format() {
        assert_eq!(fmt_addr(BASE), "00007ff7`91d81014");
        assert_eq!(fmt_addr(0), "00000000`00000000");
        assert_eq!(fmt_addr(u64::MAX), "ffffffff`ffffffff");
    }

    #[test]
    fn render_matches_cdb_layout() {
        let l = one(&[0x45, 0x89, 0x1b]);
        assert_eq!(l.len, 3);
        assert_eq!(
            l.render(),
            "00007ff7`91d81014 45891b          mov     dword ptr [r11],r11d"
        );
        assert_eq!(
            one(&[0xcc]).render(),
            "00007ff7`91d81014 cc              int     3"
        );
        // Eight bytes fill the column; one space still separates.
        let l = one(&[0x48, 0x89, 0x84, 0x24, 0x88, 0x00, 0x00, 0x00]);
        assert_eq!(
            l.render(),
            "00007ff7`91d81014 4889842488000000 mov     qword ptr [rsp+88h],rax"
        );
    }

    #[test]
    fn masm_style_numbers() {
        assert_eq!(one(&[0x48, 0x83, 0xec, 0x28]).text, "sub     rsp,28h");
        assert_eq!(
            one(&[0x48, 0x89, 0x5c, 0x24, 0x08]).text,
            "mov     qword ptr [rsp+8],rbx"
        );
        assert_eq!(
            one(&[0x48, 0x83, 0xe4, 0xf0]).text,
            "and     rsp,0FFFFFFFFFFFFFFF0h"
        );
        assert_eq!(
            one(&[0x8b, 0x45, 0xf0]).text,
            "mov     eax,dword ptr [rbp-10h]"
        );
        assert_eq!(one(&[0xb8, 0x0a, 0x00, 0x00, 0x00]).text, "mov     eax,0Ah");
        assert_eq!(one(&[0xc3]).text, "ret");
        assert_eq!(one(&[0x0f, 0x0b]).text, "ud2");
        assert_eq!(one(&[0x0f, 0x05]).text, "syscall");
        assert_eq!(
            one(&[0x64, 0x48, 0x8b, 0x04, 0x25, 0x28, 0x00, 0x00, 0x00]).text,
            "mov     rax,qword ptr fs:[28h]"
        );
    }

    #[test]
    fn long_mnemonic_gets_one_space() {
        // cvttsd2si eax,xmm0
        assert_eq!(one(&[0xf2, 0x0f, 0x2c, 0xc0]).text, "cvttsd2si eax,xmm0");
    }

    #[test]
    fn branch_targets_symbolized() {
        // call BASE-4 (e8 f7ffffff at BASE: next = BASE+5, target = BASE+5-9).
        let target = BASE - 4;
        let sym = |a: u64| (a == target).then(|| "test!foo".to_string());
        let lines = disassemble(&[0xe8, 0xf7, 0xff, 0xff, 0xff], BASE, 5, &sym);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].text, "call    test!foo (00007ff7`91d81010)");
        // Unknown target: bare CDB address, no `short`.
        assert_eq!(one(&[0xeb, 0xfe]).text, "jmp     00007ff7`91d81014");
        assert_eq!(one(&[0x74, 0x02]).text, "je      00007ff7`91d81018");
    }

    #[test]
    fn rip_relative_operands_symbolized() {
        // lea rcx,[rip+0FFF0h]: target = BASE + 7 + 0xfff0.
        let target = BASE + 7 + 0xfff0;
        let sym = |a: u64| (a == target).then(|| "test!g_var".to_string());
        let l = &disassemble(&[0x48, 0x8d, 0x0d, 0xf0, 0xff, 0x00, 0x00], BASE, 1, &sym)[0];
        assert_eq!(l.text, "lea     rcx,[test!g_var (00007ff7`91d9100b)]");
        // call qword ptr [rip+0]: an import slot, unknown.
        let l = one(&[0xff, 0x15, 0x00, 0x00, 0x00, 0x00]);
        assert_eq!(l.text, "call    qword ptr [00007ff7`91d8101a]");
        // Plain displacements are never symbolized.
        let all = |_: u64| Some("nope".to_string());
        let l = &disassemble(&[0x8b, 0x45, 0xf0], BASE, 1, &all)[0];
        assert_eq!(l.text, "mov     eax,dword ptr [rbp-10h]");
    }

    #[test]
    fn undecodable_and_truncated() {
        // A lone 0xff cannot decode; the truncated call becomes `???` bytes.
        let lines = disassemble(&[0x90, 0xe8, 0x00], BASE, 10, &nosym);
        let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["nop", "???", "???"]);
        assert_eq!(lines[1].address, BASE + 1);
        assert_eq!(lines[1].bytes, [0xe8]);
        assert_eq!(lines[1].render(), "00007ff7`91d81015 e8              ???");
        // 0x06 (push es) is invalid in 64-bit mode.
        assert_eq!(one(&[0x06]).text, "???");
        assert!(disassemble(&[], BASE, 5, &nosym).is_empty());
    }

    #[test]
    fn max_limits_lines() {
        let code = [0x90u8; 10];
        let lines = disassemble(&code, BASE, 3, &nosym);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[2].address, BASE + 2);
        assert!(disassemble(&code, BASE, 0, &nosym).is_empty());
    }

    #[test]
    fn lengths_and_calls() {
        assert_eq!(instruction_len(&[0x45, 0x89, 0x1b, 0x90], BASE), Some(3));
        assert_eq!(instruction_len(&[0xe8, 0x00], BASE), None);
        assert_eq!(instruction_len(&[], BASE), None);
        assert_eq!(is_call(&[0xe8, 0, 0, 0, 0], BASE), Some(5));
        assert_eq!(is_call(&[0xff, 0xd0], BASE), Some(2)); // call rax
        assert_eq!(is_call(&[0xff, 0x15, 0, 0, 0, 0], BASE), Some(6));
        assert_eq!(is_call(&[0xeb, 0xfe], BASE), None);
        assert_eq!(is_call(&[0xc3], BASE), None);
        assert_eq!(is_call(&[0x06], BASE), None);
    }

    #[test]
    fn never_panics_on_any_short_input() {
        for a in 0..=255u8 {
            for b in [0x00u8, 0x0f, 0x48, 0xff] {
                let code = [a, b, 0xff, 0x0f, 0x38];
                let lines = disassemble(&code, u64::MAX - 2, 8, &nosym);
                let total: usize = lines.iter().map(|l| l.len).sum();
                assert_eq!(total, code.len());
                let _ = instruction_len(&code, 0);
                let _ = is_call(&code, 0);
            }
        }
    }
}
