//! The database schema and its migrations. Owns every `CREATE` statement
//! and the `meta.schema_version` row. Must not touch report rows: a
//! migration that needs to rewrite data is a new step in [`MIGRATIONS`].

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use crate::error::StoreError;

/// Migration steps, applied in order; step `i` takes the schema from
/// version `i` to version `i + 1`. Append only: never edit a released step.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: reports, their dump files, rate-limit state.
    "
    CREATE TABLE reports (
        id                INTEGER PRIMARY KEY AUTOINCREMENT,
        time              INTEGER NOT NULL,
        time_nsec         INTEGER NOT NULL,
        tier              TEXT    NOT NULL,
        host              TEXT    NOT NULL,
        boot_id           TEXT    NOT NULL,
        exe               TEXT    NOT NULL,
        exe_base          TEXT    NOT NULL,
        comm              TEXT    NOT NULL,
        cmdline           TEXT    NOT NULL,  -- JSON array of strings
        cwd               TEXT,
        pid               INTEGER NOT NULL,
        tid               INTEGER NOT NULL,
        start_time        INTEGER NOT NULL,  -- u64 stored as its i64 bit pattern
        uid               INTEGER NOT NULL,
        gid               INTEGER NOT NULL,
        signal            INTEGER NOT NULL,
        si_code           INTEGER NOT NULL,
        fault_addr        INTEGER,           -- u64 stored as its i64 bit pattern
        cgroup            TEXT,
        unit              TEXT,
        container         TEXT,
        dumpable          INTEGER,
        sensitive         INTEGER NOT NULL,
        jit               TEXT    NOT NULL,
        reported          INTEGER NOT NULL,
        signature         TEXT,
        bucket            TEXT,
        analysis_json     TEXT,
        truncated         INTEGER NOT NULL,
        suppressed_before INTEGER NOT NULL,
        notes             TEXT    NOT NULL   -- JSON array of strings
    );
    CREATE INDEX reports_time ON reports(time, time_nsec, id);
    CREATE INDEX reports_exe ON reports(exe);
    CREATE INDEX reports_exe_base ON reports(exe_base);
    CREATE INDEX reports_bucket ON reports(bucket);
    CREATE INDEX reports_process ON reports(boot_id, pid, start_time);
    CREATE TABLE dump_files (
        report_id INTEGER NOT NULL REFERENCES reports(id) ON DELETE CASCADE,
        seq       INTEGER NOT NULL,
        name      TEXT    NOT NULL,
        format    TEXT    NOT NULL,
        level     TEXT,
        bytes     INTEGER NOT NULL,
        truncated INTEGER NOT NULL,
        PRIMARY KEY (report_id, seq)
    );
    CREATE INDEX dump_files_name ON dump_files(name);
    CREATE TABLE rate_exe (
        exe          TEXT PRIMARY KEY,
        window_start INTEGER NOT NULL,
        window_count INTEGER NOT NULL,
        suppressed   INTEGER NOT NULL
    );
    CREATE TABLE rate_global (
        id           INTEGER PRIMARY KEY CHECK (id = 0),
        window_start INTEGER NOT NULL,
        window_count INTEGER NOT NULL
    );
    ",
];

/// The schema version this build writes and understands.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Bring the database at `path` (already open as `conn`) to
/// [`SCHEMA_VERSION`] in one immediate transaction, so two helpers opening
/// a fresh folder at once do not both migrate. Refuses a newer schema.
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let open_err = |source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    };
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(open_err)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);",
    )
    .map_err(open_err)?;
    let found: i64 = tx
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(open_err)?
        .unwrap_or(0);
    if !(0..=SCHEMA_VERSION).contains(&found) {
        return Err(StoreError::Schema {
            path: path.to_path_buf(),
            found,
            known: SCHEMA_VERSION,
        });
    }
    if found == SCHEMA_VERSION {
        return Ok(()); // the transaction rolls back: nothing was changed
    }
    for step in &MIGRATIONS[found as usize..] {
        tx.execute_batch(step).map_err(open_err)?;
    }
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [SCHEMA_VERSION],
    )
    .map_err(open_err)?;
    tx.commit().map_err(open_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(conn: &Connection) -> i64 {
        conn.query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    }

    #[test]
    fn fresh_database_gets_every_step_and_second_run_is_a_no_op() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn, Path::new("mem")).unwrap();
        assert_eq!(version(&conn), SCHEMA_VERSION);
        migrate(&mut conn, Path::new("mem")).unwrap();
        assert_eq!(version(&conn), SCHEMA_VERSION);
        let tables: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'
                 AND name IN ('reports', 'dump_files', 'rate_exe', 'rate_global', 'meta')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 5);
    }

    #[test]
    fn newer_and_negative_versions_are_refused() {
        for bad in [SCHEMA_VERSION + 1, -1] {
            let mut conn = Connection::open_in_memory().unwrap();
            conn.execute_batch("CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);")
                .unwrap();
            conn.execute("INSERT INTO meta VALUES ('schema_version', ?1)", [bad])
                .unwrap();
            match migrate(&mut conn, Path::new("x.db")) {
                Err(StoreError::Schema { found, known, .. }) => {
                    assert_eq!((found, known), (bad, SCHEMA_VERSION))
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
