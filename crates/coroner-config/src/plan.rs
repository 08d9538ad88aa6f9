//! The compiled plan: what the crash runtime needs from the configuration,
//! validated once and stored in a small binary file beside the most
//! specific configuration file (`coroner.toml` → `coroner.toml.plan`), so
//! that a process start reads and checks a few hundred bytes instead of
//! parsing TOML.
//!
//! # Freshness and trust
//! A plan lists the configuration files it was compiled from ([`Stamp`]:
//! role, size and a 64-bit FNV-1a hash of the bytes). The runtime reads
//! those files itself (the same trust checks as [`crate::load`]), hashes
//! them, and uses the plan only when the list matches exactly; anything
//! else (no plan, another version, a stale or foreign plan) falls back to
//! parsing, which may then write a fresh plan ([`store`]). Hashing the
//! content rather than comparing `stat` fields means an edit in place
//! within one timestamp tick, or a clock set back, cannot leave a stale
//! plan in force. Absent files are not listed, so the one system plan
//! serves every process that has no user file.
//!
//! A plan is used only if it is a regular file (never a symbolic link), not
//! group- or world-writable, and owned by the owner of the configuration
//! file beside which it lies: the system plan must be root-owned exactly as
//! the system file is, and nobody who cannot write a configuration file can
//! choose the debugger through its plan.
//!
//! # Format (version 1, little-endian)
//! ```text
//! "CRNRPLAN" u32:version u8:n-stamps { u8:role u64:size u64:hash }*
//! aedebug                       ; [aedebug]
//! u8:has-i386 [aedebug]         ; [aedebug.i386], resolved
//! u8:has-localdumps [ bytes:folder u8:level i64:timeout-ms
//!                     u8:has-dumper [bytes:dumper]
//!                     u32:n-apps { bytes:name u8:has-folder [bytes:folder] u8:level|0xff }* ]
//! aedebug := u8:has-debugger [cmd] u8:auto i64:timeout-ms u32:n { bytes:pattern }*
//! cmd     := u32:n-words { u32:n-pieces { u8:tag [bytes if tag = LIT] }* }*
//! bytes   := u32:length byte*
//! ```
//! The `cmd` form is also what the runtime's crash path expands into argv
//! ([`CmdRef`]), with three more piece kinds for the dumper's command line.
//!
//! Everything that reads this format ([`PlanView`], [`CmdRef`], the glob
//! match) allocates nothing, takes no lock and never panics: the runtime
//! calls it before `main` and, for [`CmdRef`], inside its crash handler.
//! It is `#[inline]`, so that its code lands beside the runtime's own: a
//! separate page of this crate's code is one more page fault at every
//! process start.

use crate::load::{load_stamped, Sources};
use crate::model::{Config, DumpLevel};
use crate::template::Piece;
use crate::AeDebug;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The first bytes of a plan file.
pub const MAGIC: [u8; 8] = *b"CRNRPLAN";
/// The format version this build writes and reads.
pub const VERSION: u32 = 1;
/// Suffix appended to a configuration file's name to name its plan.
pub const SUFFIX: &str = ".plan";
/// Plans larger than this are not written (nor read by the runtime).
pub const MAX_PLAN: usize = 1 << 20;

/// Where the configuration file `config` keeps its plan: `config` with
/// [`SUFFIX`] appended to its name.
pub fn plan_path(config: &Path) -> PathBuf {
    let mut s = config.as_os_str().to_owned();
    s.push(SUFFIX);
    PathBuf::from(s)
}

/// Which file a [`Stamp`] stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Role {
    /// `CORONER_CONFIG` (it replaces the other two).
    Override = 1,
    /// The system file.
    System = 2,
    /// The per-user file.
    User = 3,
}

impl Role {
    #[inline]
    fn from_u8(b: u8) -> Option<Role> {
        Some(match b {
            1 => Role::Override,
            2 => Role::System,
            3 => Role::User,
            _ => return None,
        })
    }
}

/// One configuration file a plan was compiled from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub role: Role,
    /// Length of the file in bytes.
    pub size: u64,
    /// [`ContentHash`] of the file's bytes.
    pub hash: u64,
}

impl Stamp {
    /// The stamp of `bytes` read from the file playing `role`.
    pub fn of(role: Role, bytes: &[u8]) -> Stamp {
        let mut h = ContentHash::new();
        h.update(bytes);
        Stamp {
            role,
            size: bytes.len() as u64,
            hash: h.finish(),
        }
    }
}

/// 64-bit FNV-1a over a file's bytes, fed in pieces (the runtime reads
/// into a small stack buffer).
#[derive(Debug, Clone, Copy)]
pub struct ContentHash(u64);

impl Default for ContentHash {
    fn default() -> Self {
        ContentHash::new()
    }
}

impl ContentHash {
    #[inline]
    pub const fn new() -> ContentHash {
        ContentHash(0xcbf2_9ce4_8422_2325)
    }
    #[inline]
    pub fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    #[inline]
    pub fn finish(&self) -> u64 {
        self.0
    }
}

// ------------------------------------------------------------------ writing

/// Where encoded bytes go: a `Vec`, or the runtime's fixed buffer when it
/// must not allocate.
pub trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

#[inline]
fn put_u8<S: Sink + ?Sized>(s: &mut S, v: u8) {
    s.put(&[v]);
}
#[inline]
fn put_u32<S: Sink + ?Sized>(s: &mut S, v: u32) {
    s.put(&v.to_le_bytes());
}
#[inline]
fn put_u64<S: Sink + ?Sized>(s: &mut S, v: u64) {
    s.put(&v.to_le_bytes());
}
#[inline]
fn put_i64<S: Sink + ?Sized>(s: &mut S, v: i64) {
    s.put(&v.to_le_bytes());
}
#[inline]
fn put_bytes<S: Sink + ?Sized>(s: &mut S, b: &[u8]) {
    put_u32(s, u32::try_from(b.len()).unwrap_or(u32::MAX));
    s.put(b);
}

const TAG_LIT: u8 = 0;
const TAG_PID: u8 = 1;
const TAG_EVENT: u8 = 2;
const TAG_JIT_ADDR: u8 = 3;
const TAG_OUTCOME: u8 = 4;
const TAG_REASON: u8 = 5;
const TAG_NOTE: u8 = 6;

/// One piece of a command word, as encoded and as the crash path expands
/// it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceRef<'a> {
    /// Literal bytes.
    Lit(&'a [u8]),
    /// `%ld` #1: the crashing process's pid.
    Pid,
    /// `%ld` #2: the event descriptor.
    Event,
    /// `%p`: the JIT block's address.
    JitAddr,
    /// The dumper's `--jit-outcome=` value (runtime only).
    Outcome,
    /// The dumper's `--jit-reason=` value (runtime only).
    Reason,
    /// The FailFast message (runtime only; its word is dropped when empty).
    Note,
}

/// Starts a command of `words` words.
#[inline]
pub fn put_cmd_header<S: Sink + ?Sized>(s: &mut S, words: u32) {
    put_u32(s, words);
}

/// Starts a word of `pieces` pieces.
#[inline]
pub fn put_word_header<S: Sink + ?Sized>(s: &mut S, pieces: u32) {
    put_u32(s, pieces);
}

/// A piece filled in at crash time. The discriminant is the tag, so
/// encoding one is a byte store (a `match` would compile to a table in
/// `.rodata`, one more page fault at the runtime's start-up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Fill {
    Pid = TAG_PID,
    Event = TAG_EVENT,
    JitAddr = TAG_JIT_ADDR,
    Outcome = TAG_OUTCOME,
    Reason = TAG_REASON,
    Note = TAG_NOTE,
}

/// Appends a literal piece to the current word.
#[inline]
pub fn put_lit<S: Sink + ?Sized>(s: &mut S, b: &[u8]) {
    put_u8(s, TAG_LIT);
    put_bytes(s, b);
}

/// Appends a piece filled in at crash time to the current word.
#[inline]
pub fn put_fill<S: Sink + ?Sized>(s: &mut S, f: Fill) {
    put_u8(s, f as u8);
}

/// Appends one piece to the current word.
pub fn put_piece<S: Sink + ?Sized>(s: &mut S, p: PieceRef<'_>) {
    match p {
        PieceRef::Lit(b) => put_lit(s, b),
        PieceRef::Pid => put_fill(s, Fill::Pid),
        PieceRef::Event => put_fill(s, Fill::Event),
        PieceRef::JitAddr => put_fill(s, Fill::JitAddr),
        PieceRef::Outcome => put_fill(s, Fill::Outcome),
        PieceRef::Reason => put_fill(s, Fill::Reason),
        PieceRef::Note => put_fill(s, Fill::Note),
    }
}

/// Appends a word of literal bytes.
#[inline]
pub fn put_lit_word<S: Sink + ?Sized>(s: &mut S, b: &[u8]) {
    put_word_header(s, 1);
    put_lit(s, b);
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn level_code(l: DumpLevel) -> u8 {
    match l {
        DumpLevel::Mini => 0,
        DumpLevel::MiniPlus => 1,
        DumpLevel::Full => 2,
        DumpLevel::Core => 3,
    }
}

#[inline]
fn level_of(b: u8) -> Option<DumpLevel> {
    Some(match b {
        0 => DumpLevel::Mini,
        1 => DumpLevel::MiniPlus,
        2 => DumpLevel::Full,
        3 => DumpLevel::Core,
        _ => return None,
    })
}

fn put_aedebug(s: &mut Vec<u8>, ae: &AeDebug) {
    match ae.debugger.as_ref().filter(|d| !d.is_empty()) {
        Some(t) => {
            put_u8(s, 1);
            let words = t.words();
            put_cmd_header(s, words.len() as u32);
            for w in words {
                put_word_header(s, w.len() as u32);
                for p in w {
                    put_piece(
                        s,
                        match p {
                            Piece::Lit(text) => PieceRef::Lit(text.as_bytes()),
                            Piece::Pid => PieceRef::Pid,
                            Piece::Event => PieceRef::Event,
                            Piece::JitAddr => PieceRef::JitAddr,
                        },
                    );
                }
            }
        }
        None => put_u8(s, 0),
    }
    put_u8(s, u8::from(ae.auto));
    put_i64(s, millis(ae.timeout));
    put_u32(s, ae.exclude.len() as u32);
    for p in &ae.exclude {
        put_bytes(s, p.as_bytes());
    }
}

/// The plan for `config`, compiled from the files `stamps` describe.
/// `config` must have been loaded without a `PATH` (`Sources::search_path`
/// `None`): the runtime looks for a default dumper itself, at crash time.
pub fn encode(config: &Config, stamps: &[Stamp]) -> Vec<u8> {
    let mut s = Vec::with_capacity(512);
    s.put(&MAGIC);
    put_u32(&mut s, VERSION);
    put_u8(&mut s, stamps.len() as u8);
    for st in stamps {
        put_u8(&mut s, st.role as u8);
        put_u64(&mut s, st.size);
        put_u64(&mut s, st.hash);
    }
    put_aedebug(&mut s, &config.aedebug);
    match &config.aedebug_i386 {
        Some(ae) => {
            put_u8(&mut s, 1);
            put_aedebug(&mut s, ae);
        }
        None => put_u8(&mut s, 0),
    }
    match &config.localdumps {
        Some(ld) => {
            put_u8(&mut s, 1);
            put_bytes(&mut s, ld.folder.as_os_str().as_bytes());
            put_u8(&mut s, level_code(ld.level));
            put_i64(&mut s, millis(ld.timeout));
            match &ld.dumper {
                Some(d) => {
                    put_u8(&mut s, 1);
                    put_bytes(&mut s, d.as_os_str().as_bytes());
                }
                None => put_u8(&mut s, 0),
            }
            put_u32(&mut s, ld.apps.len() as u32);
            for (name, app) in &ld.apps {
                put_bytes(&mut s, name.as_bytes());
                match &app.folder {
                    Some(f) => {
                        put_u8(&mut s, 1);
                        put_bytes(&mut s, f.as_os_str().as_bytes());
                    }
                    None => put_u8(&mut s, 0),
                }
                put_u8(&mut s, app.level.map_or(0xff, level_code));
            }
        }
        None => put_u8(&mut s, 0),
    }
    s
}

// ------------------------------------------------------------------ reading

/// A bounds-checked cursor; every read returns `None` past the end.
#[derive(Debug, Clone, Copy)]
struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    #[inline]
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.b.len() {
            return None;
        }
        let (head, tail) = self.b.split_at(n);
        self.b = tail;
        Some(head)
    }
    #[inline]
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    #[inline]
    fn flag(&mut self) -> Option<bool> {
        match self.u8()? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }
    #[inline]
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    #[inline]
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    #[inline]
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    #[inline]
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    #[inline]
    fn piece(&mut self) -> Option<PieceRef<'a>> {
        Some(match self.u8()? {
            TAG_LIT => PieceRef::Lit(self.bytes()?),
            TAG_PID => PieceRef::Pid,
            TAG_EVENT => PieceRef::Event,
            TAG_JIT_ADDR => PieceRef::JitAddr,
            TAG_OUTCOME => PieceRef::Outcome,
            TAG_REASON => PieceRef::Reason,
            TAG_NOTE => PieceRef::Note,
            _ => return None,
        })
    }
}

/// An encoded command line (words of pieces), checked when it was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CmdRef<'a> {
    /// The words, after the word count.
    body: &'a [u8],
    words: u32,
}

impl<'a> CmdRef<'a> {
    /// The command with no words (it cannot be run).
    pub const EMPTY: CmdRef<'static> = CmdRef {
        body: &[],
        words: 0,
    };

    /// Checks an encoded command at the start of `bytes`; returns it and
    /// the bytes after it. `runtime_pieces` admits the dumper's pieces
    /// (outcome, reason, note), which a plan file never holds.
    #[inline]
    pub fn parse(bytes: &'a [u8], runtime_pieces: bool) -> Option<(CmdRef<'a>, &'a [u8])> {
        let mut r = Reader { b: bytes };
        let words = r.u32()?;
        let body_start = r.b;
        for _ in 0..words {
            let pieces = r.u32()?;
            for _ in 0..pieces {
                match r.piece()? {
                    PieceRef::Outcome | PieceRef::Reason | PieceRef::Note if !runtime_pieces => {
                        return None
                    }
                    _ => {}
                }
            }
        }
        let used = body_start.len() - r.b.len();
        Some((
            CmdRef {
                body: &body_start[..used],
                words,
            },
            r.b,
        ))
    }

    /// Number of words (argc).
    #[inline]
    pub fn word_count(&self) -> usize {
        self.words as usize
    }

    /// The words in order.
    #[inline]
    pub fn words(&self) -> Words<'a> {
        Words {
            r: Reader { b: self.body },
            left: self.words,
        }
    }

    /// The program (first word) when it is plain text.
    #[inline]
    pub fn program(&self) -> Option<&'a [u8]> {
        let w = self.words().next()?;
        let mut p = w.pieces();
        match (p.next(), p.next()) {
            (Some(PieceRef::Lit(b)), None) => Some(b),
            _ => None,
        }
    }
}

/// The words of a [`CmdRef`].
#[derive(Debug, Clone)]
pub struct Words<'a> {
    r: Reader<'a>,
    left: u32,
}

impl<'a> Iterator for Words<'a> {
    type Item = WordRef<'a>;
    #[inline]
    fn next(&mut self) -> Option<WordRef<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let pieces = self.r.u32()?;
        let start = self.r;
        for _ in 0..pieces {
            self.r.piece()?;
        }
        Some(WordRef { r: start, pieces })
    }
}

/// One word of a [`CmdRef`].
#[derive(Debug, Clone, Copy)]
pub struct WordRef<'a> {
    r: Reader<'a>,
    pieces: u32,
}

impl<'a> WordRef<'a> {
    /// The pieces in order.
    #[inline]
    pub fn pieces(&self) -> Pieces<'a> {
        Pieces {
            r: self.r,
            left: self.pieces,
        }
    }
}

/// The pieces of a [`WordRef`].
#[derive(Debug, Clone)]
pub struct Pieces<'a> {
    r: Reader<'a>,
    left: u32,
}

impl<'a> Iterator for Pieces<'a> {
    type Item = PieceRef<'a>;
    #[inline]
    fn next(&mut self) -> Option<PieceRef<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        self.r.piece()
    }
}

/// A list of UTF-8 strings (checked when the plan was parsed).
#[derive(Debug, Clone, Copy)]
struct StrList<'a> {
    body: &'a [u8],
    n: u32,
}

impl<'a> StrList<'a> {
    #[inline]
    fn parse(r: &mut Reader<'a>) -> Option<StrList<'a>> {
        let n = r.u32()?;
        let start = r.b;
        for _ in 0..n {
            core::str::from_utf8(r.bytes()?).ok()?;
        }
        Some(StrList {
            body: &start[..start.len() - r.b.len()],
            n,
        })
    }
    #[inline]
    fn iter(&self) -> impl Iterator<Item = &'a str> + 'a {
        let mut r = Reader { b: self.body };
        (0..self.n).map_while(move |_| core::str::from_utf8(r.bytes()?).ok())
    }
}

/// `[aedebug]` (or `[aedebug.i386]`) from a plan.
#[derive(Debug, Clone, Copy)]
pub struct AeView<'a> {
    /// The debugger's command line; `None` when not configured.
    pub debugger: Option<CmdRef<'a>>,
    pub auto: bool,
    /// `timeout` in milliseconds.
    pub timeout_ms: i64,
    exclude: StrList<'a>,
}

impl<'a> AeView<'a> {
    #[inline]
    fn parse(r: &mut Reader<'a>) -> Option<AeView<'a>> {
        let debugger = if r.flag()? {
            let (cmd, rest) = CmdRef::parse(r.b, false)?;
            r.b = rest;
            if cmd.word_count() == 0 {
                return None;
            }
            Some(cmd)
        } else {
            None
        };
        Some(AeView {
            debugger,
            auto: r.flag()?,
            timeout_ms: r.i64()?,
            exclude: StrList::parse(r)?,
        })
    }

    /// Whether `exclude` lists anything (else the executable's name does
    /// not matter to it).
    #[inline]
    pub fn has_exclusions(&self) -> bool {
        self.exclude.n > 0
    }

    /// Whether the executable `base` (a basename, bytes as the kernel has
    /// them) matches `exclude`, as [`crate::Config::effective`] decides on
    /// its lossy UTF-8 form.
    #[inline]
    pub fn excluded(&self, base: &[u8]) -> bool {
        self.exclude.iter().any(|p| glob_match_lossy(p, base))
    }
}

/// `[localdumps]` from a plan.
#[derive(Debug, Clone, Copy)]
pub struct DumpsView<'a> {
    pub folder: &'a [u8],
    pub level: DumpLevel,
    /// `timeout` in milliseconds.
    pub timeout_ms: i64,
    /// `dumper`, when configured.
    pub dumper: Option<&'a [u8]>,
    apps: &'a [u8],
    napps: u32,
}

impl<'a> DumpsView<'a> {
    #[inline]
    fn parse(r: &mut Reader<'a>) -> Option<DumpsView<'a>> {
        let folder = r.bytes()?;
        let level = level_of(r.u8()?)?;
        let timeout_ms = r.i64()?;
        let dumper = if r.flag()? { Some(r.bytes()?) } else { None };
        let napps = r.u32()?;
        let start = r.b;
        for _ in 0..napps {
            core::str::from_utf8(r.bytes()?).ok()?;
            if r.flag()? {
                r.bytes()?;
            }
            let l = r.u8()?;
            if l != 0xff {
                level_of(l)?;
            }
        }
        Some(DumpsView {
            folder,
            level,
            timeout_ms,
            dumper,
            apps: &start[..start.len() - r.b.len()],
            napps,
        })
    }

    /// Whether `[localdumps.apps]` has entries (else the executable's name
    /// does not matter to it).
    #[inline]
    pub fn has_apps(&self) -> bool {
        self.napps > 0
    }

    /// Folder and level for the executable `base` after its
    /// `[localdumps.apps.NAME]` override, as
    /// [`crate::LocalDumps::effective`] decides on its lossy UTF-8 form.
    #[inline]
    pub fn for_exe(&self, base: &[u8]) -> (&'a [u8], DumpLevel) {
        let mut r = Reader { b: self.apps };
        for _ in 0..self.napps {
            let (Some(name), Some(has_folder)) = (r.bytes(), r.flag()) else {
                break;
            };
            let folder = if has_folder { r.bytes() } else { None };
            let level = r.u8().and_then(level_of);
            if core::str::from_utf8(name).is_ok_and(|n| lossy_eq(n, base)) {
                return (folder.unwrap_or(self.folder), level.unwrap_or(self.level));
            }
        }
        (self.folder, self.level)
    }
}

/// A parsed, fully checked plan.
#[derive(Debug, Clone, Copy)]
pub struct PlanView<'a> {
    stamps: &'a [u8],
    /// `[aedebug]`.
    pub aedebug: AeView<'a>,
    /// `[aedebug.i386]`, resolved; `None` = 32-bit processes use `aedebug`.
    pub aedebug_i386: Option<AeView<'a>>,
    /// `[localdumps]`, when present.
    pub localdumps: Option<DumpsView<'a>>,
}

impl<'a> PlanView<'a> {
    /// Checks all of `bytes` (magic, version, every length and tag, UTF-8
    /// where names are matched, no trailing bytes); `None` if anything is
    /// off.
    #[inline]
    pub fn parse(bytes: &'a [u8]) -> Option<PlanView<'a>> {
        let mut r = Reader { b: bytes };
        if r.take(MAGIC.len())? != MAGIC || r.u32()? != VERSION {
            return None;
        }
        let n = r.u8()? as usize;
        let stamps = r.take(n.checked_mul(17)?)?;
        if stamps.chunks(17).any(|c| Role::from_u8(c[0]).is_none()) {
            return None;
        }
        let aedebug = AeView::parse(&mut r)?;
        let aedebug_i386 = if r.flag()? {
            Some(AeView::parse(&mut r)?)
        } else {
            None
        };
        let localdumps = if r.flag()? {
            Some(DumpsView::parse(&mut r)?)
        } else {
            None
        };
        if !r.b.is_empty() {
            return None;
        }
        Some(PlanView {
            stamps,
            aedebug,
            aedebug_i386,
            localdumps,
        })
    }

    /// The files this plan was compiled from.
    #[inline]
    pub fn stamps(&self) -> impl Iterator<Item = Stamp> + 'a {
        self.stamps.chunks(17).filter_map(|c| {
            let mut r = Reader { b: c };
            Some(Stamp {
                role: Role::from_u8(r.u8()?)?,
                size: r.u64()?,
                hash: r.u64()?,
            })
        })
    }

    /// Whether the plan was compiled from exactly the files `now` describes
    /// (same roles in the same order, same sizes and hashes).
    #[inline]
    pub fn compiled_from(&self, now: &[Stamp]) -> bool {
        self.stamps.len() == now.len() * 17 && self.stamps().zip(now).all(|(a, b)| a == *b)
    }

    /// The AeDebug settings for a 32-bit (`[aedebug.i386]` when present) or
    /// 64-bit process.
    #[inline]
    pub fn aedebug_for(&self, is_32bit: bool) -> &AeView<'a> {
        match (&self.aedebug_i386, is_32bit) {
            (Some(i386), true) => i386,
            _ => &self.aedebug,
        }
    }
}

/// The next character of `String::from_utf8_lossy(&b[at..])`, with the
/// number of bytes it stands for (an invalid sequence is one U+FFFD).
#[inline]
fn lossy_char_at(b: &[u8], at: usize) -> Option<(char, usize)> {
    let chunk = b.get(at..)?.utf8_chunks().next()?;
    match chunk.valid().chars().next() {
        Some(c) => Some((c, c.len_utf8())),
        None => Some((char::REPLACEMENT_CHARACTER, chunk.invalid().len())),
    }
}

/// `s == String::from_utf8_lossy(name)`, without allocating.
#[inline]
pub fn lossy_eq(s: &str, name: &[u8]) -> bool {
    let mut at = 0;
    for c in s.chars() {
        match lossy_char_at(name, at) {
            Some((n, len)) if n == c => at += len,
            _ => return false,
        }
    }
    at == name.len()
}

/// [`crate::glob_match`]`(pattern, &String::from_utf8_lossy(name))`,
/// without allocating: `*` any run, `?` one character.
#[inline]
pub fn glob_match_lossy(pattern: &str, name: &[u8]) -> bool {
    if !pattern.contains(['*', '?']) {
        return lossy_eq(pattern, name);
    }
    let (mut pi, mut ni) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while let Some((nc, nlen)) = lossy_char_at(name, ni) {
        let pc = pattern.get(pi..).and_then(|p| p.chars().next());
        match pc {
            Some(c) if c == '?' || c == nc => {
                pi += c.len_utf8();
                ni += nlen;
            }
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            _ => {
                let Some((sp, sn)) = star else { return false };
                let Some((_, skip)) = lossy_char_at(name, sn) else {
                    return false;
                };
                pi = sp + 1;
                ni = sn + skip;
                star = Some((sp, ni));
            }
        }
    }
    pattern
        .get(pi..)
        .is_some_and(|rest| rest.chars().all(|c| c == '*'))
}

// ------------------------------------------------------------------ storing

/// The file `stamps` makes the plan's place: the most specific one (the
/// override, else the user file, else the system file).
fn plan_home<'s>(sources: &'s Sources, stamps: &[Stamp]) -> Option<&'s Path> {
    let has = |role| stamps.iter().any(|s| s.role == role);
    if has(Role::Override) {
        sources.env_override.as_deref()
    } else if has(Role::User) {
        sources.user.as_deref()
    } else if has(Role::System) {
        Some(&sources.system)
    } else {
        None
    }
}

/// Writes `plan` (compiled from the files `stamps` describes, found
/// through `sources`) beside the most specific of those files, atomically
/// (a temporary file renamed over the old plan). Writes nothing, and says
/// `Ok(None)`, when there is no file to put it beside or when this process
/// does not run as that file's owner (a plan owned by anyone else would be
/// refused). The plan gets the file's permission bits, without any write
/// bit for group or others.
pub fn store(sources: &Sources, stamps: &[Stamp], plan: &[u8]) -> io::Result<Option<PathBuf>> {
    let Some(home) = plan_home(sources, stamps) else {
        return Ok(None);
    };
    if plan.len() > MAX_PLAN {
        return Ok(None);
    }
    let meta = fs::metadata(home)?;
    if meta.uid() != coroner_sys::uids().1 {
        return Ok(None);
    }
    let path = plan_path(home);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(path.file_name().unwrap_or_default());
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(meta.mode() & 0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)?;
        f.write_all(plan)?;
        drop(f);
        fs::rename(&tmp, &path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map(|()| Some(path))
}

/// Loads the configuration `sources` names (without a `PATH`: see
/// [`encode`]), compiles its plan and [`store`]s it. `Ok(None)` when there
/// is nothing to cache (no file, or a file ignored with a warning, which the
/// runtime must keep seeing through the full load) or this process may not
/// write it. What `coroner config set` and the installers call after
/// writing a file.
pub fn refresh(sources: &Sources) -> Result<Option<PathBuf>, crate::ConfigError> {
    let mut sources = sources.clone();
    sources.search_path = None;
    let (loaded, stamps) = load_stamped(&sources)?;
    if !loaded.warnings.is_empty() {
        return Ok(None);
    }
    let plan = encode(&loaded.config, &stamps);
    let home = plan_home(&sources, &stamps).map(Path::to_path_buf);
    store(&sources, &stamps, &plan).map_err(|source| crate::ConfigError::Write {
        path: home.map_or_else(PathBuf::new, |h| plan_path(&h)),
        source,
    })
}

/// The exit status of `coroner config compile-plan --runtime` when the
/// configuration does not load; its standard output is then the message
/// (the `Display` of the [`crate::ConfigError`]).
pub const COMPILE_CONFIG_ERROR: u8 = 2;

/// What `coroner config compile-plan` does for the preloaded runtime,
/// which has no TOML parser: loads the configuration `sources` names
/// (without a `PATH`: see [`encode`]), compiles its plan and, with
/// `store`, [`store`]s it when this process may. Returns the plan, which the
/// runtime uses for the process that asked whether or not it was stored,
/// and where it was stored.
///
/// Unlike [`refresh`], a load with warnings is stored too: the files it
/// ignored (an untrusted system file, a group-writable user file) are not
/// in the plan's stamps, and the runtime's quick path ignores them in the
/// same way, so the plan stays in force until a file changes.
pub fn compile(
    sources: &Sources,
    store: bool,
) -> Result<(Vec<u8>, Option<PathBuf>), crate::ConfigError> {
    let mut sources = sources.clone();
    sources.search_path = None;
    let (loaded, stamps) = load_stamped(&sources)?;
    let plan = encode(&loaded.config, &stamps);
    // A cache: failing to write it costs the next start another compile,
    // nothing else.
    let stored = if store {
        self::store(&sources, &stamps, &plan).ok().flatten()
    } else {
        None
    };
    Ok((plan, stored))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{glob_match, parse_str};
    use std::os::unix::fs::PermissionsExt;

    fn config(text: &str) -> Config {
        parse_str(text, Path::new("t.toml")).unwrap()
    }

    fn words(cmd: &CmdRef<'_>) -> Vec<String> {
        cmd.words()
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
                    .collect()
            })
            .collect()
    }

    const FULL: &str = "[aedebug]\ndebugger = \"'/opt/my dbg' -p %ld -e %ld -c \\\".jdinfo 0x%p\\\" 100%%\"\nauto = 0\nexclude = [\"Xorg\", \"b?d*\"]\ntimeout = 3\n\
        [aedebug.i386]\ndebugger = \"dbg32 %ld\"\n\
        [localdumps]\nfolder = \"/var/d\"\ntype = \"mini-plus\"\ndumper = \"/usr/bin/coroner\"\ntimeout = 7\n\
        [localdumps.apps.\"big app\"]\nfolder = \"/big\"\ntype = \"full\"\n[localdumps.apps.small]\ncount = 2\n";

    /// For every executable name and both widths, the plan gives what
    /// `Config::effective` gives.
    fn same_as_effective(c: &Config) {
        let bytes = encode(c, &[Stamp::of(Role::System, b"x")]);
        let v = PlanView::parse(&bytes).expect("parses");
        for exe in [
            "Xorg", "bad", "bed-x", "bd", "big app", "small", "other", "b\u{e9}d",
        ] {
            for is_32bit in [false, true] {
                let eff = c.effective(exe, is_32bit);
                let ae = v.aedebug_for(is_32bit);
                let want: Option<Vec<String>> = eff.debugger.map(|t| {
                    t.words()
                        .iter()
                        .map(|w| {
                            w.iter()
                                .map(|p| match p {
                                    Piece::Lit(s) => s.clone(),
                                    Piece::Pid => "<pid>".into(),
                                    Piece::Event => "<event>".into(),
                                    Piece::JitAddr => "<addr>".into(),
                                })
                                .collect()
                        })
                        .collect()
                });
                assert_eq!(ae.debugger.as_ref().map(words), want, "{exe} {is_32bit}");
                assert_eq!(ae.auto, eff.auto);
                assert_eq!(ae.excluded(exe.as_bytes()), eff.excluded, "{exe}");
                assert_eq!(ae.timeout_ms, millis(eff.timeout));
                assert_eq!(
                    ae.debugger.and_then(|d| d.program()),
                    eff.debugger.and_then(|t| t.program()).map(str::as_bytes)
                );
                match (&v.localdumps, &eff.localdumps) {
                    (None, None) => {}
                    (Some(ld), Some(e)) => {
                        let (folder, level) = ld.for_exe(exe.as_bytes());
                        assert_eq!(folder, e.folder.as_os_str().as_bytes(), "{exe}");
                        assert_eq!(level, e.level, "{exe}");
                        assert_eq!(ld.timeout_ms, millis(e.timeout));
                        assert_eq!(ld.dumper, e.dumper.map(|d| d.as_os_str().as_bytes()));
                    }
                    other => panic!("{other:?}"),
                }
            }
        }
    }

    #[test]
    fn a_plan_says_what_the_configuration_says() {
        same_as_effective(&config(FULL));
        same_as_effective(&config(""));
        same_as_effective(&config("[aedebug]\ndebugger = \"\"\n[localdumps]\n"));
        same_as_effective(&config(
            "[aedebug]\ndebugger = \"x %ld\"\n[aedebug.i386]\nauto = 0\n",
        ));
    }

    #[test]
    fn stamps_name_the_files_exactly() {
        let a = Stamp::of(Role::System, b"[aedebug]\n");
        let b = Stamp::of(Role::User, b"[aedebug]\nauto = 0\n");
        let bytes = encode(&Config::default(), &[a, b]);
        let v = PlanView::parse(&bytes).unwrap();
        assert_eq!(v.stamps().collect::<Vec<_>>(), [a, b]);
        assert!(v.compiled_from(&[a, b]));
        assert!(!v.compiled_from(&[a]));
        assert!(!v.compiled_from(&[b, a]));
        let edited = Stamp::of(Role::User, b"[aedebug]\nauto = 1\n");
        assert_eq!(edited.size, b.size);
        assert!(!v.compiled_from(&[a, edited]), "same size, other bytes");
    }

    /// STYLE 12: a plan is outside input; every truncation and every single
    /// corrupted byte is refused or read without a panic.
    #[test]
    fn damaged_plans_never_panic() {
        let bytes = encode(&config(FULL), &[Stamp::of(Role::User, b"x")]);
        for n in 0..bytes.len() {
            assert!(PlanView::parse(&bytes[..n]).is_none(), "truncated at {n}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(PlanView::parse(&longer).is_none());
        for i in 0..bytes.len() {
            for x in [0x01u8, 0x80, 0xff] {
                let mut b = bytes.clone();
                b[i] ^= x;
                if let Some(v) = PlanView::parse(&b) {
                    // Whatever it says, reading it all is safe.
                    for ae in [v.aedebug_for(false), v.aedebug_for(true)] {
                        if let Some(d) = ae.debugger {
                            let _ = words(&d);
                            let _ = d.program();
                        }
                        let _ = ae.excluded(b"Xorg");
                    }
                    if let Some(ld) = v.localdumps {
                        let _ = ld.for_exe(b"big app");
                    }
                    let _ = v.stamps().count();
                }
            }
        }
        let mut wrong = bytes.clone();
        wrong[8] = 2;
        assert!(PlanView::parse(&wrong).is_none(), "another version");
    }

    #[test]
    fn runtime_pieces_only_where_admitted() {
        let mut s = Vec::new();
        put_cmd_header(&mut s, 2);
        put_lit_word(&mut s, b"/bin/coroner");
        put_word_header(&mut s, 2);
        put_piece(&mut s, PieceRef::Lit(b"--jit-outcome="));
        put_piece(&mut s, PieceRef::Outcome);
        assert!(CmdRef::parse(&s, false).is_none());
        let (cmd, rest) = CmdRef::parse(&s, true).unwrap();
        assert!(rest.is_empty());
        assert_eq!(words(&cmd), ["/bin/coroner", "--jit-outcome=<outcome>"]);
        assert_eq!(cmd.program(), Some(&b"/bin/coroner"[..]));
    }

    #[test]
    fn lossy_matching_is_glob_match_on_the_lossy_name() {
        let names: [&[u8]; 9] = [
            b"bad",
            b"bd",
            b"b\xe9d",
            b"b\xc3\xa9d",
            b"b\xf0\x9f\x98d",
            b"\xff\xfe",
            b"",
            b"Xorg",
            b"a*b",
        ];
        let patterns = [
            "bad",
            "b?d",
            "b*d",
            "*",
            "?",
            "??",
            "\u{fffd}",
            "b\u{fffd}d",
            "*\u{fffd}*",
            "X*g",
            "a*b",
            "",
            "*?*?",
            "b?*",
        ];
        for n in names {
            let lossy = String::from_utf8_lossy(n);
            for p in patterns {
                assert_eq!(
                    glob_match_lossy(p, n),
                    glob_match(p, &lossy),
                    "{p:?} {lossy:?}"
                );
                assert_eq!(lossy_eq(p, n), p == lossy, "{p:?} {lossy:?}");
            }
        }
    }

    #[test]
    fn refresh_writes_a_plan_beside_the_most_specific_file() {
        let dir = tempfile::tempdir().unwrap();
        let uid = fs::metadata(dir.path()).unwrap().uid();
        let sys = dir.path().join("sys.toml");
        let user = dir.path().join("user.toml");
        fs::write(&sys, "[aedebug]\ndebugger = \"sysdbg %ld\"\n").unwrap();
        fs::set_permissions(&sys, fs::Permissions::from_mode(0o640)).unwrap();
        let mut sources = Sources::system_only(Some(&sys), uid);
        sources.user = Some(user.clone());
        // No user file: beside the system file, stamped by it alone.
        let p = refresh(&sources).unwrap().unwrap();
        assert_eq!(p, dir.path().join("sys.toml.plan"));
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o640
        );
        let bytes = fs::read(&p).unwrap();
        let v = PlanView::parse(&bytes).unwrap();
        let sys_text = fs::read(&sys).unwrap();
        assert!(v.compiled_from(&[Stamp::of(Role::System, &sys_text)]));
        // A user file: beside it, stamped by both.
        fs::write(&user, "[aedebug]\nauto = 0\n").unwrap();
        let p = refresh(&sources).unwrap().unwrap();
        assert_eq!(p, dir.path().join("user.toml.plan"));
        let bytes = fs::read(&p).unwrap();
        let v = PlanView::parse(&bytes).unwrap();
        assert!(v.compiled_from(&[
            Stamp::of(Role::System, &sys_text),
            Stamp::of(Role::User, b"[aedebug]\nauto = 0\n")
        ]));
        assert!(!v.aedebug.auto);
        // A file ignored with a warning (group-writable, or not owned by the
        // trusted uid): no plan, the full load must keep judging it.
        fs::set_permissions(&sys, fs::Permissions::from_mode(0o666)).unwrap();
        assert_eq!(refresh(&sources).unwrap(), None);
        fs::set_permissions(&sys, fs::Permissions::from_mode(0o644)).unwrap();
        let mut other = Sources::system_only(Some(&sys), uid.wrapping_add(1));
        other.user = None;
        assert_eq!(refresh(&other).unwrap(), None);
        // Nothing there at all: nothing to cache.
        let none = Sources::system_only(Some(&dir.path().join("absent.toml")), uid);
        assert_eq!(refresh(&none).unwrap(), None);
        // A bad file is the load's error.
        let bad = dir.path().join("bad.toml");
        fs::write(&bad, "[aedebug]\nbogus = 1\n").unwrap();
        let mut over = Sources::system_only(None, uid);
        over.env_override = Some(bad);
        assert!(refresh(&over).is_err());
    }
}
