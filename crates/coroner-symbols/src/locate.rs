//! Finding the files for a module: the code file (if its build id matches
//! the dump's), a separate debug file by build id, or by `.gnu_debuglink`.
//!
//! A file that does not match is refused and the refusal recorded, never
//! silently used: symbols from the wrong build are worse than none.

use crate::elf::{crc32, hex, read_facts, ElfFacts};
use crate::SymbolError;
use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Where to look for files.
#[derive(Clone, Debug)]
pub struct SymbolOptions {
    /// Debug roots, searched in order: `<dir>/.build-id/xx/yyyy.debug` and
    /// `<dir>/<code file dir>/<debuglink name>`.
    pub debug_dirs: Vec<PathBuf>,
    /// Extra directories holding copies of binaries (by base name), for
    /// dumps from another machine. Only files whose build id matches are used.
    pub binary_dirs: Vec<PathBuf>,
    /// The crashed process's root directory when it is not ours (a
    /// container's, reached through `/proc/PID/root`): absolute code paths
    /// are looked up under it first, then as they are.
    pub sysroot: Option<PathBuf>,
}

impl Default for SymbolOptions {
    /// `/usr/lib/debug` only.
    fn default() -> Self {
        SymbolOptions {
            debug_dirs: vec![PathBuf::from("/usr/lib/debug")],
            binary_dirs: Vec::new(),
            sysroot: None,
        }
    }
}

/// Why a file on disk was not used for a module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The file's build id differs from (or is missing while) the dump's.
    BuildIdMismatch {
        path: PathBuf,
        /// `None` when the file has no build-id note.
        file_build_id: Option<String>,
        dump_build_id: String,
    },
    /// A `.gnu_debuglink` target whose CRC-32 differs from the link's.
    DebuglinkCrc {
        path: PathBuf,
        expected: u32,
        found: u32,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::BuildIdMismatch {
                path,
                file_build_id,
                dump_build_id,
            } => write!(
                f,
                "{}: file on disk has build-id {}, dump has {} — not used",
                path.display(),
                file_build_id.as_deref().unwrap_or("(none)"),
                dump_build_id
            ),
            Refusal::DebuglinkCrc {
                path,
                expected,
                found,
            } => write!(
                f,
                "{}: .gnu_debuglink CRC is {expected:08x}, file has {found:08x} — not used",
                path.display()
            ),
        }
    }
}

/// An ELF file read into memory with its facts.
pub(crate) struct ElfImage {
    pub path: PathBuf,
    pub data: Vec<u8>,
    pub facts: ElfFacts,
}

pub(crate) fn open_image(path: &Path) -> Result<ElfImage, SymbolError> {
    let data = std::fs::read(path).map_err(|source| SymbolError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let facts = read_facts(&data).map_err(|source| SymbolError::Parse {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(ElfImage {
        path: path.to_path_buf(),
        data,
        facts,
    })
}

/// Outcome of a search: the accepted files, what was refused, what failed.
#[derive(Default)]
pub(crate) struct Found {
    pub binary: Option<ElfImage>,
    pub debug: Option<ElfImage>,
    pub refusals: Vec<Refusal>,
    pub errors: Vec<String>,
}

/// `true` when `facts` may be used for a module whose dump build id is
/// `dump_id` (a dump without a build id cannot verify: accept).
fn id_matches(facts: &ElfFacts, dump_id: Option<&str>) -> bool {
    match dump_id {
        None => true,
        Some(d) => facts.build_id.as_deref().map(hex).as_deref() == Some(d),
    }
}

fn refusal_for(path: &Path, facts: &ElfFacts, dump_id: &str) -> Refusal {
    Refusal::BuildIdMismatch {
        path: path.to_path_buf(),
        file_build_id: facts.build_id.as_deref().map(hex),
        dump_build_id: dump_id.to_string(),
    }
}

/// Strip the kernel's ` (deleted)` suffix from a mapping name.
fn clean_code_path(code_file: &str) -> PathBuf {
    PathBuf::from(code_file.strip_suffix(" (deleted)").unwrap_or(code_file))
}

/// Search for the binary and a debug file of one module.
pub(crate) fn locate(opts: &SymbolOptions, code_file: &str, dump_id: Option<&str>) -> Found {
    let mut found = Found::default();
    let code_path = clean_code_path(code_file);

    // 1. The code file itself, then copies in the binary dirs.
    let mut candidates = Vec::new();
    if code_path.is_absolute() {
        if let Some(root) = &opts.sysroot {
            candidates.push(root.join(code_path.strip_prefix("/").unwrap_or(&code_path)));
        }
        candidates.push(code_path.clone());
    }
    if let Some(name) = code_path.file_name() {
        candidates.extend(opts.binary_dirs.iter().map(|d| d.join(name)));
    }
    for cand in candidates {
        if !cand.is_file() {
            continue;
        }
        match open_image(&cand) {
            Ok(img) => {
                if id_matches(&img.facts, dump_id) {
                    found.binary = Some(img);
                    break;
                }
                if let Some(d) = dump_id {
                    found.refusals.push(refusal_for(&cand, &img.facts, d));
                }
            }
            Err(e) => found.errors.push(e.to_string()),
        }
    }

    // 2. A separate debug file by build id (the dump's, else the binary's).
    let build_id = dump_id.map(str::to_string).or_else(|| {
        found
            .binary
            .as_ref()
            .and_then(|b| b.facts.build_id.as_deref().map(hex))
    });
    if let Some(id) = build_id.filter(|id| id.len() > 2) {
        for dir in &opts.debug_dirs {
            let p = dir
                .join(".build-id")
                .join(&id[..2])
                .join(format!("{}.debug", &id[2..]));
            if !p.is_file() {
                continue;
            }
            match open_image(&p) {
                Ok(img) if id_matches(&img.facts, Some(&id)) => {
                    found.debug = Some(img);
                    break;
                }
                Ok(img) => found.refusals.push(refusal_for(&p, &img.facts, &id)),
                Err(e) => found.errors.push(e.to_string()),
            }
        }
    }

    // 3. `.gnu_debuglink` of the accepted binary.
    if found.debug.is_none() {
        let link = found
            .binary
            .as_ref()
            .and_then(|b| b.facts.debuglink.clone().map(|l| (b.path.clone(), l)));
        if let Some((bin_path, (name, crc))) = link {
            let name = OsStr::from_bytes(&name);
            let dir = bin_path.parent().unwrap_or(Path::new("/"));
            let mut cands = vec![dir.join(name), dir.join(".debug").join(name)];
            let rel = dir.strip_prefix("/").unwrap_or(dir);
            cands.extend(opts.debug_dirs.iter().map(|d| d.join(rel).join(name)));
            for cand in cands {
                if cand == bin_path || !cand.is_file() {
                    continue;
                }
                match open_image(&cand) {
                    Ok(img) => {
                        let by_id = img.facts.build_id.is_some()
                            && img.facts.build_id
                                == found.binary.as_ref().and_then(|b| b.facts.build_id.clone());
                        let sum = crc32(&img.data);
                        if by_id || sum == crc {
                            found.debug = Some(img);
                            break;
                        }
                        found.refusals.push(Refusal::DebuglinkCrc {
                            path: cand,
                            expected: crc,
                            found: sum,
                        });
                    }
                    Err(e) => found.errors.push(e.to_string()),
                }
            }
        }
    }
    found
}
