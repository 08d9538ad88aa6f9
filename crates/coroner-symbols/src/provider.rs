//! [`CoronerSymbolProvider`]: minidump-unwind's `SymbolProvider` over
//! build-id-verified local files, with addr2line for names/lines/inlines and
//! framehop for CFI unwinding.

use crate::elf::unwind_sections;
use crate::locate::{locate, Found, Refusal, SymbolOptions};
use async_trait::async_trait;
use framehop::x86_64::{CacheX86_64, UnwindRegsX86_64, UnwinderX86_64};
use framehop::{FrameAddress, Unwinder};
use minidump::Module;
use minidump_unwind::symbols::{
    FileError, FileKind, FillSymbolError, FrameSymbolizer, FrameWalker,
};
use minidump_unwind::SymbolProvider;
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// How much a module can be symbolized.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SymbolStatus {
    /// DWARF: functions, lines, inlined frames.
    Dwarf,
    /// ELF symbol table only: function names, no lines.
    SymbolTable,
    /// A verified file with neither DWARF nor symbols (CFI may still work).
    NoSymbols,
    /// Files were found but all refused (see `refusals`).
    Refused,
    /// No file found at the code path, in the binary or debug dirs.
    NotFound,
}

impl SymbolStatus {
    /// Short text: `dwarf`, `symtab`, `no symbols`, `refused`, `not found`.
    pub fn as_str(&self) -> &'static str {
        match self {
            SymbolStatus::Dwarf => "dwarf",
            SymbolStatus::SymbolTable => "symtab",
            SymbolStatus::NoSymbols => "no symbols",
            SymbolStatus::Refused => "refused",
            SymbolStatus::NotFound => "not found",
        }
    }
}

/// What the provider decided for one module.
#[derive(Clone, Debug)]
pub struct ModuleSymbols {
    pub code_file: String,
    pub base: u64,
    /// The dump's build id (hex), if it had one.
    pub dump_build_id: Option<String>,
    /// The verified binary used for CFI and `get_file_path`.
    pub binary: Option<PathBuf>,
    /// The separate debug file used for symbols, if any.
    pub debug_file: Option<PathBuf>,
    pub status: SymbolStatus,
    /// CFI (`.eh_frame`/`.debug_frame`) from a verified file feeds the unwinder.
    pub cfi: bool,
    /// Files refused for this module.
    pub refusals: Vec<Refusal>,
    /// Read or parse failures met while searching.
    pub errors: Vec<String>,
}

/// One inlined call, outermost first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InlineCall {
    pub function: String,
    pub file: Option<String>,
    pub line: Option<u32>,
}

/// The result of symbolizing one address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symbolized {
    /// Demangled name of the (outermost, not inlined) function.
    pub function: String,
    /// Runtime address of the function's first instruction, when known.
    pub function_address: Option<u64>,
    /// Location in the outermost function (the call site of the first
    /// inlined call when there are inlines).
    pub file: Option<String>,
    pub line: Option<u32>,
    /// Inlined calls, outermost first; the last holds the address's location.
    pub inlines: Vec<InlineCall>,
}

struct Loaded {
    info: ModuleSymbols,
    loader: Option<Mutex<addr2line::Loader>>,
    base: u64,
    svma_base: u64,
    /// File image for the CFI unwinder, taken when the module is added.
    cfi_data: Mutex<Option<Vec<u8>>>,
}

struct UnwindState {
    unwinder: UnwinderX86_64<Vec<u8>>,
    cache: CacheX86_64,
    added: HashSet<u64>,
}

type Key = (u64, String);

/// A `SymbolProvider` that only reads files whose build id matches the dump.
pub struct CoronerSymbolProvider {
    opts: SymbolOptions,
    modules: Mutex<HashMap<Key, Arc<Loaded>>>,
    unwind: Mutex<UnwindState>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl CoronerSymbolProvider {
    pub fn new(opts: SymbolOptions) -> CoronerSymbolProvider {
        CoronerSymbolProvider {
            opts,
            modules: Mutex::new(HashMap::new()),
            unwind: Mutex::new(UnwindState {
                unwinder: UnwinderX86_64::new(),
                cache: CacheX86_64::new(),
                added: HashSet::new(),
            }),
        }
    }

    fn load(&self, module: &dyn Module) -> Arc<Loaded> {
        let key = (module.base_address(), module.code_file().into_owned());
        if let Some(l) = lock(&self.modules).get(&key) {
            return l.clone();
        }
        let loaded = Arc::new(self.load_uncached(module));
        if loaded.info.cfi {
            self.add_unwind_module(module, &loaded);
        }
        lock(&self.modules).entry(key).or_insert(loaded).clone()
    }

    fn load_uncached(&self, module: &dyn Module) -> Loaded {
        let code_file = module.code_file().into_owned();
        let dump_build_id = module
            .code_identifier()
            .map(|c| c.as_str().to_ascii_lowercase())
            .filter(|s| !s.is_empty());
        let Found {
            binary,
            debug,
            refusals,
            mut errors,
        } = locate(&self.opts, &code_file, dump_build_id.as_deref());
        // Symbols from the debug file when it has them, else the binary.
        let sym_src = match (&debug, &binary) {
            (Some(d), _) if d.facts.has_dwarf || d.facts.has_symbols => Some(d),
            (_, Some(b)) => Some(b),
            (Some(d), None) => Some(d),
            (None, None) => None,
        };
        let status = match sym_src {
            Some(s) if s.facts.has_dwarf => SymbolStatus::Dwarf,
            Some(s) if s.facts.has_symbols => SymbolStatus::SymbolTable,
            Some(_) => SymbolStatus::NoSymbols,
            None if !refusals.is_empty() => SymbolStatus::Refused,
            None => SymbolStatus::NotFound,
        };
        let loader = match sym_src {
            Some(s) if s.facts.has_dwarf || s.facts.has_symbols => {
                match addr2line::Loader::new(&s.path) {
                    Ok(l) => Some(Mutex::new(l)),
                    Err(e) => {
                        errors.push(format!("{}: {e}", s.path.display()));
                        None
                    }
                }
            }
            _ => None,
        };
        let svma_base = binary
            .as_ref()
            .or(debug.as_ref())
            .map(|i| i.facts.svma_base)
            .unwrap_or(0);
        let cfi_src = [&binary, &debug]
            .into_iter()
            .flatten()
            .find(|i| i.facts.has_cfi);
        Loaded {
            info: ModuleSymbols {
                code_file,
                base: module.base_address(),
                dump_build_id,
                binary: binary.as_ref().map(|b| b.path.clone()),
                debug_file: debug.as_ref().map(|d| d.path.clone()),
                status,
                cfi: cfi_src.is_some(),
                refusals,
                errors,
            },
            loader,
            base: module.base_address(),
            svma_base,
            cfi_data: Mutex::new(cfi_src.map(|i| i.data.clone())),
        }
    }

    fn add_unwind_module(&self, module: &dyn Module, loaded: &Loaded) {
        let Some(data) = lock(&loaded.cfi_data).take() else {
            return;
        };
        let Ok(info) = unwind_sections(&data, loaded.svma_base) else {
            return;
        };
        let base = module.base_address();
        let end = base.saturating_add(module.size());
        let mut st = lock(&self.unwind);
        if st.added.insert(base) {
            let m = framehop::Module::new(loaded.info.code_file.clone(), base..end, base, info);
            st.unwinder.add_module(m);
        }
    }

    /// What was decided for a module (loads it on first use).
    pub fn module_symbols(&self, module: &dyn Module) -> ModuleSymbols {
        self.load(module).info.clone()
    }

    /// Every module looked at so far, by base address.
    pub fn loaded_modules(&self) -> Vec<ModuleSymbols> {
        let mut v: Vec<ModuleSymbols> = lock(&self.modules)
            .values()
            .map(|l| l.info.clone())
            .collect();
        v.sort_by_key(|m| m.base);
        v
    }

    /// Symbolize a runtime address inside `module`.
    pub fn symbolize(&self, module: &dyn Module, address: u64) -> Option<Symbolized> {
        let loaded = self.load(module);
        let loader = lock(loaded.loader.as_ref()?);
        let svma = address
            .checked_sub(loaded.base)?
            .checked_add(loaded.svma_base)?;
        let to_runtime = |a: u64| {
            a.checked_sub(loaded.svma_base)
                .and_then(|r| r.checked_add(loaded.base))
        };
        let sym = loader.find_symbol_info(svma);
        let sym_name = sym
            .as_ref()
            .map(|s| addr2line::demangle_auto(Cow::Borrowed(s.name()), None).into_owned());
        let function_address = sym.as_ref().and_then(|s| to_runtime(s.address()));

        // DWARF frames come innermost first.
        let mut frames = Vec::new();
        if let Ok(mut it) = loader.find_frames(svma) {
            while let Ok(Some(f)) = it.next() {
                let name = f
                    .function
                    .as_ref()
                    .and_then(|n| n.demangle().ok().map(Cow::into_owned));
                let (file, line) = match f.location {
                    Some(l) => (l.file.map(str::to_string), l.line),
                    None => (None, None),
                };
                frames.push(InlineCall {
                    function: name.unwrap_or_default(),
                    file,
                    line,
                });
                if frames.len() > 256 {
                    break;
                }
            }
        }
        frames.reverse();
        let mut iter = frames.into_iter();
        match iter.next() {
            Some(outer) => {
                let function = if outer.function.is_empty() {
                    sym_name.unwrap_or_default()
                } else {
                    outer.function
                };
                Some(Symbolized {
                    function,
                    function_address,
                    file: outer.file,
                    line: outer.line,
                    inlines: iter.collect(),
                })
            }
            None => sym_name.map(|function| Symbolized {
                function,
                function_address,
                file: None,
                line: None,
                inlines: Vec::new(),
            }),
        }
    }

    fn unwind_frame(&self, walker: &mut (dyn FrameWalker + Send)) -> Option<()> {
        let sp = walker.get_callee_register("rsp")?;
        let bp = walker.get_callee_register("rbp")?;
        let ip = walker.get_callee_register("rip")?;
        let mut regs = UnwindRegsX86_64::new(ip, sp, bp);
        let instruction = walker.get_instruction();
        let address = if walker.has_grand_callee() {
            FrameAddress::from_return_address(instruction.checked_add(1)?)?
        } else {
            FrameAddress::from_instruction_pointer(instruction)
        };
        let ra = {
            let mut guard = lock(&self.unwind);
            let st = &mut *guard;
            st.unwinder
                .unwind_frame(address, &mut regs, &mut st.cache, &mut |addr| {
                    walker.get_register_at_address(addr).ok_or(())
                })
                .ok()?
        };
        if let Some(ra) = ra {
            walker.set_ra(ra);
        }
        walker.set_cfa(regs.sp())?;
        walker.set_caller_register("rbp", regs.bp())?;
        Some(())
    }
}

impl Default for CoronerSymbolProvider {
    fn default() -> Self {
        CoronerSymbolProvider::new(SymbolOptions::default())
    }
}

#[async_trait]
impl SymbolProvider for CoronerSymbolProvider {
    async fn fill_symbol(
        &self,
        module: &(dyn Module + Sync),
        frame: &mut (dyn FrameSymbolizer + Send),
    ) -> Result<(), FillSymbolError> {
        let pc = frame.get_instruction();
        let s = self.symbolize(module, pc).ok_or(FillSymbolError {})?;
        let base = s.function_address.unwrap_or(pc);
        frame.set_function(&s.function, base, 0);
        if let Some(file) = &s.file {
            frame.set_source_file(file, s.line.unwrap_or(0), base);
        }
        for i in &s.inlines {
            frame.add_inline_frame(&i.function, i.file.as_deref(), i.line);
        }
        Ok(())
    }

    async fn walk_frame(
        &self,
        module: &(dyn Module + Sync),
        walker: &mut (dyn FrameWalker + Send),
    ) -> Option<()> {
        if !self.load(module).info.cfi {
            return None;
        }
        self.unwind_frame(walker)
    }

    async fn get_file_path(
        &self,
        module: &(dyn Module + Sync),
        file_kind: FileKind,
    ) -> Result<PathBuf, FileError> {
        let l = self.load(module);
        let p = match file_kind {
            FileKind::Binary => l.info.binary.clone(),
            FileKind::ExtraDebugInfo => l.info.debug_file.clone(),
            FileKind::BreakpadSym => None,
        };
        p.ok_or(FileError::NotFound)
    }
}
