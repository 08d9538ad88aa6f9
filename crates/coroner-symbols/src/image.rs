//! [`ModuleImage`]: one module (an ELF file) mapped at a runtime base, for
//! the debugger (`coroner dbg`) on a live process, a minidump or an ELF core.
//!
//! Owns: the verified files of one module (found with
//! [`locate`](crate::locate), never by a search of its own), the load bias
//! between file addresses (SVMA) and runtime addresses, the module's ELF
//! symbols (`.symtab` of the debug file and binary, `.dynsym`), source lines
//! and inlined frames through addr2line, and the CFI sections the unwinder
//! ([`crate::cfi`]) reads. Files are read with `std::fs::read`, no mapping;
//! what was read is cached per file (and dropped when no image uses it).
//!
//! Must not: fail (every problem is recorded in the image's status, refusals
//! and errors), use a file whose build id differs from the one it is given,
//! or panic on a malformed file.
//!
//! Module names. CDB names a module after its image file without the
//! extension (`ntdll` for `ntdll.dll`), and `k`, `x` and `bp` take
//! `module!symbol`. Linux names carry version suffixes (`libc.so.6`,
//! `ld-linux-x86-64.so.2`), so the name here is the file name up to its first
//! `.`: `libc`, `ld-linux-x86-64`, `crasher`. Kernel-provided images such as
//! `[vdso]` lose their brackets (`vdso`). A name that would be empty (a file
//! name starting with `.`) is the whole file name.

use crate::elf::{hex, read_facts, ElfFacts};
use crate::locate::{locate, Found, Refusal, SymbolOptions};
use crate::plt::PltTable;
use crate::provider::{InlineCall, SymbolStatus};
use addr2line::gimli as dwarf;
use object::{
    CompressionFormat, Object, ObjectSection, ObjectSymbol, SectionKind, SymbolKind, SymbolSection,
};
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::SystemTime;

/// One symbol of a module, at its runtime address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SymbolHit {
    /// Demangled name, without Rust's `::h<hash>` suffix or an ELF symbol
    /// version (`@GLIBC_2.2.5`).
    pub name: String,
    /// The name as the symbol table spells it (mangled, with its version).
    pub raw_name: String,
    /// Runtime address of the symbol's first byte.
    pub address: u64,
    /// Size in bytes; 0 when the symbol table does not say.
    pub size: u64,
}

/// A symbol as read from the file (file addresses).
#[derive(Clone, Debug)]
struct FileSymbol {
    svma: u64,
    size: u64,
    raw_name: String,
    name: String,
    function: bool,
    /// Preference among aliases at one address: global over weak over
    /// local, then the default symbol version over an old one.
    rank: u8,
}

/// A section copied out of a file, with its file address.
#[derive(Clone, Debug, Default)]
pub(crate) struct CfiSection {
    pub svma: u64,
    pub data: Vec<u8>,
}

/// FDEs of a section without a search table: (start, length, offset),
/// sorted by start.
pub(crate) type FdeIndex = Vec<(u64, u64, usize)>;

/// The unwind sections of a module, from whichever verified file has them.
#[derive(Debug, Default)]
pub(crate) struct CfiSections {
    pub eh_frame: Option<CfiSection>,
    pub eh_frame_hdr: Option<CfiSection>,
    pub debug_frame: Option<CfiSection>,
    pub text_svma: Option<u64>,
    pub got_svma: Option<u64>,
    /// Built on first use: `.eh_frame` (only when there is no
    /// `.eh_frame_hdr`) and `.debug_frame`.
    pub eh_frame_index: OnceLock<FdeIndex>,
    pub debug_frame_index: OnceLock<FdeIndex>,
}

impl CfiSections {
    pub(crate) fn is_empty(&self) -> bool {
        self.eh_frame.is_none() && self.debug_frame.is_none()
    }
}

/// An executable section of the binary: file address, size, file offset.
#[derive(Clone, Copy, Debug)]
struct CodeRange {
    svma: u64,
    size: u64,
    offset: u64,
}

/// A reader over a shared byte buffer, for addr2line's gimli (its own
/// `EndianArcSlice` needs a feature this workspace does not enable).
#[derive(Clone, Debug)]
struct SharedReader {
    data: Arc<Vec<u8>>,
    start: usize,
    end: usize,
    endian: dwarf::RunTimeEndian,
}

type DwarfContext = addr2line::Context<SharedReader>;

/// What one file image gives, shared by every [`ModuleImage`] of it.
struct Inner {
    binary: Option<PathBuf>,
    debug_file: Option<PathBuf>,
    build_id: Option<String>,
    status: SymbolStatus,
    refusals: Vec<Refusal>,
    errors: Vec<String>,
    svma_base: u64,
    /// Sorted by `svma`.
    symbols: Vec<FileSymbol>,
    /// Indices into `symbols` of the functions.
    functions: Vec<usize>,
    cfi: CfiSections,
    /// The binary's bytes and its executable sections (code bytes for the
    /// unwinder's signal-trampoline check).
    code_data: Option<Arc<Vec<u8>>>,
    code_ranges: Vec<CodeRange>,
    /// The PLT sections and the stubs named after their targets.
    plt: PltTable,
    /// The file with DWARF, parsed on first use.
    dwarf_src: Option<(PathBuf, Arc<Vec<u8>>)>,
    dwarf: OnceLock<Option<Mutex<DwarfContext>>>,
    dwarf_error: Mutex<Option<String>>,
}

/// One module mapped at a runtime base. Cheap to clone.
#[derive(Clone)]
pub struct ModuleImage {
    code_file: String,
    base: u64,
    size: u64,
    /// Runtime symbols, sorted by address (same order as `inner.symbols`).
    symbols: Arc<Vec<SymbolHit>>,
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ModuleImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModuleImage")
            .field("code_file", &self.code_file)
            .field("base", &format_args!("{:#x}", self.base))
            .field("size", &format_args!("{:#x}", self.size))
            .field("status", &self.inner.status)
            .field("binary", &self.inner.binary)
            .field("debug_file", &self.inner.debug_file)
            .finish()
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    code_file: String,
    build_id: Option<String>,
    debug_dirs: Vec<PathBuf>,
    binary_dirs: Vec<PathBuf>,
    sysroot: Option<PathBuf>,
    /// Length and modification time of the code file, so that a file
    /// rebuilt in place is read again.
    stamp: Option<(u64, Option<SystemTime>)>,
}

fn cache() -> &'static Mutex<HashMap<CacheKey, Weak<Inner>>> {
    static CACHE: OnceLock<Mutex<HashMap<CacheKey, Weak<Inner>>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ModuleImage {
    /// The module `code_file` (a path as `/proc/PID/maps`, a minidump or a
    /// core's `NT_FILE` names it) mapped at `base` (the start of its file
    /// offset 0 mapping) for `size` bytes. `build_id` (lower-case hex), when
    /// given, must match the files used. Never fails: see [`Self::status`],
    /// [`Self::refusals`] and [`Self::errors`].
    pub fn load(
        opts: &SymbolOptions,
        code_file: &str,
        base: u64,
        size: u64,
        build_id: Option<&str>,
    ) -> ModuleImage {
        let build_id = build_id
            .map(str::to_ascii_lowercase)
            .filter(|s| !s.is_empty());
        let clean = code_file.strip_suffix(" (deleted)").unwrap_or(code_file);
        let stamp = std::fs::metadata(clean)
            .ok()
            .map(|m| (m.len(), m.modified().ok()));
        let key = CacheKey {
            code_file: code_file.to_string(),
            build_id: build_id.clone(),
            debug_dirs: opts.debug_dirs.clone(),
            binary_dirs: opts.binary_dirs.clone(),
            sysroot: opts.sysroot.clone(),
            stamp,
        };
        let cached = lock(cache()).get(&key).and_then(Weak::upgrade);
        let inner = match cached {
            Some(inner) => inner,
            None => {
                let found = locate(opts, code_file, build_id.as_deref());
                let inner = Arc::new(Inner::from_found(found, build_id));
                let mut c = lock(cache());
                c.retain(|_, w| w.strong_count() > 0);
                // Another thread may have read the same file meanwhile:
                // share its copy rather than replace it (so every image of
                // one file keeps sharing one read).
                match c.get(&key).and_then(Weak::upgrade) {
                    Some(theirs) => theirs,
                    None => {
                        c.insert(key, Arc::downgrade(&inner));
                        inner
                    }
                }
            }
        };
        ModuleImage::with_inner(code_file, base, size, inner)
    }

    /// A module whose file image was read from the target's memory (the
    /// vDSO, which has no file on disk), mapped at `base`.
    pub fn from_bytes(code_file: &str, base: u64, size: u64, data: Vec<u8>) -> ModuleImage {
        let inner = match read_facts(&data) {
            Ok(facts) => {
                Inner::from_files(None, Some((None, data, facts)), None, Vec::new(), vec![])
            }
            Err(e) => Inner::from_files(
                None,
                None,
                None,
                Vec::new(),
                vec![format!(
                    "{code_file}: image in memory is not usable ELF: {e}"
                )],
            ),
        };
        ModuleImage::with_inner(code_file, base, size, Arc::new(inner))
    }

    fn with_inner(code_file: &str, base: u64, size: u64, inner: Arc<Inner>) -> ModuleImage {
        let bias = base.wrapping_sub(inner.svma_base);
        let mut symbols: Vec<SymbolHit> = inner
            .symbols
            .iter()
            .map(|s| SymbolHit {
                name: s.name.clone(),
                raw_name: s.raw_name.clone(),
                address: s.svma.wrapping_add(bias),
                size: s.size,
            })
            .collect();
        // Same order as the file's unless the bias wrapped (garbage input).
        if !symbols.is_sorted_by_key(|s| s.address) {
            symbols.sort_by_key(|s| s.address);
        }
        ModuleImage {
            code_file: code_file.to_string(),
            base,
            size,
            symbols: Arc::new(symbols),
            inner,
        }
    }

    /// The file name up to its first `.` (see the module docs).
    pub fn name(&self) -> String {
        module_name(&self.code_file)
    }

    /// The code file as given to [`Self::load`].
    pub fn code_file(&self) -> &str {
        &self.code_file
    }

    /// Runtime address of the module's first mapping (file offset 0).
    pub fn base(&self) -> u64 {
        self.base
    }

    /// One past the module's last mapped byte.
    pub fn end(&self) -> u64 {
        self.base.saturating_add(self.size)
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// `true` when `addr` lies in `[base, end)`.
    pub fn contains(&self, addr: u64) -> bool {
        addr >= self.base && addr < self.end()
    }

    /// The verified binary on disk, if one was found.
    pub fn path(&self) -> Option<&Path> {
        self.inner.binary.as_deref()
    }

    /// The separate debug file used, if any.
    pub fn debug_file(&self) -> Option<&Path> {
        self.inner.debug_file.as_deref()
    }

    /// Build id (lower-case hex): the one given to [`Self::load`], else the
    /// file's.
    pub fn build_id(&self) -> Option<&str> {
        self.inner.build_id.as_deref()
    }

    pub fn status(&self) -> &SymbolStatus {
        &self.inner.status
    }

    /// Files refused for this module (wrong build id, bad debuglink CRC).
    pub fn refusals(&self) -> &[Refusal] {
        &self.inner.refusals
    }

    /// Read and parse failures met while loading (and while parsing DWARF,
    /// once it has been asked for).
    pub fn errors(&self) -> Vec<String> {
        let mut v = self.inner.errors.clone();
        v.extend(lock(&self.inner.dwarf_error).clone());
        v
    }

    /// `true` when a verified file gave `.eh_frame` or `.debug_frame`.
    pub fn has_cfi(&self) -> bool {
        !self.inner.cfi.is_empty()
    }

    /// Runtime address minus file address.
    pub fn bias(&self) -> u64 {
        self.base.wrapping_sub(self.inner.svma_base)
    }

    /// File address (SVMA) of a runtime address in this module.
    pub fn to_svma(&self, addr: u64) -> Option<u64> {
        if !self.contains(addr) {
            return None;
        }
        addr.checked_sub(self.base)?
            .checked_add(self.inner.svma_base)
    }

    fn to_runtime(&self, svma: u64) -> u64 {
        svma.wrapping_add(self.bias())
    }

    /// Every function and data symbol, sorted by address.
    pub fn symbols(&self) -> &[SymbolHit] {
        &self.symbols
    }

    /// The function containing `addr`: the nearest preceding function symbol
    /// whose size covers `addr`, or the nearest preceding one in the same
    /// code section when its size is 0; else the data object (a variable)
    /// whose bytes hold `addr`. Among aliases, global names win over weak, weak over local, and
    /// a symbol's default version over an old one. In a PLT section it is
    /// the stub, named after the function it jumps to (`puts@plt`), or
    /// `<plt>` at the section's start; a GOT slot a dynamic relocation
    /// fills is `puts@got.plt` (see [`crate::plt`]).
    pub fn symbol_at(&self, addr: u64) -> Option<SymbolHit> {
        let svma = self.to_svma(addr)?;
        if let Some(p) = self.inner.plt.at(svma) {
            return Some(SymbolHit {
                name: p.name,
                raw_name: p.raw_name,
                address: self.to_runtime(p.svma),
                size: p.size,
            });
        }
        let syms = &self.inner.symbols;
        let funcs = &self.inner.functions;
        // Functions at or below svma.
        let upto = funcs.partition_point(|&i| syms.get(i).is_some_and(|s| s.svma <= svma));
        let nearest = syms.get(*funcs.get(upto.checked_sub(1)?)?)?.svma;
        let mut best: Option<&FileSymbol> = None;
        let mut sizeless: Option<&FileSymbol> = None;
        // Walk back a bounded number of candidates: a sized symbol further
        // down may still contain svma (nested or overlapping symbols).
        for &i in funcs[..upto].iter().rev().take(64) {
            let Some(s) = syms.get(i) else { continue };
            if s.size > 0 && svma < s.svma.saturating_add(s.size) {
                if best.is_none_or(|b| b.svma == s.svma && s.rank > b.rank) {
                    best = Some(s);
                }
            } else if s.size == 0 && s.svma == nearest && sizeless.is_none_or(|b| s.rank > b.rank) {
                sizeless = Some(s);
            }
            if best.is_some_and(|b| b.svma != s.svma) {
                break;
            }
        }
        // A symbol without a size covers what follows it in its own code
        // section only: `_fini` (size 0, at the end of `.fini`) must not
        // name every address of `.rodata` and `.data` after it.
        let sizeless = sizeless.filter(|s| self.same_code_section(s.svma, svma));
        let s = match best.or(sizeless) {
            Some(s) => s,
            None => self.object_at(svma)?,
        };
        Some(SymbolHit {
            name: s.name.clone(),
            raw_name: s.raw_name.clone(),
            address: self.to_runtime(s.svma),
            size: s.size,
        })
    }

    /// Whether `a` and `b` lie in one executable section; also when the
    /// sections are not known (no binary: only the symbols).
    fn same_code_section(&self, a: u64, b: u64) -> bool {
        let ranges = &self.inner.code_ranges;
        if ranges.is_empty() {
            return true;
        }
        let of = |x: u64| {
            ranges
                .iter()
                .position(|r| x >= r.svma && x - r.svma < r.size)
        };
        of(a).is_some_and(|i| of(b) == Some(i))
    }

    /// The data object (a variable: a sized symbol that is not a function)
    /// whose bytes hold `svma`, for addresses no function covers.
    fn object_at(&self, svma: u64) -> Option<&FileSymbol> {
        let syms = &self.inner.symbols;
        let upto = syms.partition_point(|s| s.svma <= svma);
        let mut best: Option<&FileSymbol> = None;
        for s in syms[..upto].iter().rev().take(64) {
            if s.function || s.size == 0 || svma >= s.svma.saturating_add(s.size) {
                continue;
            }
            if best.is_none_or(|b| b.svma == s.svma && s.rank > b.rank) {
                best = Some(s);
            } else {
                break;
            }
        }
        best
    }

    /// Symbols named `name`: the raw (mangled, maybe `@VERSION`) name, the
    /// demangled bare name, or that with Rust's `::h<hash>` suffix; and
    /// PLT stubs by their `name@plt`.
    pub fn lookup(&self, name: &str) -> Vec<SymbolHit> {
        let bare = strip_rust_hash(name);
        let mut hits: Vec<SymbolHit> = self
            .symbols
            .iter()
            .filter(|s| s.raw_name == name || s.name == name || s.name == bare)
            .cloned()
            .collect();
        if name.ends_with("@plt") {
            hits.extend(
                self.inner
                    .plt
                    .stubs()
                    .iter()
                    .filter(|s| s.name == name || s.raw_name == name)
                    .map(|s| SymbolHit {
                        name: s.name.clone(),
                        raw_name: s.raw_name.clone(),
                        address: self.to_runtime(s.svma),
                        size: s.size,
                    }),
            );
        }
        hits
    }

    /// Source file and line of `addr` (the innermost inlined location), from
    /// DWARF.
    pub fn line_at(&self, addr: u64) -> Option<(String, u32)> {
        let svma = self.to_svma(addr)?;
        let ctx = lock(self.dwarf()?);
        let loc = ctx.find_location(svma).ok()??;
        Some((loc.file?.to_string(), loc.line?))
    }

    /// The functions at `addr`, outermost first: the real function, then
    /// each inlined call; each with the location it reaches (the call site
    /// of the next one, the last one's is `addr`'s own). Empty without DWARF.
    pub fn frames_at(&self, addr: u64) -> Vec<InlineCall> {
        let Some(svma) = self.to_svma(addr) else {
            return Vec::new();
        };
        let Some(ctx) = self.dwarf() else {
            return Vec::new();
        };
        let ctx = lock(ctx);
        let mut out = Vec::new();
        if let Ok(mut it) = ctx.find_frames(svma).skip_all_loads() {
            while let Ok(Some(f)) = it.next() {
                let function = f
                    .function
                    .as_ref()
                    .and_then(|n| n.demangle().ok().map(Cow::into_owned))
                    .unwrap_or_default();
                let (file, line) = match f.location {
                    Some(l) => (l.file.map(str::to_string), l.line),
                    None => (None, None),
                };
                out.push(InlineCall {
                    function,
                    file,
                    line,
                });
                if out.len() > 256 {
                    break;
                }
            }
        }
        drop(ctx);
        out.reverse();
        if let Some(first) = out.first_mut() {
            if first.function.is_empty() {
                if let Some(s) = self.symbol_at(addr) {
                    first.function = s.name;
                }
            }
        }
        out
    }

    /// The unwind sections, for [`crate::cfi`].
    pub(crate) fn cfi(&self) -> &CfiSections {
        &self.inner.cfi
    }

    /// `len` bytes of the binary's code at runtime address `addr`, from the
    /// file (for when the target's memory does not have them).
    pub(crate) fn code_bytes(&self, addr: u64, len: usize) -> Option<&[u8]> {
        let svma = self.to_svma(addr)?;
        let data = self.inner.code_data.as_ref()?;
        let r = self
            .inner
            .code_ranges
            .iter()
            .find(|r| svma >= r.svma && svma - r.svma < r.size)?;
        let left = r.size - (svma - r.svma);
        if (len as u64) > left {
            return None;
        }
        let start = usize::try_from(r.offset.checked_add(svma - r.svma)?).ok()?;
        data.get(start..start.checked_add(len)?)
    }

    fn dwarf(&self) -> Option<&Mutex<DwarfContext>> {
        self.inner
            .dwarf
            .get_or_init(|| {
                let (path, data) = self.inner.dwarf_src.as_ref()?;
                match load_dwarf(path, data) {
                    Ok(ctx) => Some(Mutex::new(ctx)),
                    Err(e) => {
                        *lock(&self.inner.dwarf_error) =
                            Some(format!("{}: DWARF not usable: {e}", path.display()));
                        None
                    }
                }
            })
            .as_ref()
    }
}

#[cfg(test)]
impl ModuleImage {
    /// An image with no files, only the given CFI (unwinder tests).
    pub(crate) fn synthetic(
        code_file: &str,
        base: u64,
        size: u64,
        svma_base: u64,
        cfi: CfiSections,
    ) -> ModuleImage {
        let mut inner = Inner::from_files(None, None, None, Vec::new(), Vec::new());
        inner.svma_base = svma_base;
        inner.cfi = cfi;
        ModuleImage::with_inner(code_file, base, size, Arc::new(inner))
    }
}

/// See the module docs.
pub fn module_name(code_file: &str) -> String {
    let clean = code_file.strip_suffix(" (deleted)").unwrap_or(code_file);
    let file = clean.rsplit('/').next().unwrap_or(clean);
    let file = file
        .strip_prefix('[')
        .and_then(|f| f.strip_suffix(']'))
        .unwrap_or(file);
    match file.split('.').next() {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => file.to_string(),
    }
}

/// `foo::h0123456789abcdef` → `foo`; anything else unchanged.
fn strip_rust_hash(name: &str) -> &str {
    if let Some((head, hash)) = name.rsplit_once("::h") {
        if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return head;
        }
    }
    name
}

type FileParts = (Option<PathBuf>, Vec<u8>, ElfFacts);

impl Inner {
    fn from_found(found: Found, build_id: Option<String>) -> Inner {
        let Found {
            binary,
            debug,
            refusals,
            errors,
        } = found;
        Inner::from_files(
            build_id,
            binary.map(|b| (Some(b.path), b.data, b.facts)),
            debug.map(|d| (Some(d.path), d.data, d.facts)),
            refusals,
            errors,
        )
    }

    fn from_files(
        build_id: Option<String>,
        binary: Option<FileParts>,
        debug: Option<FileParts>,
        refusals: Vec<Refusal>,
        mut errors: Vec<String>,
    ) -> Inner {
        let binary = binary.map(|(p, d, f)| (p, Arc::new(d), f));
        let debug = debug.map(|(p, d, f)| (p, Arc::new(d), f));
        let has_syms = |f: &ElfFacts| f.has_dwarf || f.has_symbols;
        let sym_src = match (&debug, &binary) {
            (Some(d), _) if has_syms(&d.2) => Some(d),
            (_, Some(b)) => Some(b),
            (Some(d), None) => Some(d),
            (None, None) => None,
        };
        let status = match sym_src {
            Some(s) if s.2.has_dwarf => SymbolStatus::Dwarf,
            Some(s) if s.2.has_symbols => SymbolStatus::SymbolTable,
            Some(_) => SymbolStatus::NoSymbols,
            None if !refusals.is_empty() => SymbolStatus::Refused,
            None => SymbolStatus::NotFound,
        };
        let svma_base = binary
            .as_ref()
            .or(debug.as_ref())
            .map(|i| i.2.svma_base)
            .unwrap_or(0);
        let build_id = build_id.or_else(|| {
            binary
                .as_ref()
                .or(debug.as_ref())
                .and_then(|i| i.2.build_id.as_deref().map(hex))
        });

        // Symbols: both files' tables, merged (a stripped binary keeps
        // `.dynsym`; the debug file has the full `.symtab`).
        let mut raw: Vec<FileSymbol> = Vec::new();
        for (_, data, _) in [&debug, &binary].into_iter().flatten() {
            if let Ok(file) = object::File::parse(&***data) {
                collect_symbols(&file, &mut raw);
            }
        }
        raw.sort_by(|a, b| {
            (a.svma, &a.raw_name)
                .cmp(&(b.svma, &b.raw_name))
                .then(b.size.cmp(&a.size))
        });
        raw.dedup_by(|a, b| a.svma == b.svma && a.raw_name == b.raw_name);
        let functions = raw
            .iter()
            .enumerate()
            .filter(|(_, s)| s.function)
            .map(|(i, _)| i)
            .collect();

        // CFI: `.eh_frame` lives in the binary; `.debug_frame` usually in
        // the debug file.
        let mut cfi = CfiSections::default();
        let order: Vec<_> = [&binary, &debug].into_iter().flatten().collect();
        for (_, data, _) in &order {
            let Ok(file) = object::File::parse(&***data) else {
                continue;
            };
            if cfi.eh_frame.is_none() {
                cfi.eh_frame = section_copy(&file, ".eh_frame");
                if cfi.eh_frame.is_some() {
                    cfi.eh_frame_hdr = section_copy(&file, ".eh_frame_hdr");
                    cfi.text_svma = section_address(&file, ".text");
                    cfi.got_svma = section_address(&file, ".got");
                }
            }
        }
        for (_, data, _) in order.iter().rev() {
            let Ok(file) = object::File::parse(&***data) else {
                continue;
            };
            if cfi.debug_frame.is_none() {
                cfi.debug_frame = section_copy(&file, ".debug_frame");
            }
        }

        // Code bytes: the binary's executable sections.
        let mut code_ranges = Vec::new();
        let code_data = binary.as_ref().map(|b| Arc::clone(&b.1));
        if let Some(data) = &code_data {
            if let Ok(file) = object::File::parse(&***data) {
                for s in file.sections() {
                    if s.kind() != SectionKind::Text {
                        continue;
                    }
                    if let Some((offset, size)) = s.file_range() {
                        code_ranges.push(CodeRange {
                            svma: s.address(),
                            size: size.min(s.size()),
                            offset,
                        });
                    }
                }
            }
        }

        // PLT: the sections of whichever file has them (a debug file has
        // them as NOBITS), the stubs from the binary's bytes.
        let plt = {
            let layout = binary.as_ref().or(debug.as_ref());
            let layout = layout.and_then(|l| object::File::parse(&**l.1).ok());
            let code = binary
                .as_ref()
                .and_then(|b| object::File::parse(&**b.1).ok());
            match &layout {
                Some(l) => PltTable::read(l, code.as_ref()),
                None => PltTable::default(),
            }
        };

        let dwarf_src = sym_src.filter(|s| s.2.has_dwarf).map(|s| {
            (
                s.0.clone().unwrap_or_else(|| PathBuf::from("(memory)")),
                Arc::clone(&s.1),
            )
        });
        if sym_src.is_some() && cfi.is_empty() {
            errors.push("no .eh_frame or .debug_frame in the verified files".to_string());
        }
        Inner {
            binary: binary.as_ref().and_then(|b| b.0.clone()),
            debug_file: debug.as_ref().and_then(|d| d.0.clone()),
            build_id,
            status,
            refusals,
            errors,
            svma_base,
            symbols: raw,
            functions,
            cfi,
            code_data,
            code_ranges,
            plt,
            dwarf_src,
            dwarf: OnceLock::new(),
            dwarf_error: Mutex::new(None),
        }
    }
}

fn collect_symbols(file: &object::File<'_>, out: &mut Vec<FileSymbol>) {
    for sym in file.symbols().chain(file.dynamic_symbols()) {
        let function = match sym.kind() {
            SymbolKind::Text => true,
            SymbolKind::Data => false,
            _ => continue,
        };
        if sym.is_undefined() || !matches!(sym.section(), SymbolSection::Section(_)) {
            continue;
        }
        let Ok(raw_name) = sym.name() else { continue };
        if raw_name.is_empty() || sym.address() == 0 {
            continue;
        }
        // `.symtab` spells versioned symbols `name@VERSION` (and the
        // default version `name@@VERSION`); the name shown and looked up is
        // the bare one, and the default version wins among aliases.
        let (bare, default_version) = match raw_name.split_once('@') {
            Some((bare, v)) if !bare.is_empty() => (bare, v.starts_with('@')),
            _ => (raw_name, true),
        };
        let name = addr2line::demangle_auto(Cow::Borrowed(bare), None);
        let name = strip_rust_hash(&name).to_string();
        let binding = if sym.is_weak() {
            1
        } else if sym.is_global() {
            2
        } else {
            0
        };
        let rank = binding * 2 + u8::from(default_version);
        out.push(FileSymbol {
            svma: sym.address(),
            size: sym.size(),
            raw_name: raw_name.to_string(),
            name,
            function,
            rank,
        });
    }
}

fn section_address(file: &object::File<'_>, name: &str) -> Option<u64> {
    file.section_by_name(name).map(|s| s.address())
}

fn section_copy(file: &object::File<'_>, name: &str) -> Option<CfiSection> {
    let s = file.section_by_name(name)?;
    if s.kind() == SectionKind::UninitializedData {
        return None;
    }
    let data = s.uncompressed_data().ok()?;
    (!data.is_empty()).then(|| CfiSection {
        svma: s.address(),
        data: data.into_owned(),
    })
}

/// A DWARF section as a reader over the shared file bytes (no copy), or
/// over its decompressed copy.
fn dwarf_section(
    file: &object::File<'_>,
    data: &Arc<Vec<u8>>,
    id: dwarf::SectionId,
    endian: dwarf::RunTimeEndian,
) -> SharedReader {
    let empty = SharedReader {
        data: Arc::new(Vec::new()),
        start: 0,
        end: 0,
        endian,
    };
    let Some(s) = file.section_by_name(id.name()) else {
        return empty;
    };
    if s.kind() == SectionKind::UninitializedData {
        return empty;
    }
    if let Ok(r) = s.compressed_file_range() {
        if r.format == CompressionFormat::None {
            let start = usize::try_from(r.offset).ok();
            let len = usize::try_from(r.uncompressed_size).ok();
            if let (Some(start), Some(len)) = (start, len) {
                if let Some(end) = start.checked_add(len).filter(|&e| e <= data.len()) {
                    return SharedReader {
                        data: Arc::clone(data),
                        start,
                        end,
                        endian,
                    };
                }
            }
            return empty;
        }
    }
    match s.uncompressed_data() {
        Ok(d) => {
            let d = d.into_owned();
            let end = d.len();
            SharedReader {
                data: Arc::new(d),
                start: 0,
                end,
                endian,
            }
        }
        Err(_) => empty,
    }
}

#[derive(Debug, thiserror::Error)]
enum DwarfLoadError {
    #[error("cannot parse the ELF file: {0}")]
    Object(#[from] object::Error),
    #[error("cannot read DWARF: {0}")]
    Dwarf(#[from] dwarf::Error),
}

fn load_dwarf(path: &Path, data: &Arc<Vec<u8>>) -> Result<DwarfContext, DwarfLoadError> {
    let file = object::File::parse(&***data)?;
    let endian = if file.is_little_endian() {
        dwarf::RunTimeEndian::Little
    } else {
        dwarf::RunTimeEndian::Big
    };
    let mut d =
        dwarf::Dwarf::load(|id| Ok::<_, dwarf::Error>(dwarf_section(&file, data, id, endian)))?;
    // A dwz supplementary file (`.gnu_debugaltlink`), next to the debug
    // file or by its path; used only if its build id matches the link's.
    if let Ok(Some((name, id))) = file.gnu_debugaltlink() {
        let name = Path::new(std::ffi::OsStr::new(
            std::str::from_utf8(name).unwrap_or_default(),
        ));
        let cand = if name.is_absolute() {
            name.to_path_buf()
        } else {
            path.parent().unwrap_or(Path::new("/")).join(name)
        };
        if let Ok(sup_bytes) = std::fs::read(&cand) {
            let sup_data = Arc::new(sup_bytes);
            if let Ok(sup) = object::File::parse(&**sup_data) {
                if sup.build_id().ok().flatten() == Some(id) {
                    d.load_sup(|sid| {
                        Ok::<_, dwarf::Error>(dwarf_section(&sup, &sup_data, sid, endian))
                    })?;
                }
            }
        }
    }
    Ok(addr2line::Context::from_dwarf(d)?)
}

impl SharedReader {
    fn bytes(&self) -> &[u8] {
        self.data.get(self.start..self.end).unwrap_or_default()
    }

    fn eof(&self) -> dwarf::Error {
        dwarf::Error::UnexpectedEof(dwarf::ReaderOffsetId(self.id_base() + self.start as u64))
    }

    fn id_base(&self) -> u64 {
        self.data.as_ptr() as u64
    }
}

impl dwarf::Reader for SharedReader {
    type Endian = dwarf::RunTimeEndian;
    type Offset = usize;

    fn endian(&self) -> Self::Endian {
        self.endian
    }

    fn len(&self) -> usize {
        self.end - self.start
    }

    fn empty(&mut self) {
        self.start = self.end;
    }

    fn truncate(&mut self, len: usize) -> dwarf::Result<()> {
        if len > self.len() {
            return Err(self.eof());
        }
        self.end = self.start + len;
        Ok(())
    }

    fn offset_from(&self, base: &Self) -> usize {
        self.start.wrapping_sub(base.start)
    }

    fn offset_id(&self) -> dwarf::ReaderOffsetId {
        dwarf::ReaderOffsetId(self.id_base() + self.start as u64)
    }

    fn lookup_offset_id(&self, id: dwarf::ReaderOffsetId) -> Option<usize> {
        let lo = self.id_base() + self.start as u64;
        let hi = self.id_base() + self.end as u64;
        (id.0 >= lo && id.0 <= hi).then(|| (id.0 - lo) as usize)
    }

    fn find(&self, byte: u8) -> dwarf::Result<usize> {
        self.bytes()
            .iter()
            .position(|&b| b == byte)
            .ok_or_else(|| self.eof())
    }

    fn skip(&mut self, len: usize) -> dwarf::Result<()> {
        if len > self.len() {
            return Err(self.eof());
        }
        self.start += len;
        Ok(())
    }

    fn split(&mut self, len: usize) -> dwarf::Result<Self> {
        if len > self.len() {
            return Err(self.eof());
        }
        let head = SharedReader {
            data: Arc::clone(&self.data),
            start: self.start,
            end: self.start + len,
            endian: self.endian,
        };
        self.start += len;
        Ok(head)
    }

    fn to_slice(&self) -> dwarf::Result<Cow<'_, [u8]>> {
        Ok(Cow::Borrowed(self.bytes()))
    }

    fn to_string(&self) -> dwarf::Result<Cow<'_, str>> {
        std::str::from_utf8(self.bytes())
            .map(Cow::Borrowed)
            .map_err(|_| dwarf::Error::BadUtf8)
    }

    fn to_string_lossy(&self) -> dwarf::Result<Cow<'_, str>> {
        Ok(String::from_utf8_lossy(self.bytes()))
    }

    fn read_slice(&mut self, buf: &mut [u8]) -> dwarf::Result<()> {
        let n = buf.len();
        if n > self.len() {
            return Err(self.eof());
        }
        buf.copy_from_slice(&self.bytes()[..n]);
        self.start += n;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dwarf::Reader;

    #[test]
    fn images_can_be_shared_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<ModuleImage>();
        send_sync::<SymbolHit>();
    }

    #[test]
    fn module_names_cut_at_the_first_dot() {
        assert_eq!(module_name("/usr/lib/x86_64-linux-gnu/libc.so.6"), "libc");
        assert_eq!(
            module_name("/lib64/ld-linux-x86-64.so.2"),
            "ld-linux-x86-64"
        );
        assert_eq!(module_name("/tmp/t/crasher"), "crasher");
        assert_eq!(module_name("/tmp/t/crasher (deleted)"), "crasher");
        assert_eq!(module_name("[vdso]"), "vdso");
        assert_eq!(module_name("/x/.hidden"), ".hidden");
        assert_eq!(module_name("libstdc++.so.6"), "libstdc++");
        assert_eq!(module_name(""), "");
    }

    #[test]
    fn rust_hash_suffix_is_stripped_only_when_it_is_one() {
        assert_eq!(strip_rust_hash("a::b::h0123456789abcdef"), "a::b");
        assert_eq!(strip_rust_hash("a::b::hello"), "a::b::hello");
        assert_eq!(
            strip_rust_hash("a::b::h0123456789abcdeg"),
            "a::b::h0123456789abcdeg"
        );
        assert_eq!(strip_rust_hash("main"), "main");
    }

    #[test]
    fn shared_reader_bounds() {
        let data = Arc::new(b"abc\0defgh".to_vec());
        let mut r = SharedReader {
            data: Arc::clone(&data),
            start: 0,
            end: data.len(),
            endian: dwarf::RunTimeEndian::Little,
        };
        assert_eq!(r.find(0).unwrap(), 3);
        let head = r.split(4).unwrap();
        assert_eq!(head.to_slice().unwrap().as_ref(), b"abc\0");
        assert_eq!(r.offset_from(&head), 4);
        let id = r.offset_id();
        assert_eq!(head.lookup_offset_id(id), Some(4));
        assert!(r.split(6).is_err());
        assert_eq!(r.read_u8().unwrap(), b'd');
        let mut buf = [0u8; 4];
        r.read_slice(&mut buf).unwrap();
        assert_eq!(&buf, b"efgh");
        assert!(r.read_u8().is_err());
        assert!(r.skip(1).is_err());
        assert!(r.truncate(1).is_err());
        assert!(r.find(b'x').is_err());
    }

    /// Base (start of the offset-0 mapping) and end of `path` in this process.
    fn own_range(path: &Path) -> (u64, u64) {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let want = path.to_str().unwrap();
        let mut base = None;
        let mut end = 0;
        for line in maps.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 6 || f[5] != want {
                continue;
            }
            let (s, e) = f[0].split_once('-').unwrap();
            let s = u64::from_str_radix(s, 16).unwrap();
            let e = u64::from_str_radix(e, 16).unwrap();
            if base.is_none() && f[2].trim_start_matches('0').is_empty() {
                base = Some(s);
            }
            end = end.max(e);
        }
        (base.unwrap(), end)
    }

    #[inline(never)]
    fn image_marker(x: u64) -> u64 {
        std::hint::black_box(x.wrapping_mul(17))
    }

    fn own_image() -> ModuleImage {
        let exe = std::env::current_exe().unwrap();
        let (base, end) = own_range(&exe);
        let opts = SymbolOptions {
            debug_dirs: Vec::new(),
            binary_dirs: Vec::new(),
            sysroot: None,
        };
        ModuleImage::load(&opts, exe.to_str().unwrap(), base, end - base, None)
    }

    #[test]
    fn own_function_by_address_name_and_line() {
        let img = own_image();
        assert_eq!(img.status(), &SymbolStatus::Dwarf, "{:?}", img.errors());
        assert!(img.has_cfi());
        let f = image_marker as fn(u64) -> u64 as usize as u64;
        assert_eq!(image_marker(1), 17);
        let hit = img.symbol_at(f + 1).expect("symbol for our own function");
        assert_eq!(hit.address, f);
        assert!(hit.name.ends_with("image::tests::image_marker"), "{hit:?}");
        assert!(hit.raw_name.starts_with("_R") || hit.raw_name.starts_with("_ZN"));
        assert!(hit.size > 0);
        let found = img.lookup(&hit.name);
        assert!(found.iter().any(|h| h.address == f), "{found:?}");
        assert_eq!(
            img.lookup(&hit.raw_name).first().map(|h| h.address),
            Some(f)
        );
        // In an optimised build the first instruction may belong to an
        // inlined callee (`wrapping_mul`), whose line is in core; the
        // outermost frame is still ours, at a line of this file.
        let (file, line) = img.line_at(f).expect("line of our own function");
        assert!(line > 0, "{file}:{line}");
        let frames = img.frames_at(f);
        let outer = frames.first().expect("frames of our own function");
        assert!(outer.function.ends_with("image_marker"), "{frames:?}");
        assert!(
            file.ends_with("image.rs")
                || outer
                    .file
                    .as_deref()
                    .is_some_and(|f| f.ends_with("image.rs")),
            "{file} / {frames:?}"
        );
        assert!(img
            .symbols()
            .windows(2)
            .all(|w| w[0].address <= w[1].address));
        assert_eq!(img.name(), module_name(img.code_file()));
        assert!(img.build_id().is_some_and(|b| b.len() >= 16));
        // Outside the module: nothing.
        assert_eq!(img.symbol_at(img.end()), None);
        assert_eq!(img.line_at(img.base().wrapping_sub(1)), None);
    }

    #[test]
    fn second_load_shares_the_file_and_rebases() {
        let a = own_image();
        let exe = std::env::current_exe().unwrap();
        let opts = SymbolOptions {
            debug_dirs: Vec::new(),
            binary_dirs: Vec::new(),
            sysroot: None,
        };
        let shift = 0x1000_0000;
        let b = ModuleImage::load(
            &opts,
            exe.to_str().unwrap(),
            a.base() + shift,
            a.size(),
            None,
        );
        assert!(Arc::ptr_eq(&a.inner, &b.inner), "cached by path");
        let c = ModuleImage::load(
            &opts,
            exe.to_str().unwrap(),
            a.base(),
            a.size(),
            a.build_id(),
        );
        assert_eq!(
            c.status(),
            &SymbolStatus::Dwarf,
            "its own build id verifies"
        );
        assert_eq!(c.symbols().len(), a.symbols().len());
        let f = image_marker as fn(u64) -> u64 as usize as u64;
        assert_eq!(b.symbol_at(f + shift).map(|h| h.address), Some(f + shift));
    }

    #[test]
    fn wrong_build_id_is_refused_and_missing_file_not_found() {
        let exe = std::env::current_exe().unwrap();
        let opts = SymbolOptions {
            debug_dirs: Vec::new(),
            binary_dirs: Vec::new(),
            sysroot: None,
        };
        let img = ModuleImage::load(&opts, exe.to_str().unwrap(), 0x1000, 0x1000, Some("00ff"));
        assert_eq!(img.status(), &SymbolStatus::Refused);
        assert_eq!(img.refusals().len(), 1);
        assert!(img.symbols().is_empty());
        assert!(!img.has_cfi());
        assert_eq!(img.symbol_at(0x1800), None);

        let gone = ModuleImage::load(&opts, "/nonexistent/libnothing.so.1", 0x1000, 0x1000, None);
        assert_eq!(gone.status(), &SymbolStatus::NotFound);
        assert_eq!(gone.name(), "libnothing");
        assert_eq!(gone.frames_at(0x1000), Vec::new());
    }

    #[test]
    fn garbage_bytes_are_an_image_without_symbols() {
        let img = ModuleImage::from_bytes("[vdso]", 0x7000, 0x2000, b"\x7fELFjunk".to_vec());
        assert_eq!(img.status(), &SymbolStatus::NotFound);
        assert_eq!(img.errors().len(), 1);
        assert_eq!(img.symbol_at(0x7000), None);
        assert_eq!(img.code_bytes(0x7000, 4), None);
    }

    #[test]
    fn vdso_from_own_memory() {
        use std::os::unix::fs::FileExt;
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let Some(line) = maps.lines().find(|l| l.ends_with("[vdso]")) else {
            panic!("no [vdso] in /proc/self/maps");
        };
        let (s, e) = line
            .split_whitespace()
            .next()
            .unwrap()
            .split_once('-')
            .unwrap();
        let s = u64::from_str_radix(s, 16).unwrap();
        let e = u64::from_str_radix(e, 16).unwrap();
        let mem = std::fs::File::open("/proc/self/mem").unwrap();
        let mut buf = vec![0u8; (e - s) as usize];
        mem.read_exact_at(&mut buf, s).unwrap();
        let img = ModuleImage::from_bytes("[vdso]", s, e - s, buf);
        assert_eq!(img.name(), "vdso");
        assert!(img.has_cfi());
        let hits = img.lookup("__vdso_clock_gettime");
        assert_eq!(hits.len(), 1, "{:?}", img.symbols());
        let inside = img.symbol_at(hits[0].address + 1).unwrap();
        assert_eq!(inside.address, hits[0].address);
        assert_eq!(img.path(), None, "no file on disk");
        let off = (hits[0].address - s) as usize;
        let mem_bytes = std::fs::File::open("/proc/self/mem").map(|f| {
            let mut b = [0u8; 4];
            f.read_exact_at(&mut b, hits[0].address).unwrap();
            b
        });
        assert_eq!(
            img.code_bytes(hits[0].address, 4),
            Some(&mem_bytes.unwrap()[..])
        );
        assert!(off > 0);
    }
}
