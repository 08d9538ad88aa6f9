//! coroner-store: the report queue of a dump folder, Windows Error
//! Reporting's queue for Linux. One SQLite database per folder
//! (`<folder>/reports.db`); the dump files are plain files in the same
//! folder, referenced by file name only. Written by the kernel-tier helper
//! and by the runtime's dumper, read by `coroner reports` and the analyser.
//!
//! Owns: the schema and its migrations, report rows, the per-executable and
//! global rate limits (checked before any dump is written), retention (count
//! per executable, size quota, free-space floor) and the escaping of every
//! string it prints. Must not: write dump contents, interpret a stored
//! string (everything read back may be hostile and is stored as given),
//! follow a symlink, or touch any file outside its folder.

mod error;
mod gc;
mod model;
mod rate;
mod schema;
mod store;
pub mod text;

#[cfg(test)]
mod test_support;

pub use error::StoreError;
pub use gc::free_space;
pub use model::{
    check_dump_name, Admission, BucketSummary, DumpFile, Filter, GcOutcome, JitOutcome, NewReport,
    RateLimits, Removed, Report, ReportId, Retention, Tier,
};
pub use schema::SCHEMA_VERSION;
pub use store::{Store, DB_NAME};
