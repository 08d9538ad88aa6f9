//! The store's one error type. Owns the wording of every failure of the
//! report store; must not print or log anything itself. Names read from the
//! store may be hostile, so they are escaped before they reach a message.

use std::path::PathBuf;

use crate::model::ReportId;
use crate::text::escape;

/// Every way a store operation can fail. Each variant names the input (the
/// folder or database path, the report id, the file name) it concerns.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The SQLite database could not be opened or prepared for use.
    #[error("cannot open the report database {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// The database was written by a newer coroner than this one.
    #[error(
        "the report database {} has schema version {found}; this coroner knows versions up to {known}",
        path.display()
    )]
    Schema {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    /// A statement failed; `what` says which operation (and on which id).
    #[error("report database: {what}")]
    Sql {
        what: String,
        #[source]
        source: rusqlite::Error,
    },
    /// A dump file name that is not a plain name inside the folder.
    #[error("bad dump file name \"{}\": {why}", escape(name))]
    BadName { name: String, why: &'static str },
    /// The dump folder is unusable (a symlink, not a directory).
    #[error("dump folder {}: {what}", path.display())]
    Folder { path: PathBuf, what: String },
    /// A file-system call on `path` failed.
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// No report with this id.
    #[error("no report {id}")]
    NoSuchReport { id: ReportId },
    /// A stored row that this coroner cannot decode (damaged or tampered).
    #[error("report {id} is damaged: {what}")]
    Corrupt { id: ReportId, what: String },
}

impl StoreError {
    /// Wrap a rusqlite error with the operation it failed in.
    pub(crate) fn sql(what: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> StoreError {
        let what = what.into();
        move |source| StoreError::Sql { what, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_name_message_is_escaped_and_names_the_input() {
        let e = StoreError::BadName {
            name: "a/\nb".into(),
            why: "contains '/'",
        };
        let msg = e.to_string();
        assert_eq!(msg, "bad dump file name \"a/\\x0ab\": contains '/'");
        assert!(!msg.contains('\n'));
    }

    #[test]
    fn schema_message_names_both_versions() {
        let e = StoreError::Schema {
            path: PathBuf::from("x/reports.db"),
            found: 9,
            known: 1,
        };
        let msg = e.to_string();
        assert!(msg.contains("x/reports.db") && msg.contains('9') && msg.contains('1'));
    }
}
