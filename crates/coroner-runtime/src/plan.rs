//! Start-up (not the crash path): turn a compiled plan
//! (`coroner_config::plan`) into the [`Plan`] the crash path reads — argv
//! pieces, where the spawned child finds each program, the dumper command
//! line, timeouts, the report fd.
//!
//! Every process start pays for what happens here (the library is
//! preloaded everywhere), so it allocates nothing: the bytes the plan
//! points into are carved from one static [`Arena`], which costs only the
//! pages actually written. File lookups that only a crash needs are left
//! to the crash-time child ([`Program`]); the executable's name is read
//! only when a setting depends on it.

use crate::crash::{Cmd, Plan, Program, MAX_PROGRAMS};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};
use coroner_config::plan::{
    put_cmd_header, put_fill, put_lit, put_lit_word, put_word_header, CmdRef, Fill, PlanView, Sink,
};
use coroner_config::DumpLevel;

/// Environment variable naming the inherited fd the report line goes to
/// (ignored in `AT_SECURE` processes).
pub const ENV_RUN_FD: &str = "CORONER_RUN_FD";

/// The arena's first region, in `.data`: the library's `.data` pages are
/// written at load anyway (relocations, the zeroed start of `.bss`), so a
/// typical plan, its dumper command and `PATH` cost no page fault there.
const FIRST_SIZE: usize = 1536;
/// The rest, in `.bss` (one page fault per page used).
const REST_SIZE: usize = 32 * 1024;

/// Bytes published plans point into: static buffers, handed out once and
/// never reused, so a published `&'static [u8]` never changes.
struct ArenaBytes<const N: usize>(UnsafeCell<[u8; N]>);

// SAFETY: regions are handed out by `Arena` under the install lock, each
// once (the offset only grows), and are only read once handed out.
unsafe impl<const N: usize> Sync for ArenaBytes<N> {}

#[link_section = ".data.coroner_start"]
static FIRST: ArenaBytes<FIRST_SIZE> = ArenaBytes(UnsafeCell::new([0; FIRST_SIZE]));
static REST: ArenaBytes<REST_SIZE> = ArenaBytes(UnsafeCell::new([0; REST_SIZE]));
/// Bytes handed out so far, counting through FIRST then REST. In `.data`
/// (see [`FIRST`]).
#[link_section = ".data.coroner_start"]
static ARENA_USED: AtomicUsize = AtomicUsize::new(0);

/// Hands out the arena's free space. Only `install` makes one, under its
/// lock, so there is never a second.
pub(crate) struct Arena(());

impl Arena {
    /// # Safety
    /// The caller holds the install lock (one `Arena` at a time).
    pub(crate) unsafe fn new() -> Arena {
        Arena(())
    }

    /// The current region's base, size, and bytes used in it.
    fn region(&self) -> (*mut u8, usize, usize) {
        let used = ARENA_USED
            .load(Ordering::Relaxed)
            .min(FIRST_SIZE + REST_SIZE);
        if used < FIRST_SIZE {
            (FIRST.0.get().cast(), FIRST_SIZE, used)
        } else {
            (REST.0.get().cast(), REST_SIZE, used - FIRST_SIZE)
        }
    }

    /// The free space of the current region, to write into before
    /// [`Arena::keep`] claims a prefix.
    pub(crate) fn free(&mut self) -> &mut [u8] {
        let (base, size, used) = self.region();
        // SAFETY: bytes from `used` on are inside the region and were never
        // handed out, and `&mut self` (one Arena, under the install lock)
        // makes this the only access to them; no reference to the whole
        // array is made, so the kept regions are not touched.
        unsafe { core::slice::from_raw_parts_mut(base.add(used), size - used) }
    }

    /// Free space of at least `n` bytes: the current region's, or the next
    /// one's (the rest of the first region is then left unused); `None`
    /// when neither has room.
    pub(crate) fn room(&mut self, n: usize) -> Option<&mut [u8]> {
        if self.free().len() < n && ARENA_USED.load(Ordering::Relaxed) < FIRST_SIZE {
            ARENA_USED.store(FIRST_SIZE, Ordering::Relaxed);
        }
        let free = self.free();
        (free.len() >= n).then_some(free)
    }

    /// Claims the first `n` bytes of the free space, as they were written.
    pub(crate) fn keep(&mut self, n: usize) -> &'static [u8] {
        let (base, size, used) = self.region();
        let n = n.min(size - used);
        ARENA_USED.fetch_add(n, Ordering::Relaxed);
        // SAFETY: `used + n` is within the region; these bytes are now out
        // of the free space for good and never written again, so a shared
        // 'static borrow of them is sound.
        unsafe { core::slice::from_raw_parts(base.add(used), n) }
    }

    /// `parts` joined and NUL-terminated, kept; `None` when a part holds a
    /// NUL or it does not fit (the caller then takes the slow way).
    pub(crate) fn path(&mut self, parts: &[&[u8]]) -> Option<&'static core::ffi::CStr> {
        let need = parts.iter().map(|p| p.len()).sum::<usize>() + 1;
        let free = crate::bytes::as_uninit(self.room(need)?);
        let len = crate::start::join(free, parts)?.to_bytes_with_nul().len();
        let kept = self.keep(len);
        // SAFETY: `join` just wrote these bytes: the parts, which have no
        // NUL, and one NUL at the end.
        Some(unsafe { core::ffi::CStr::from_bytes_with_nul_unchecked(kept) })
    }

    /// `bytes` kept for the life of the process: copied into the arena, or,
    /// when it is full (a very large configuration or `PATH`), leaked from
    /// the heap.
    pub(crate) fn copy(&mut self, bytes: &[u8]) -> &'static [u8] {
        match self
            .room(bytes.len())
            .and_then(|f| f.get_mut(..bytes.len()))
        {
            Some(dst) => {
                crate::bytes::copy(dst, bytes);
                self.keep(bytes.len())
            }
            None => Box::leak(bytes.to_vec().into_boxed_slice()),
        }
    }

    /// Encodes with `fill` into the free space and keeps the result; when
    /// it does not fit, encodes again into a leaked heap buffer.
    fn encode(&mut self, fill: impl Fn(&mut dyn Sink)) -> &'static [u8] {
        let mut sink = ArenaSink {
            buf: self.free(),
            len: 0,
        };
        fill(&mut sink);
        // A second pass when it did not fit: into the next region, or the
        // heap.
        let need = sink.len;
        if need > sink.buf.len() {
            let Some(buf) = self.room(need) else {
                let mut v = Vec::with_capacity(need);
                fill(&mut v);
                return Box::leak(v.into_boxed_slice());
            };
            sink = ArenaSink { buf, len: 0 };
            fill(&mut sink);
        }
        self.keep(need)
    }
}

/// A [`Sink`] over the arena's free space that counts what did not fit
/// (copying with [`crate::bytes::copy`]).
struct ArenaSink<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Sink for ArenaSink<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let end = self.len.saturating_add(bytes.len());
        if let Some(dst) = self.buf.get_mut(self.len..end) {
            crate::bytes::copy(dst, bytes);
        }
        self.len = end;
    }
}

/// What a process contributes to its plan besides the configuration.
pub(crate) struct Facts<'a> {
    /// `PATH` (none in a secure process), for bare program names.
    pub path: Option<&'a [u8]>,
    /// The report descriptor, or -1.
    pub report_fd: libc::c_int,
    /// `AT_SECURE`: no program is looked for where the user may put one.
    pub secure: bool,
}

/// The plan for this process: `view`'s settings for its executable and
/// pointer width, with the program lookups and the dumper command line
/// prepared. `view` must live in the arena or be leaked (the debugger's
/// words are used in place).
pub(crate) fn plan_from_view(
    view: &PlanView<'static>,
    facts: &Facts<'_>,
    arena: &mut Arena,
) -> Plan {
    let is_32bit = cfg!(target_pointer_width = "32");
    let ae = view.aedebug_for(is_32bit);
    let asks = !ae.auto && ae.debugger.is_some();
    let needs_exe =
        asks || ae.has_exclusions() || view.localdumps.as_ref().is_some_and(|ld| ld.has_apps());
    // Reading /proc/self/exe costs every process start ~10 µs; only
    // per-executable settings and the auto = 0 question need it.
    let exe: &'static [u8] = if needs_exe { exe_name(arena) } else { &[] };
    let mut path: Option<&'static [u8]> = None;
    let mut path_of = |arena: &mut Arena| -> Option<&'static [u8]> {
        if path.is_none() {
            path = facts.path.map(|p| arena.copy(p));
        }
        path
    };
    let debugger = ae.debugger.map(|words| {
        let mut programs = [Program::AsIs; MAX_PROGRAMS];
        let n = match words.program() {
            Some(p) => {
                programs[0] = lookup(p.contains(&b'/'), || path_of(arena));
                1
            }
            None => 0,
        };
        Cmd::new(words, programs, n)
    });
    let dumper = view.localdumps.as_ref().map(|ld| {
        let (folder, level) = ld.for_exe(exe);
        let (program, programs, n): (&'static [u8], [Program; MAX_PROGRAMS], usize) =
            match ld.dumper {
                Some(p) => {
                    let one = lookup(p.contains(&b'/'), || path_of(arena));
                    (p, [one, Program::AsIs, Program::AsIs], 1)
                }
                None => {
                    let (list, n) = coroner_programs(path_of(arena), facts.secure, true);
                    (&DUMPER_WORDS.coroner[..], list, n)
                }
            };
        let words = dumper_cmd(program, level, folder, arena);
        Cmd::new(words, programs, n)
    });
    Plan {
        exe_name: exe,
        debugger,
        auto: ae.auto,
        excluded: ae.excluded(exe),
        debugger_timeout_ms: ae.timeout_ms,
        dumper,
        dump_timeout_ms: view.localdumps.as_ref().map_or(0, |ld| ld.timeout_ms),
        report_fd: facts.report_fd,
    }
}

/// A plan that does nothing but report: no configuration file, or one
/// that could not be loaded.
pub(crate) const fn empty_plan(report_fd: libc::c_int) -> Plan {
    Plan {
        exe_name: &[],
        debugger: None,
        auto: true,
        excluded: false,
        debugger_timeout_ms: 0,
        dumper: None,
        dump_timeout_ms: 0,
        report_fd,
    }
}

/// Where the child finds a program: as written when it has a `/` (execve
/// does no `PATH` search) or there is no `PATH` (a secure process), else on
/// `PATH`, at crash time.
fn lookup(has_slash: bool, path: impl FnOnce() -> Option<&'static [u8]>) -> Program {
    if has_slash {
        return Program::AsIs;
    }
    match path() {
        Some(path) => Program::Search { path },
        None => Program::AsIs,
    }
}

/// The literal words of the dumper's command line, in `.data` rather than
/// `.rodata`: the library's `.data` page is written by its relocations
/// anyway, where the first read of a `.rodata` page is one more page fault
/// at start-up.
#[repr(C)]
struct DumperWords {
    coroner: [u8; 7],
    dump: [u8; 4],
    outcome: [u8; 14],
    reason: [u8; 13],
    note: [u8; 11],
    accepteula: [u8; 11],
    j: [u8; 2],
    mm: [u8; 3],
    mp: [u8; 3],
    ma: [u8; 3],
    format: [u8; 8],
    core: [u8; 4],
}

#[link_section = ".data.coroner_start"]
static DUMPER_WORDS: DumperWords = DumperWords {
    coroner: *b"coroner",
    dump: *b"dump",
    outcome: *b"--jit-outcome=",
    reason: *b"--jit-reason=",
    note: *b"--jit-note=",
    accepteula: *b"-accepteula",
    j: *b"-j",
    mm: *b"-mm",
    mp: *b"-mp",
    ma: *b"-ma",
    format: *b"--format",
    core: *b"core",
};

/// `DumpLevel::dump_args` from [`DUMPER_WORDS`], by the level's
/// declaration order. A table (its references are relocated, so it lives
/// on a page written at load) rather than a `match`, which compiles to a
/// jump table in `.rodata`.
static LEVEL_ARGS: [([&[u8]; 3], usize); 4] = {
    let w = &DUMPER_WORDS;
    [
        ([&w.mm, &[], &[]], 1),
        ([&w.mp, &[], &[]], 1),
        ([&w.ma, &[], &[]], 1),
        ([&w.ma, &w.format, &w.core], 3),
    ]
};

fn level_args(level: DumpLevel) -> ([&'static [u8]; 3], usize) {
    LEVEL_ARGS[(level as usize).min(3)]
}

/// `<dumper> dump --jit-outcome=<o> --jit-reason=<r> [--jit-note=<msg>]
/// -accepteula <level options> -j <folder> %ld %ld %p`. The outcome,
/// reason and note are filled in at crash time: what the debugger step came
/// to (a `coroner_store::JitOutcome` spelling), the report's reason, and
/// the FailFast message when there is one (its word is left out
/// otherwise); `coroner dump` takes them only as its first words.
pub(crate) fn dumper_cmd(
    dumper: &[u8],
    level: DumpLevel,
    folder: &[u8],
    arena: &mut Arena,
) -> CmdRef<'static> {
    let w = &DUMPER_WORDS;
    let (args, nargs) = level_args(level);
    let bytes = arena.encode(|s: &mut dyn Sink| {
        put_cmd_header(s, 11 + nargs as u32);
        put_lit_word(s, dumper);
        put_lit_word(s, &w.dump);
        for (prefix, fill) in [
            (&w.outcome[..], Fill::Outcome),
            (&w.reason, Fill::Reason),
            (&w.note, Fill::Note),
        ] {
            put_word_header(s, 2);
            put_lit(s, prefix);
            put_fill(s, fill);
        }
        put_lit_word(s, &w.accepteula);
        for a in &args[..nargs] {
            put_lit_word(s, a);
        }
        put_lit_word(s, &w.j);
        put_lit_word(s, folder);
        for fill in [Fill::Pid, Fill::Event, Fill::JitAddr] {
            put_word_header(s, 1);
            put_fill(s, fill);
        }
    });
    // The encoder above is the format's own, so this parses to the end;
    // were it not to, the empty command fails to spawn and the report says
    // so.
    match CmdRef::parse(bytes, true) {
        Some((cmd, [])) => cmd,
        _ => CmdRef::EMPTY,
    }
}

/// Where a `coroner` the runtime runs (the default dumper, the plan
/// compiler) is looked for, in order, and how many places: `coroner` on
/// `PATH` and in this library's installation (beside it, or the executable
/// that links the runtime; through a symbolic link too, as `coroner run`'s
/// preload tree has; see [`Program::Installed`]), the first of the two
/// `path_first` says, then beside `/proc/self/exe`. A `secure`
/// (`AT_SECURE`) process looks only in the installation: its `PATH` and a
/// setuid program's directory need not be root's alone, and what it runs
/// would run with the program's privileges.
pub(crate) fn coroner_programs(
    path: Option<&'static [u8]>,
    secure: bool,
    path_first: bool,
) -> ([Program; MAX_PROGRAMS], usize) {
    let search = path
        .filter(|_| !secure)
        .map(|path| Program::Search { path });
    let installed = own_object_path().map(|object| Program::Installed { object });
    let beside = (!secure).then_some(Program::Beside {
        object: b"/proc/self/exe",
    });
    let (first, second) = if path_first {
        (search, installed)
    } else {
        (installed, search)
    };
    let mut programs = [Program::AsIs; MAX_PROGRAMS];
    let mut n = 0;
    for p in [first, second, beside].into_iter().flatten() {
        programs[n] = p;
        n += 1;
    }
    (programs, n)
}

/// The path the loader gave the ELF object this code is in (libcoroner.so
/// when preloaded). `dladdr` reads the loader's tables: no syscall, and
/// the string is the loader's, valid while the object stays loaded (for
/// the life of the process here).
pub(crate) fn own_object_path() -> Option<&'static [u8]> {
    // SAFETY: all-zero is a valid Dl_info (pointers null).
    let mut info: libc::Dl_info = unsafe { core::mem::zeroed() };
    // SAFETY: dladdr reads the loader's tables for an address inside this
    // object and fills `info`, a live struct.
    let ok = unsafe { libc::dladdr(own_object_path as *const libc::c_void, &mut info) };
    if ok == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dli_fname is a NUL-terminated string owned by the loader,
    // valid while this object is loaded, which is until the process ends.
    Some(unsafe { crate::bytes::c_prefix(info.dli_fname.cast(), 0) })
}

/// Basename of `/proc/self/exe` without a ` (deleted)` suffix, kept in the
/// arena (empty when unreadable). The link is read straight into the
/// arena (a 4 KiB stack buffer would be probed, page by page).
pub(crate) fn exe_name(arena: &mut Arena) -> &'static [u8] {
    let link = c"/proc/self/exe";
    // SAFETY: readlink writes at most `free.len()` bytes into `free`; the
    // path is a NUL-terminated literal.
    let read = |free: &mut [u8]| unsafe {
        libc::readlink(link.as_ptr(), free.as_mut_ptr().cast(), free.len())
    };
    let mut n = read(arena.free());
    if n > 0 && n as usize >= arena.free().len() {
        // Truncated in what is left of the first region: a whole page.
        n = match arena.room(4096) {
            Some(free) => read(free),
            None => -1,
        };
    }
    if n <= 0 || n as usize >= arena.free().len() {
        return &[];
    }
    basename(arena.keep(n as usize))
}

/// The last component of an absolute path (as `/proc/self/exe` links to),
/// with the kernel's ` (deleted)` suffix taken off.
pub(crate) fn basename(path: &[u8]) -> &[u8] {
    let name = match path.iter().rposition(|&b| b == b'/') {
        Some(i) => &path[i + 1..],
        None => path,
    };
    name.strip_suffix(b" (deleted)").unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use coroner_config::plan::{encode, PieceRef, Role, Stamp};
    use std::path::Path;

    fn words(cmd: &Cmd) -> Vec<String> {
        cmd.words
            .words()
            .map(|w| {
                w.pieces()
                    .map(|p| match p {
                        PieceRef::Lit(b) => String::from_utf8_lossy(b).into_owned(),
                        PieceRef::Pid => "<pid>".into(),
                        PieceRef::Event => "<event>".into(),
                        PieceRef::JitAddr => "<addr>".into(),
                        PieceRef::Outcome => "<outcome>".into(),
                        PieceRef::Reason => "<reason>".into(),
                        PieceRef::Note => "<note>".into(),
                    })
                    .collect::<String>()
            })
            .collect()
    }

    /// The plan for `text` as a process with `PATH` = `path` builds it.
    fn plan_for(text: &str, path: Option<&'static str>, report_fd: i32) -> Plan {
        plan_for_process(text, path, report_fd, false)
    }

    /// [`plan_for`], `AT_SECURE` or not.
    fn plan_for_process(
        text: &str,
        path: Option<&'static str>,
        report_fd: i32,
        secure: bool,
    ) -> Plan {
        let config = coroner_config::parse_str(text, Path::new("t.toml")).unwrap();
        let bytes = encode(&config, &[Stamp::of(Role::System, text.as_bytes())]);
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        let view = PlanView::parse(bytes).unwrap();
        let _lock = crate::test_lock();
        // SAFETY: the test lock stands for the install lock.
        let mut arena = unsafe { Arena::new() };
        let facts = Facts {
            path: path.map(str::as_bytes),
            report_fd,
            secure,
        };
        plan_from_view(&view, &facts, &mut arena)
    }

    #[test]
    fn bare_programs_are_looked_up_on_path_by_the_child() {
        let t = "[aedebug]\ndebugger = \"mydbg -p %ld -e %ld -c \\\".jdinfo 0x%p\\\"\"\n";
        let plan = plan_for(t, Some("/a:/b"), -1);
        let cmd = plan.debugger.unwrap();
        assert_eq!(
            words(&cmd),
            [
                "mydbg",
                "-p",
                "<pid>",
                "-e",
                "<event>",
                "-c",
                ".jdinfo 0x<addr>"
            ]
        );
        assert_eq!(cmd.programs(), [Program::Search { path: b"/a:/b" }]);
        // No PATH (a secure process): as written.
        let plan = plan_for(t, None, -1);
        assert_eq!(plan.debugger.unwrap().programs(), [Program::AsIs]);
        // A path is never searched.
        let plan = plan_for("[aedebug]\ndebugger = \"./x %ld\"\n", Some("/a"), -1);
        assert_eq!(plan.debugger.unwrap().programs(), [Program::AsIs]);
        // A first word that is not plain text: words[0] as it stands.
        let plan = plan_for("[aedebug]\ndebugger = \"x%ld\"\n", Some("/a"), -1);
        assert!(plan.debugger.unwrap().programs().is_empty());
    }

    #[test]
    fn the_default_dumper_is_found_at_crash_time() {
        let plan = plan_for("[localdumps]\nfolder = \"/d\"\n", Some("/bin"), -1);
        let cmd = plan.dumper.unwrap();
        let p = cmd.programs();
        assert_eq!(p[0], Program::Search { path: b"/bin" });
        // The test binary links the runtime: its own path, then /proc/self/exe.
        let me = std::env::current_exe().unwrap();
        assert!(
            matches!(p[1], Program::Installed { object } if Path::new(std::ffi::OsStr::from_bytes(object)) == me),
            "{p:?}"
        );
        assert_eq!(
            p[2],
            Program::Beside {
                object: b"/proc/self/exe"
            }
        );
        assert_eq!(words(&cmd)[0], "coroner");
        // A setuid process: only the installation (no PATH, not beside).
        let plan = plan_for_process("[localdumps]\nfolder = \"/d\"\n", None, -1, true);
        let p = plan.dumper.unwrap().programs().to_vec();
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(matches!(p[0], Program::Installed { .. }), "{p:?}");
    }

    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn dumper_command_line() {
        let plan = plan_for(
            "[localdumps]\nfolder = \"/var/crash x\"\ntype = \"full\"\ndumper = \"/opt/coroner\"\n",
            Some("/bin"),
            -1,
        );
        let cmd = plan.dumper.unwrap();
        assert_eq!(
            words(&cmd),
            [
                "/opt/coroner",
                "dump",
                "--jit-outcome=<outcome>",
                "--jit-reason=<reason>",
                "--jit-note=<note>",
                "-accepteula",
                "-ma",
                "-j",
                "/var/crash x",
                "<pid>",
                "<event>",
                "<addr>"
            ]
        );
        assert_eq!(cmd.programs(), [Program::AsIs]);
        let plan = plan_for(
            "[localdumps]\ntype = \"core\"\ndumper = \"/usr/bin/coroner\"\n",
            Some("/usr/bin"),
            -1,
        );
        let cmd = plan.dumper.unwrap();
        assert_eq!(words(&cmd)[6..9], ["-ma", "--format", "core"]);
        assert_eq!(cmd.programs(), [Program::AsIs]);
    }

    #[test]
    fn arena_regions_hand_out_distinct_bytes() {
        let _lock = crate::test_lock();
        // SAFETY: the test lock stands for the install lock.
        let mut arena = unsafe { Arena::new() };
        let a = arena.copy(b"first");
        // Larger than the first region: from the rest.
        let big = vec![7u8; FIRST_SIZE + 10];
        let b = arena.copy(&big);
        let c = arena.copy(b"third");
        assert_eq!((a, b, c), (&b"first"[..], &big[..], &b"third"[..]));
        let end = |x: &[u8]| x.as_ptr() as usize + x.len();
        for (x, y) in [(a, b), (a, c), (b, c)] {
            assert!(end(x) <= y.as_ptr() as usize || end(y) <= x.as_ptr() as usize);
        }
    }

    #[test]
    fn level_arguments_are_dump_args() {
        for l in [
            DumpLevel::Mini,
            DumpLevel::MiniPlus,
            DumpLevel::Full,
            DumpLevel::Core,
        ] {
            let (args, n) = level_args(l);
            let ours: Vec<&[u8]> = args[..n].to_vec();
            let theirs: Vec<&[u8]> = l.dump_args().iter().map(|a| a.as_bytes()).collect();
            assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn plan_follows_effective_settings() {
        let text = "[aedebug]\ndebugger = \"/bin/dbg %ld\"\nauto = 0\nexclude = [\"bad*\", \"coroner_runtime-*\"]\ntimeout = 3\n\
             [localdumps]\nfolder = \"/tmp/d\"\ntype = \"mini-plus\"\ndumper = \"/bin/dumper\"\ntimeout = 7\n";
        let plan = plan_for(text, None, 9);
        // The test executable is coroner_runtime-<hash>: excluded by name.
        assert!(
            plan.excluded,
            "{:?}",
            String::from_utf8_lossy(plan.exe_name)
        );
        assert!(plan.exe_name.starts_with(b"coroner_runtime-"));
        assert!(!plan.auto);
        assert_eq!(plan.debugger_timeout_ms, 3000);
        assert_eq!(plan.dump_timeout_ms, 7000);
        assert_eq!(plan.report_fd, 9);
        assert_eq!(words(&plan.debugger.unwrap()), ["/bin/dbg", "<pid>"]);
        assert_eq!(
            words(&plan.dumper.unwrap())[5..8],
            ["-accepteula", "-mp", "-j"]
        );
        let plan = plan_for("[aedebug]\ndebugger = \"/bin/dbg %ld\"\n", None, -1);
        assert!(!plan.excluded && plan.auto);
        assert!(plan.exe_name.is_empty(), "not read when nothing needs it");
        let plan = plan_for("", None, -1);
        assert!(plan.debugger.is_none() && plan.dumper.is_none());
        // [localdumps.apps.NAME] by this executable's name.
        let me = std::env::current_exe().unwrap();
        let me = me.file_name().unwrap().to_str().unwrap();
        let text = format!(
            "[localdumps]\nfolder = \"/d\"\n[localdumps.apps.\"{me}\"]\nfolder = \"/mine\"\ntype = \"full\"\n"
        );
        let config = coroner_config::parse_str(&text, Path::new("t.toml")).unwrap();
        let want = config.effective(me, false).localdumps.unwrap();
        let plan = plan_for(Box::leak(text.into_boxed_str()), None, -1);
        let w = words(&plan.dumper.unwrap());
        assert_eq!(w[6], format!("-{}", &want.level.dump_args()[0][1..]));
        assert_eq!(w[8], want.folder.to_str().unwrap());
        assert_eq!(w[8], "/mine");
    }

    #[test]
    fn basenames_like_path_file_name() {
        for p in [
            "/usr/bin/true",
            "/x",
            "/a/b (deleted)",
            "/a/b (deleted) (deleted)",
        ] {
            let want = Path::new(p)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let want = want.strip_suffix(" (deleted)").unwrap_or(&want);
            assert_eq!(
                String::from_utf8_lossy(basename(p.as_bytes())),
                want,
                "{p:?}"
            );
        }
    }
}
