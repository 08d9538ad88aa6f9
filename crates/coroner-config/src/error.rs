//! The crate's error types: [`ConfigError`] for everything that touches a
//! file, [`TemplateError`] for a debugger command line on its own.
//!
//! Every variant names the file (and, for file content, the 1-based line and
//! column) or the key it concerns, so a message is actionable without
//! context. Nothing in this crate panics on bad input; it returns one of
//! these.

use std::io;
use std::path::PathBuf;

/// What is wrong with a `debugger` command-line template. Columns are
/// 1-based character positions inside the template string itself;
/// [`ConfigError::Template`] adds the position in the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A quote opened at `column` is never closed (shell-style splitting).
    #[error("column {column}: unterminated {quote} quote")]
    UnterminatedQuote { column: usize, quote: char },
    /// A backslash at `column` is the last character.
    #[error("column {column}: backslash at the end of the command line")]
    TrailingBackslash { column: usize },
    /// A `%` sequence other than `%ld`, `%p` or `%%`.
    #[error(
        "column {column}: unsupported conversion {found:?} (only %ld for the pid, %ld for the event, %p for the JIT block address and %% are allowed)"
    )]
    UnsupportedConversion { column: usize, found: String },
    /// A conversion that cannot take its argument: the three arguments are
    /// consumed positionally (pid, event, block), so the only valid
    /// sequences are none, `%ld`, `%ld %ld` and `%ld %ld %p`.
    #[error(
        "column {column}: {found} here would receive the {argument}; the arguments are pid (%ld), event (%ld), JIT block (%p), consumed in that order"
    )]
    OutOfOrder {
        column: usize,
        found: &'static str,
        argument: &'static str,
    },
    /// The template holds a NUL character, which no argv word can carry.
    #[error("column {column}: NUL character")]
    Nul { column: usize },
}

impl TemplateError {
    /// The 1-based character column inside the template string.
    pub fn column(&self) -> usize {
        match self {
            TemplateError::UnterminatedQuote { column, .. }
            | TemplateError::TrailingBackslash { column }
            | TemplateError::UnsupportedConversion { column, .. }
            | TemplateError::OutOfOrder { column, .. }
            | TemplateError::Nul { column } => *column,
        }
    }
}

/// Errors from loading, validating, editing and installing configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read (other than "does not exist" where a missing
    /// file is allowed).
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A file could not be written, renamed, created or removed.
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// TOML syntax error, unknown key, or a value of the wrong type.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// A well-typed value that is not acceptable (negative timeout, relative
    /// folder, unknown dump type, ...).
    #[error("{}:{line}:{column}: {key}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        key: String,
        message: String,
    },
    /// A bad `debugger` template. `line`/`column` point at the offending
    /// character in the file; `source` carries the column inside the value.
    // The template error is the source (printed by `{:#}` chains), not
    // repeated in this message.
    #[error("{}:{line}:{column}: {key}: bad debugger template", path.display())]
    Template {
        path: PathBuf,
        line: usize,
        column: usize,
        key: String,
        #[source]
        source: TemplateError,
    },
    /// `set_key` was given a key that is not a valid dotted TOML key or that
    /// walks through a non-table.
    #[error("bad key {key:?}: {message}")]
    BadKey { key: String, message: String },
    /// The sidecar backup file written by an installer is unreadable.
    #[error("backup file {}: {message}", path.display())]
    Backup { path: PathBuf, message: String },
    /// An installer argument cannot be used (non-UTF-8 path, a NUL byte).
    #[error("{what} {}: {message}", path.display())]
    BadPath {
        what: &'static str,
        path: PathBuf,
        message: String,
    },
    /// An installer argument is not acceptable (dump level, relative folder).
    #[error("{what}: {message}")]
    BadArgument { what: &'static str, message: String },
    /// `/etc/ld.so.preload` editing refused (relative, missing or untrusted
    /// library path).
    #[error("{}: {message}", path.display())]
    Preload { path: PathBuf, message: String },
}
