//! `!analyze` for Linux dumps: exception decoded, symbolized backtraces of
//! every thread (crashing thread first), modules with their symbol status,
//! and a crash signature/bucket; as a typed, versioned [`Report`] and as text.
//!
//! Owns: format detection (minidump / ELF core), driving
//! minidump-processor with [`coroner_symbols::CoronerSymbolProvider`],
//! converting cores to a minidump in a temporary file (so both formats take
//! one path), the report types, the signature, and the text rendering.
//!
//! Must not: panic on any input (corrupt or truncated dumps give an error
//! or a partial report: fuzzed, and a corpus test runs in the normal suite),
//! write next to the dump, or use symbols from a file whose build id does
//! not match the dump.

pub mod render;
pub mod report;
pub mod signature;

pub use render::render_text;
pub use report::*;

use coroner_dump::corefile::{CoreError, CoreFile};
use coroner_dump::{DumpError, DumpLevel, DumpOptions, NoProgress};
use coroner_symbols::vdso::{self, Cpu};
use coroner_symbols::{CoronerSymbolProvider, SymbolOptions};
use coroner_types::signal::{has_fault_address, si_code_name, signal_label, signal_name};
use minidump::{Minidump, MinidumpException, MinidumpModuleList, Module};
use minidump_processor::{ProcessState, ProcessorOptions};
use minidump_unwind::{CallStack, CallStackInfo, FrameTrust, StackFrame};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Breakpad's exception code for "dump requested, no exception".
pub const DUMP_REQUESTED: u32 = 0xFFFF_FFFF;

/// How to analyze.
#[derive(Clone, Debug)]
pub struct AnalyzeOptions {
    /// Where to find binaries and debug files.
    pub symbols: SymbolOptions,
    /// Frames of the crashing thread in the signature.
    pub signature_frames: usize,
}

impl Default for AnalyzeOptions {
    fn default() -> Self {
        AnalyzeOptions {
            symbols: SymbolOptions::default(),
            signature_frames: 5,
        }
    }
}

/// Why no report could be made.
#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    #[error("cannot read dump {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is neither a minidump (MDMP) nor an ELF core (magic {magic:02x?})", path.display())]
    UnknownFormat { path: PathBuf, magic: Vec<u8> },
    #[error("{} is not a readable minidump", path.display())]
    Minidump {
        path: PathBuf,
        #[source]
        source: minidump::Error,
    },
    #[error("cannot process minidump {}", path.display())]
    Process {
        path: PathBuf,
        #[source]
        source: minidump_processor::ProcessError,
    },
    #[error("cannot read ELF core {}", path.display())]
    Core {
        path: PathBuf,
        #[source]
        source: CoreError,
    },
    #[error("cannot convert ELF core {} to a minidump for analysis", path.display())]
    Convert {
        path: PathBuf,
        #[source]
        source: DumpError,
    },
    #[error("cannot use a temporary file to convert ELF core {}", path.display())]
    TempFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Analyze a minidump or an ELF core, detected by its magic.
pub fn analyze_path(path: &Path, opts: &AnalyzeOptions) -> Result<Report, AnalyzeError> {
    let read_err = |source| AnalyzeError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut magic = [0u8; 4];
    let n = {
        let mut f = std::fs::File::open(path).map_err(read_err)?;
        let mut n = 0;
        while n < 4 {
            match f.read(&mut magic[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(read_err(e)),
            }
        }
        n
    };
    match &magic[..n] {
        b"MDMP" => {
            let data = std::fs::read(path).map_err(read_err)?;
            analyze_minidump_bytes(path, data, opts, Vec::new(), "minidump")
        }
        b"\x7fELF" => analyze_core(path, opts),
        other => Err(AnalyzeError::UnknownFormat {
            path: path.to_path_buf(),
            magic: other.to_vec(),
        }),
    }
}

fn analyze_core(path: &Path, opts: &AnalyzeOptions) -> Result<Report, AnalyzeError> {
    let core = CoreFile::open(path).map_err(|source| AnalyzeError::Core {
        path: path.to_path_buf(),
        source,
    })?;
    let snap = core.snapshot();
    let mut soft: Vec<String> = snap
        .soft_errors
        .iter()
        .map(|e| format!("core: {e}"))
        .collect();
    let mut crash = core.crash_context();
    if let Some(c) = &crash {
        if !snap.threads.iter().any(|t| t.tid == c.tid) {
            soft.push(format!(
                "core: signal names thread {} which has no NT_PRSTATUS",
                c.tid
            ));
            crash = None;
        }
    }
    let tmp_err = |source| AnalyzeError::TempFile {
        path: path.to_path_buf(),
        source,
    };
    let mut tmp = tempfile::tempfile().map_err(tmp_err)?;
    let dump_opts = DumpOptions {
        level: DumpLevel::Mini,
        comment: Some(format!("converted from ELF core {}", path.display())),
        crash,
        ..DumpOptions::default()
    };
    let stats = coroner_dump::write_minidump(&mut tmp, &snap, &core, &dump_opts, &NoProgress)
        .map_err(|source| AnalyzeError::Convert {
            path: path.to_path_buf(),
            source,
        })?;
    // The writer's soft errors are also inside the dump (read back below).
    drop(stats);
    let mut data = Vec::new();
    tmp.seek(SeekFrom::Start(0)).map_err(tmp_err)?;
    tmp.read_to_end(&mut data).map_err(tmp_err)?;
    analyze_minidump_bytes(path, data, opts, soft, "elf-core")
}

/// Analyze minidump bytes (`path` only names the dump in the report and
/// errors). `soft` carries problems found before (core conversion).
pub fn analyze_minidump_bytes(
    path: &Path,
    data: Vec<u8>,
    opts: &AnalyzeOptions,
    mut soft: Vec<String>,
    format: &str,
) -> Result<Report, AnalyzeError> {
    let dump = Minidump::read(data).map_err(|source| AnalyzeError::Minidump {
        path: path.to_path_buf(),
        source,
    })?;
    let provider = CoronerSymbolProvider::new(opts.symbols.clone());
    let state = futures_executor::block_on(minidump_processor::process_minidump_with_options(
        &dump,
        &provider,
        ProcessorOptions::stable_basic(),
    ))
    .map_err(|source| AnalyzeError::Process {
        path: path.to_path_buf(),
        source,
    })?;
    let cpu = state.system_info.cpu;
    let raw_exc = dump.get_stream::<MinidumpException>().ok().map(|e| {
        let r = &e.raw.exception_record;
        (
            r.exception_code,
            r.exception_flags,
            r.exception_address,
            e.raw.thread_id,
        )
    });
    soft.extend(dump_soft_errors(&state));

    let exception =
        raw_exc.map(|(code, flags, addr, tid)| exception_report(&state, code, flags, addr, tid));
    let crash_index = crash_thread_index(&state, exception.as_ref().map(|e| e.thread_id));
    let mut threads = Vec::with_capacity(state.threads.len());
    for (i, stack) in state.threads.iter().enumerate() {
        threads.push(thread_report(stack, Some(i) == crash_index, cpu));
    }
    if let Some(ci) = crash_index {
        let t = threads.remove(ci);
        threads.insert(0, t);
    }
    let crashing_thread = threads.first().filter(|t| t.crashing).map(|t| ThreadRef {
        tid: t.tid,
        name: t.name.clone(),
    });
    let sig_exc = match &exception {
        Some(e) if e.dump_requested => "DUMP_REQUESTED".to_string(),
        Some(e) => format!(
            "{}/{}",
            e.signal_name
                .clone()
                .unwrap_or_else(|| signal_label(e.signal as i32)),
            e.si_code_name
                .clone()
                .unwrap_or_else(|| format!("si_code {}", e.si_code))
        ),
        None => "NO_EXCEPTION".to_string(),
    };
    let crash_frames = threads
        .first()
        .filter(|t| t.crashing)
        .map(|t| t.frames.as_slice())
        .unwrap_or(&[]);
    let signature = signature::signature(&sig_exc, crash_frames, opts.signature_frames);
    let modules = module_reports(&state.modules, &provider, cpu);
    Ok(Report {
        schema_version: SCHEMA_VERSION,
        dump: DumpInfo {
            path: path.display().to_string(),
            format: format.to_string(),
        },
        process: ProcessInfo {
            pid: state.process_id,
            exe: state
                .modules
                .main_module()
                .map(|m| m.code_file().into_owned()),
            cpu: state.system_info.cpu.to_string(),
            os: state.system_info.os.to_string(),
        },
        exception,
        crashing_thread,
        threads,
        modules,
        signature,
        soft_errors: soft,
    })
}

fn dump_soft_errors(state: &ProcessState) -> Vec<String> {
    match &state.soft_errors {
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .map(|v| match v {
                serde_json::Value::String(s) => format!("dump: {s}"),
                other => format!("dump: {other}"),
            })
            .collect(),
        Some(serde_json::Value::Null) | None => Vec::new(),
        Some(other) => vec![format!("dump: {other}")],
    }
}

fn crash_thread_index(state: &ProcessState, tid: Option<u32>) -> Option<usize> {
    tid.and_then(|t| state.threads.iter().position(|s| s.thread_id == t))
        .or(state.requesting_thread)
        .filter(|&i| i < state.threads.len())
}

fn exception_report(
    state: &ProcessState,
    code: u32,
    flags: u32,
    addr: u64,
    tid: u32,
) -> ExceptionReport {
    if code == DUMP_REQUESTED {
        return ExceptionReport {
            signal: 0,
            signal_name: None,
            si_code: 0,
            si_code_name: None,
            fault_address: None,
            access: None,
            summary: "dump requested (no exception)".into(),
            description: None,
            dump_requested: true,
            thread_id: tid,
        };
    }
    let signo = code as i32;
    let si_code = flags as i32;
    let fault = (si_code > 0 && has_fault_address(signo)).then_some(addr);
    let code_name = si_code_name(signo, si_code).map(str::to_string);
    let label = signal_label(signo);
    let mut summary = match &code_name {
        Some(c) => format!("{label} / {c}"),
        None => format!("{label} / si_code {si_code}"),
    };
    if let Some(a) = fault {
        summary.push_str(&format!(" at {a:#018x}"));
    }
    let is_av = matches!(signo, 11 | 7);
    let access = match fault {
        Some(a) if is_av => access_kind(state, tid, a),
        _ => None,
    };
    let description = fault.filter(|_| is_av).map(|a| match access {
        Some(AccessKind::Write) => format!("Attempt to write to address {a:016x}"),
        Some(AccessKind::Read) => format!("Attempt to read from address {a:016x}"),
        Some(AccessKind::Execute) => format!("Attempt to execute non-executable address {a:016x}"),
        None => format!("Access violation at address {a:016x}"),
    });
    ExceptionReport {
        signal: code,
        signal_name: signal_name(signo).map(str::to_string),
        si_code,
        si_code_name: code_name,
        fault_address: fault,
        access,
        summary,
        description,
        dump_requested: false,
        thread_id: tid,
    }
}

/// The access kind of a fault: a fetch fault has the fault address at the
/// PC; otherwise the faulting instruction as minidump-processor decoded it
/// from the dump's memory. The x86 page-fault error code is in neither
/// minidumps nor cores, so anything else is unknown.
fn access_kind(state: &ProcessState, tid: u32, fault: u64) -> Option<AccessKind> {
    let pc = state
        .threads
        .iter()
        .find(|t| t.thread_id == tid)
        .and_then(|t| t.frames.first())
        .map(|f| f.instruction);
    if pc == Some(fault) {
        return Some(AccessKind::Execute);
    }
    let list = state.exception_info.as_ref()?.memory_access_list.as_ref()?;
    let hit = list.iter().find(|a| {
        let lo = a.address_info.address;
        let size = u64::from(a.size.unwrap_or(1).max(1));
        lo <= fault && fault < lo.saturating_add(size)
    })?;
    // minidump-processor 0.27 does not export `MemoryAccessType` (its
    // `op_analysis` module is private), so the variant is read by name.
    match format!("{:?}", hit.access_type).as_str() {
        "Read" => Some(AccessKind::Read),
        "Write" | "ReadWrite" => Some(AccessKind::Write),
        _ => None,
    }
}

fn trust_name(t: FrameTrust) -> &'static str {
    match t {
        FrameTrust::Context => "context",
        FrameTrust::CallFrameInfo => "cfi",
        FrameTrust::CfiScan => "cfi scan",
        FrameTrust::FramePointer => "frame pointer",
        FrameTrust::Scan => "scan",
        FrameTrust::PreWalked => "prewalked",
        FrameTrust::None => "none",
    }
}

fn base_name(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_string()
}

/// A module's path as the report shows it: the recorded one, but the vDSO
/// under its own name (`linux-vdso.so.1` on x86-64) rather than the
/// `linux-gate.so` every Breakpad-format writer records (see
/// [`coroner_symbols::vdso`]); `coroner dbg`'s `lm` shows the same.
fn module_path(code_file: &str, cpu: Cpu) -> String {
    vdso::display_name(code_file, None, cpu).unwrap_or_else(|| code_file.to_string())
}

fn frame_entries(frame: &StackFrame, out: &mut Vec<FrameReport>, cpu: Cpu) {
    let address = if frame.trust == FrameTrust::Context {
        frame.instruction
    } else {
        frame.resume_address
    };
    let module = frame
        .module
        .as_ref()
        .map(|m| base_name(&module_path(&m.code_file(), cpu)));
    let module_offset = frame
        .module
        .as_ref()
        .and_then(|m| address.checked_sub(m.base_address()));
    let trust = trust_name(frame.trust).to_string();
    for inl in frame.inlines.iter().rev() {
        out.push(FrameReport {
            index: out.len(),
            address,
            inline: true,
            module: module.clone(),
            module_offset,
            function: Some(inl.function_name.clone()),
            function_offset: None,
            file: inl.source_file_name.clone(),
            line: inl.source_line,
            trust: trust.clone(),
        });
    }
    out.push(FrameReport {
        index: out.len(),
        address,
        inline: false,
        module,
        module_offset,
        function: frame.function_name.clone(),
        function_offset: frame
            .function_name
            .as_ref()
            .and(frame.function_base)
            .and_then(|b| address.checked_sub(b)),
        file: frame.source_file_name.clone(),
        line: frame.source_line,
        trust,
    });
}

fn thread_report(stack: &CallStack, crashing: bool, cpu: Cpu) -> ThreadReport {
    let mut frames = Vec::new();
    for f in &stack.frames {
        frame_entries(f, &mut frames, cpu);
    }
    ThreadReport {
        tid: stack.thread_id,
        // Cores carry no thread names: an empty name is no name.
        name: stack.thread_name.clone().filter(|n| !n.is_empty()),
        crashing,
        frames,
        unwind: match stack.info {
            CallStackInfo::Ok => "ok",
            CallStackInfo::MissingContext => "no CPU context in the dump",
            CallStackInfo::MissingMemory => "no stack memory in the dump",
            CallStackInfo::UnsupportedCpu => "unsupported CPU",
            CallStackInfo::DumpThreadSkipped => "dump-writing thread skipped",
        }
        .to_string(),
    }
}

fn module_reports(
    modules: &MinidumpModuleList,
    provider: &CoronerSymbolProvider,
    cpu: Cpu,
) -> Vec<ModuleReport> {
    modules
        .by_addr()
        .map(|m| {
            let s = provider.module_symbols(m);
            ModuleReport {
                base: m.base_address(),
                end: m.base_address().saturating_add(m.size()),
                name: base_name(&module_path(&m.code_file(), cpu)),
                path: module_path(&m.code_file(), cpu),
                build_id: m.code_identifier().map(|c| c.as_str().to_string()),
                symbols: s.status.as_str().to_string(),
                binary: s.binary.map(|p| p.display().to_string()),
                debug_file: s.debug_file.map(|p| p.display().to_string()),
                refusals: s.refusals.iter().map(|r| r.to_string()).collect(),
            }
        })
        .collect()
}
