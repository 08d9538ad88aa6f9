//! Any bytes as a debugger command line and as an expression: parsing and
//! evaluating must never panic, whatever the radix.
#![no_main]

use coroner_dbg::command::{parse_line, split_commands};
use coroner_dbg::expr::{parse_expr, parse_expr_prefix, ExprContext};
use libfuzzer_sys::fuzz_target;

/// Every register, symbol and memory read succeeds with a fixed value, so
/// evaluation goes as deep as the expression allows; reads of address 0 fail
/// so the error path is exercised too.
struct Fixed;

impl ExprContext for Fixed {
    fn register(&self, name: &str) -> Option<u64> {
        (!name.starts_with("$t")).then_some(0x7ffc_0000_1000)
    }
    fn symbol(&self, name: &str) -> Option<u64> {
        name.contains('!').then_some(0x40_1000)
    }
    fn read_memory(&self, addr: u64, _size: usize) -> Option<u64> {
        (addr != 0).then_some(u64::MAX)
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = split_commands(&text);
    let _ = parse_line(&text);
    if let Ok(e) = parse_expr(&text) {
        for radix in [2, 8, 10, 16, 7] {
            let _ = e.eval(&Fixed, radix);
        }
        let _ = e.to_string();
    }
    if let Ok((e, used)) = parse_expr_prefix(&text) {
        assert!(used <= text.len() && text.is_char_boundary(used));
        let _ = e.eval(&Fixed, 16);
    }
});
