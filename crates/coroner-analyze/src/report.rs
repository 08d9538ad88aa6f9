//! The report: typed, serde, versioned (`schema_version`). `--json` output
//! is `serde_json` of [`Report`]; any change of meaning bumps the version.

use serde::{Deserialize, Serialize};

/// Version of the JSON schema of [`Report`].
pub const SCHEMA_VERSION: u32 = 1;

/// Everything `analyze` says about one dump.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema_version: u32,
    pub dump: DumpInfo,
    pub process: ProcessInfo,
    /// `None` when the dump has no exception stream.
    pub exception: Option<ExceptionReport>,
    /// The thread the exception names (or the first thread).
    pub crashing_thread: Option<ThreadRef>,
    /// Crashing thread first, then the others in dump order.
    pub threads: Vec<ThreadReport>,
    pub modules: Vec<ModuleReport>,
    pub signature: Signature,
    /// Non-fatal problems: from the dump (writer's soft errors), from
    /// converting a core, and from analysis itself.
    pub soft_errors: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpInfo {
    pub path: String,
    /// `minidump` or `elf-core`.
    pub format: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessInfo {
    pub pid: Option<u32>,
    /// Code file of the main module.
    pub exe: Option<String>,
    pub cpu: String,
    pub os: String,
}

/// Kind of memory access that faulted, as `.exr` decodes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessKind {
    Read,
    Write,
    Execute,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExceptionReport {
    /// Signal number (Breakpad `exception_code`); 0 when dump-requested.
    pub signal: u32,
    pub signal_name: Option<String>,
    /// `si_code` (Breakpad `exception_flags`), as signed.
    pub si_code: i32,
    pub si_code_name: Option<String>,
    /// `si_addr` for faults that carry one.
    pub fault_address: Option<u64>,
    /// The access kind, when it can be told (faulting instruction decoded
    /// from the dump's memory, or a fetch fault at the PC).
    pub access: Option<AccessKind>,
    /// `SIGSEGV / SEGV_MAPERR at 0x0000000000000000`.
    pub summary: String,
    /// `.exr`-style line: `Attempt to write to address 0000000000000000`,
    /// `Access violation at address ...` when the kind is unknown.
    pub description: Option<String>,
    /// The dump was requested (no fault): exception code 0xFFFFFFFF.
    pub dump_requested: bool,
    pub thread_id: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadRef {
    pub tid: u32,
    pub name: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadReport {
    pub tid: u32,
    pub name: Option<String>,
    pub crashing: bool,
    pub frames: Vec<FrameReport>,
    /// Why the stack is short or missing (`ok` when walked).
    pub unwind: String,
}

/// One line of a backtrace. Inlined calls get their own entries
/// (`inline: true`) before the frame that holds them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameReport {
    pub index: usize,
    /// PC for frame 0, return address for callers.
    pub address: u64,
    pub inline: bool,
    /// Module base name.
    pub module: Option<String>,
    /// Offset of `address` from the module base.
    pub module_offset: Option<u64>,
    pub function: Option<String>,
    /// Offset of `address` from the function start (not for inline entries).
    pub function_offset: Option<u64>,
    pub file: Option<String>,
    pub line: Option<u32>,
    /// `context`, `cfi`, `cfi scan`, `frame pointer`, `scan`, `prewalked`, `none`.
    pub trust: String,
}

impl FrameReport {
    /// `module!function+0xoff`, `module!function`, `module+0xoff` or `0x...`.
    pub fn location(&self) -> String {
        match (&self.module, &self.function) {
            (Some(m), Some(f)) => match self.function_offset {
                Some(o) if !self.inline => format!("{m}!{f}+{o:#x}"),
                _ => format!("{m}!{f}"),
            },
            (None, Some(f)) => f.clone(),
            (Some(m), None) => format!("{m}+{:#x}", self.module_offset.unwrap_or(0)),
            (None, None) => format!("{:#018x}", self.address),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleReport {
    pub base: u64,
    pub end: u64,
    /// Base name of the code file.
    pub name: String,
    /// Code file path as the dump records it.
    pub path: String,
    pub build_id: Option<String>,
    /// `dwarf`, `symtab`, `no symbols`, `refused`, `not found`.
    pub symbols: String,
    /// Verified binary used for CFI.
    pub binary: Option<String>,
    pub debug_file: Option<String>,
    /// "libfoo.so: file on disk has build-id X, dump has Y — not used".
    pub refusals: Vec<String>,
}

/// A crash signature, stable across ASLR and unrelated rebuilds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// `SIGSEGV/SEGV_MAPERR`, `DUMP_REQUESTED`, `NO_EXCEPTION`.
    pub exception: String,
    /// Top frames of the crashing thread as `module!function`, after the
    /// libc abort/raise and Rust panic machinery.
    pub frames: Vec<String>,
    /// `exception|frame|frame...`
    pub text: String,
    /// FNV-1a 64 of `text`, 16 hex digits.
    pub bucket: String,
}
