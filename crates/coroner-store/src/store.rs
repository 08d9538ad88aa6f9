//! The [`Store`] handle: opening a dump folder's database, and the report
//! rows themselves (insert, read, query, group, analyse, delete). Owns the
//! mapping between [`Report`] and SQL rows and the unlinking of dump files.
//! Must not follow a symlink, build a path from anything but the folder and
//! a checked file name, or interpret a stored string.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior};

use crate::error::StoreError;
use crate::model::{
    basename, check_dump_name, BucketSummary, DumpFile, Filter, JitOutcome, NewReport, Removed,
    Report, ReportId, Tier,
};
use crate::schema;
use crate::text::escape;

/// File name of the database inside a dump folder.
pub const DB_NAME: &str = "reports.db";

/// How long a statement waits for another writer (another helper) before
/// it gives up with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The report queue of one dump folder: `<folder>/reports.db` plus the dump
/// files beside it, referenced by name.
#[derive(Debug)]
pub struct Store {
    pub(crate) conn: Connection,
    pub(crate) folder: PathBuf,
    pub(crate) db_path: PathBuf,
}

/// Columns of `reports`, in the order [`read_row`] expects them.
const COLUMNS: &str = "id, time, time_nsec, tier, host, boot_id, exe, comm, cmdline, cwd, pid, \
     tid, start_time, uid, gid, signal, si_code, fault_addr, cgroup, unit, container, dumpable, \
     sensitive, jit, reported, signature, bucket, analysis_json, truncated, suppressed_before, notes";

/// The `WHERE` clause of [`Filter`]; parameters ?1..?6 (see [`FilterParams`]).
/// Every value is compared as data: no `LIKE`, no `GLOB`.
const FILTER_WHERE: &str = "(?1 IS NULL OR exe = ?1 OR exe_base = ?1 OR comm = ?1)
    AND (?2 IS NULL OR signal = ?2)
    AND (?3 IS NULL OR time >= ?3)
    AND (?4 IS NULL OR substr(bucket, 1, ?5) = ?4)
    AND (?6 IS NULL OR tier = ?6)";

impl Store {
    /// Open (create if missing) `<folder>/reports.db`. The folder must exist
    /// and must not be a symlink; the database file must not be a symlink
    /// either (SQLite's no-follow open). Creates or migrates the schema,
    /// refusing a database written by a newer coroner. Sets a 5 s busy
    /// timeout and WAL mode so concurrent helpers wait instead of failing.
    pub fn open(folder: &Path) -> Result<Store, StoreError> {
        let meta = fs::symlink_metadata(folder).map_err(|source| StoreError::Io {
            path: folder.to_path_buf(),
            source,
        })?;
        if meta.file_type().is_symlink() {
            return Err(StoreError::Folder {
                path: folder.to_path_buf(),
                what: "is a symbolic link; refusing to follow it".into(),
            });
        }
        if !meta.is_dir() {
            return Err(StoreError::Folder {
                path: folder.to_path_buf(),
                what: "is not a directory".into(),
            });
        }
        let db_path = folder.join(DB_NAME);
        let open_err = |source| StoreError::Open {
            path: db_path.clone(),
            source,
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NOFOLLOW
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(&db_path, flags).map_err(open_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        // WAL lets readers and one writer work at once. A file system that
        // cannot do it (some network ones) keeps the rollback journal: the
        // busy timeout still serialises writers, just with less overlap.
        let _mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(open_err)?;
        schema::migrate(&mut conn, &db_path)?;
        Ok(Store {
            conn,
            folder: folder.to_path_buf(),
            db_path,
        })
    }

    /// The dump folder this store lives in.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// The database file (`<folder>/reports.db`).
    pub fn db_path(&self) -> &Path {
        &self.db_path
    }

    /// Record a report. Every dump file name is checked first
    /// ([`check_dump_name`]); nothing is written if one is refused.
    pub fn insert(&mut self, r: &NewReport) -> Result<ReportId, StoreError> {
        for d in &r.dumps {
            check_dump_name(&d.name)?;
        }
        let what = || format!("insert report of {}", escape(&r.exe));
        let cmdline = json_list(&r.cmdline);
        let notes = json_list(&r.notes);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::sql(what()))?;
        tx.execute(
            "INSERT INTO reports (time, time_nsec, tier, host, boot_id, exe, exe_base, comm,
                cmdline, cwd, pid, tid, start_time, uid, gid, signal, si_code, fault_addr,
                cgroup, unit, container, dumpable, sensitive, jit, reported, signature, bucket,
                analysis_json, truncated, suppressed_before, notes)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31)",
            params![
                r.time,
                r.time_nsec,
                r.tier.as_str(),
                r.host,
                r.boot_id,
                r.exe,
                basename(&r.exe),
                r.comm,
                cmdline,
                r.cwd,
                r.pid,
                r.tid,
                r.start_time as i64,
                r.uid,
                r.gid,
                r.signal,
                r.si_code,
                r.fault_addr.map(|a| a as i64),
                r.cgroup,
                r.unit,
                r.container,
                r.dumpable,
                r.sensitive,
                r.jit.as_str(),
                r.reported,
                r.signature,
                r.bucket,
                r.analysis_json,
                r.truncated,
                r.suppressed_before as i64,
                notes,
            ],
        )
        .map_err(StoreError::sql(what()))?;
        let id = tx.last_insert_rowid();
        for (seq, d) in r.dumps.iter().enumerate() {
            tx.execute(
                "INSERT INTO dump_files (report_id, seq, name, format, level, bytes, truncated)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    id,
                    seq as i64,
                    d.name,
                    d.format,
                    d.level,
                    d.bytes as i64,
                    d.truncated
                ],
            )
            .map_err(StoreError::sql(what()))?;
        }
        tx.commit().map_err(StoreError::sql(what()))?;
        Ok(ReportId(id))
    }

    /// The report `id`, or `None` when there is none.
    pub fn get(&self, id: ReportId) -> Result<Option<Report>, StoreError> {
        let what = || format!("read report {id}");
        let raw = self
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM reports WHERE id = ?1"),
                [id.0],
                read_row,
            )
            .optional()
            .map_err(StoreError::sql(what()))?;
        raw.map(|raw| self.finish(raw)).transpose()
    }

    /// Reports matching `f`, newest first.
    pub fn list(&self, f: &Filter) -> Result<Vec<Report>, StoreError> {
        let what = "list reports";
        let p = FilterParams::new(f);
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM reports WHERE {FILTER_WHERE}
                 ORDER BY time DESC, time_nsec DESC, id DESC LIMIT ?7"
            ))
            .map_err(StoreError::sql(what))?;
        let raws = stmt
            .query_map(p.params(), read_row)
            .map_err(StoreError::sql(what))?
            .collect::<Result<Vec<RawRow>, _>>()
            .map_err(StoreError::sql(what))?;
        raws.into_iter().map(|raw| self.finish(raw)).collect()
    }

    /// Reports matching `f` grouped by bucket (reports not analysed yet are
    /// grouped by executable), most frequent first. Signature and exe are
    /// those of the most recently stored report of each group.
    pub fn buckets(&self, f: &Filter) -> Result<Vec<BucketSummary>, StoreError> {
        let what = "group reports by bucket";
        let p = FilterParams::new(f);
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT r.bucket, r.signature, r.exe, g.n, g.first, g.last, g.newest
                 FROM (SELECT COUNT(*) AS n, MIN(time) AS first, MAX(time) AS last,
                              MAX(id) AS newest
                       FROM reports WHERE {FILTER_WHERE}
                       GROUP BY bucket IS NULL, COALESCE(bucket, exe)) AS g
                 JOIN reports AS r ON r.id = g.newest
                 ORDER BY g.n DESC, g.last DESC, g.newest DESC LIMIT ?7"
            ))
            .map_err(StoreError::sql(what))?;
        let rows = stmt
            .query_map(p.params(), |r| {
                Ok(BucketSummary {
                    bucket: r.get(0)?,
                    signature: r.get(1)?,
                    exe: r.get(2)?,
                    count: r.get::<_, i64>(3)? as u64,
                    first_time: r.get(4)?,
                    last_time: r.get(5)?,
                    newest: ReportId(r.get(6)?),
                })
            })
            .map_err(StoreError::sql(what))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(StoreError::sql(what))
    }

    /// Store the analyser's verdict for report `id`.
    pub fn set_analysis(
        &mut self,
        id: ReportId,
        signature: &str,
        bucket: &str,
        analysis_json: &str,
    ) -> Result<(), StoreError> {
        let n = self
            .conn
            .execute(
                "UPDATE reports SET signature = ?2, bucket = ?3, analysis_json = ?4
                 WHERE id = ?1",
                params![id.0, signature, bucket, analysis_json],
            )
            .map_err(StoreError::sql(format!("store analysis of report {id}")))?;
        if n == 0 {
            return Err(StoreError::NoSuchReport { id });
        }
        Ok(())
    }

    /// Delete report `id` and its dump files. Files are unlinked by name
    /// inside the folder and never followed: a symlink is unlinked itself, a
    /// directory is left in place, a name that fails [`check_dump_name`]
    /// (a tampered row) or that another report still lists is left alone;
    /// each of those is reported in [`Removed::problems`]. A file already
    /// gone is not a problem. The row is deleted in every case.
    pub fn delete(&mut self, id: ReportId) -> Result<Removed, StoreError> {
        let what = || format!("delete report {id}");
        let exists: bool = self
            .conn
            .query_row(
                "SELECT EXISTS(SELECT 1 FROM reports WHERE id = ?1)",
                [id.0],
                |r| r.get(0),
            )
            .map_err(StoreError::sql(what()))?;
        if !exists {
            return Err(StoreError::NoSuchReport { id });
        }
        let mut removed = Removed {
            id: Some(id),
            ..Removed::default()
        };
        for name in self.dump_names(id)? {
            if let Err(e) = check_dump_name(&name) {
                removed.problems.push(format!("report {id}: left {e}"));
                continue;
            }
            let shared: bool = self
                .conn
                .query_row(
                    "SELECT EXISTS(SELECT 1 FROM dump_files WHERE name = ?1 AND report_id <> ?2)",
                    params![name, id.0],
                    |r| r.get(0),
                )
                .map_err(StoreError::sql(what()))?;
            if shared {
                removed.problems.push(format!(
                    "report {id}: left {}: another report lists it too",
                    escape(&name)
                ));
                continue;
            }
            match self.unlink(&name) {
                Ok(Some(bytes)) => {
                    removed.bytes += bytes;
                    removed.files.push(name);
                }
                Ok(None) => {}
                Err(problem) => removed.problems.push(format!("report {id}: {problem}")),
            }
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::sql(what()))?;
        tx.execute("DELETE FROM dump_files WHERE report_id = ?1", [id.0])
            .map_err(StoreError::sql(what()))?;
        tx.execute("DELETE FROM reports WHERE id = ?1", [id.0])
            .map_err(StoreError::sql(what()))?;
        tx.commit().map_err(StoreError::sql(what()))?;
        Ok(removed)
    }

    /// Whether the runtime tier already reported this process (same boot,
    /// pid and start time), so the kernel tier does not report it twice.
    pub fn was_reported(
        &self,
        boot_id: &str,
        pid: u32,
        start_time: u64,
    ) -> Result<bool, StoreError> {
        self.conn
            .query_row(
                "SELECT EXISTS(SELECT 1 FROM reports WHERE boot_id = ?1 AND pid = ?2
                   AND start_time = ?3 AND tier = ?4)",
                params![boot_id, pid, start_time as i64, Tier::Runtime.as_str()],
                |r| r.get(0),
            )
            .map_err(StoreError::sql(format!("look up process {pid}")))
    }

    /// Dump file names of report `id`, in stored order.
    pub(crate) fn dump_names(&self, id: ReportId) -> Result<Vec<String>, StoreError> {
        let what = || format!("read dump files of report {id}");
        let mut stmt = self
            .conn
            .prepare_cached("SELECT name FROM dump_files WHERE report_id = ?1 ORDER BY seq")
            .map_err(StoreError::sql(what()))?;
        let names = stmt
            .query_map([id.0], |r| r.get(0))
            .map_err(StoreError::sql(what()))?
            .collect::<Result<Vec<String>, _>>()
            .map_err(StoreError::sql(what()));
        names
    }

    /// Size of the dump file `name` if it is a regular file in the folder
    /// (not followed if it is a symlink); 0 otherwise.
    pub(crate) fn file_size(&self, name: &str) -> u64 {
        if check_dump_name(name).is_err() {
            return 0;
        }
        match fs::symlink_metadata(self.folder.join(name)) {
            Ok(m) if m.is_file() => m.len(),
            _ => 0,
        }
    }

    /// Unlink `name` inside the folder without following it. `Ok(Some(n))`:
    /// removed, `n` bytes if it was a regular file. `Ok(None)`: not there.
    /// `Err`: left in place, with the reason (printable).
    fn unlink(&self, name: &str) -> Result<Option<u64>, String> {
        let path = self.folder.join(name);
        let shown = escape(name);
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("left {shown}: {e}")),
        };
        if meta.is_dir() {
            return Err(format!("left {shown}: is a directory"));
        }
        let bytes = if meta.is_file() { meta.len() } else { 0 };
        // unlink(2) removes a symlink itself and fails on a directory that
        // replaced the file since the lstat: it never follows anything.
        match fs::remove_file(&path) {
            Ok(()) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("left {shown}: {e}")),
        }
    }

    /// Turn a raw row into a [`Report`]: decode the enums and JSON, load
    /// the dump files.
    fn finish(&self, raw: RawRow) -> Result<Report, StoreError> {
        let id = ReportId(raw.id);
        let corrupt = |what: String| StoreError::Corrupt { id, what };
        let tier = Tier::parse(&raw.tier)
            .ok_or_else(|| corrupt(format!("unknown tier \"{}\"", escape(&raw.tier))))?;
        let jit = JitOutcome::parse(&raw.jit)
            .ok_or_else(|| corrupt(format!("unknown JIT outcome \"{}\"", escape(&raw.jit))))?;
        let cmdline: Vec<String> = serde_json::from_str(&raw.cmdline)
            .map_err(|e| corrupt(format!("command line is not a JSON list: {e}")))?;
        let notes: Vec<String> = serde_json::from_str(&raw.notes)
            .map_err(|e| corrupt(format!("notes are not a JSON list: {e}")))?;
        let dumps = self.dumps_of(id)?;
        Ok(Report {
            id,
            report: NewReport {
                time: raw.time,
                time_nsec: raw.time_nsec,
                tier,
                host: raw.host,
                boot_id: raw.boot_id,
                exe: raw.exe,
                comm: raw.comm,
                cmdline,
                cwd: raw.cwd,
                pid: raw.pid,
                tid: raw.tid,
                start_time: raw.start_time as u64,
                uid: raw.uid,
                gid: raw.gid,
                signal: raw.signal,
                si_code: raw.si_code,
                fault_addr: raw.fault_addr.map(|a| a as u64),
                cgroup: raw.cgroup,
                unit: raw.unit,
                container: raw.container,
                dumpable: raw.dumpable,
                sensitive: raw.sensitive,
                jit,
                reported: raw.reported,
                signature: raw.signature,
                bucket: raw.bucket,
                analysis_json: raw.analysis_json,
                dumps,
                truncated: raw.truncated,
                suppressed_before: raw.suppressed_before as u64,
                notes,
            },
        })
    }

    fn dumps_of(&self, id: ReportId) -> Result<Vec<DumpFile>, StoreError> {
        let what = || format!("read dump files of report {id}");
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT name, format, level, bytes, truncated FROM dump_files
                 WHERE report_id = ?1 ORDER BY seq",
            )
            .map_err(StoreError::sql(what()))?;
        let dumps = stmt
            .query_map([id.0], |r| {
                Ok(DumpFile {
                    name: r.get(0)?,
                    format: r.get(1)?,
                    level: r.get(2)?,
                    bytes: r.get::<_, i64>(3)? as u64,
                    truncated: r.get(4)?,
                })
            })
            .map_err(StoreError::sql(what()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(StoreError::sql(what()));
        dumps
    }
}

/// A JSON array of strings (cannot fail for `&[String]`).
fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}

/// The bound values of [`FILTER_WHERE`] plus the limit (`?7`).
struct FilterParams<'a> {
    exe: Option<&'a str>,
    signal: Option<i32>,
    since: Option<i64>,
    bucket: Option<&'a str>,
    bucket_len: i64,
    tier: Option<&'static str>,
    /// -1 = no limit (SQLite's spelling).
    limit: i64,
}

impl<'a> FilterParams<'a> {
    fn new(f: &'a Filter) -> FilterParams<'a> {
        let bucket = f.bucket.as_deref();
        FilterParams {
            exe: f.exe.as_deref(),
            signal: f.signal,
            since: f.since,
            bucket,
            bucket_len: bucket.map_or(0, |b| b.chars().count() as i64),
            tier: f.tier.map(Tier::as_str),
            limit: f.limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX)),
        }
    }

    /// `?1`..`?7` of [`FILTER_WHERE`] and the `LIMIT`, in that order.
    fn params(&self) -> [&dyn rusqlite::ToSql; 7] {
        [
            &self.exe,
            &self.signal,
            &self.since,
            &self.bucket,
            &self.bucket_len,
            &self.tier,
            &self.limit,
        ]
    }
}

/// A `reports` row before its text columns are decoded.
struct RawRow {
    id: i64,
    time: i64,
    time_nsec: u32,
    tier: String,
    host: String,
    boot_id: String,
    exe: String,
    comm: String,
    cmdline: String,
    cwd: Option<String>,
    pid: u32,
    tid: u32,
    start_time: i64,
    uid: u32,
    gid: u32,
    signal: i32,
    si_code: i32,
    fault_addr: Option<i64>,
    cgroup: Option<String>,
    unit: Option<String>,
    container: Option<String>,
    dumpable: Option<u8>,
    sensitive: bool,
    jit: String,
    reported: bool,
    signature: Option<String>,
    bucket: Option<String>,
    analysis_json: Option<String>,
    truncated: bool,
    suppressed_before: i64,
    notes: String,
}

fn read_row(r: &Row<'_>) -> rusqlite::Result<RawRow> {
    Ok(RawRow {
        id: r.get(0)?,
        time: r.get(1)?,
        time_nsec: r.get(2)?,
        tier: r.get(3)?,
        host: r.get(4)?,
        boot_id: r.get(5)?,
        exe: r.get(6)?,
        comm: r.get(7)?,
        cmdline: r.get(8)?,
        cwd: r.get(9)?,
        pid: r.get(10)?,
        tid: r.get(11)?,
        start_time: r.get(12)?,
        uid: r.get(13)?,
        gid: r.get(14)?,
        signal: r.get(15)?,
        si_code: r.get(16)?,
        fault_addr: r.get(17)?,
        cgroup: r.get(18)?,
        unit: r.get(19)?,
        container: r.get(20)?,
        dumpable: r.get(21)?,
        sensitive: r.get(22)?,
        jit: r.get(23)?,
        reported: r.get(24)?,
        signature: r.get(25)?,
        bucket: r.get(26)?,
        analysis_json: r.get(27)?,
        truncated: r.get(28)?,
        suppressed_before: r.get(29)?,
        notes: r.get(30)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{sample, write_dumps};
    use std::os::unix::fs::symlink;

    fn open_tmp() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        (dir, s)
    }

    fn ids(rs: &[Report]) -> Vec<i64> {
        rs.iter().map(|r| r.id.0).collect()
    }

    #[test]
    fn open_twice_keeps_data_and_schema() {
        let dir = tempfile::tempdir().unwrap();
        let id = Store::open(dir.path())
            .unwrap()
            .insert(&sample("/bin/a", 10))
            .unwrap();
        let s = Store::open(dir.path()).unwrap();
        assert!(s.get(id).unwrap().is_some());
        assert_eq!(s.folder(), dir.path());
        assert_eq!(s.db_path(), dir.path().join(DB_NAME));
        let v: i64 = s
            .conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(v, schema::SCHEMA_VERSION);
        let mode: String = s
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn newer_schema_is_refused_naming_file_and_versions() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        let raw = Connection::open(dir.path().join(DB_NAME)).unwrap();
        raw.execute(
            "UPDATE meta SET value = 99 WHERE key = 'schema_version'",
            [],
        )
        .unwrap();
        drop(raw);
        let err = Store::open(dir.path()).unwrap_err();
        match &err {
            StoreError::Schema { path, found, known } => {
                assert_eq!(path, &dir.path().join(DB_NAME));
                assert_eq!((*found, *known), (99, schema::SCHEMA_VERSION));
            }
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("99"));
    }

    #[test]
    fn unusable_folders_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        fs::create_dir(&real).unwrap();
        let link = dir.path().join("link");
        symlink(&real, &link).unwrap();
        match Store::open(&link) {
            Err(StoreError::Folder { path, .. }) => assert_eq!(path, link),
            other => panic!("{other:?}"),
        }
        assert!(!real.join(DB_NAME).exists());
        let file = dir.path().join("file");
        fs::write(&file, b"x").unwrap();
        assert!(matches!(Store::open(&file), Err(StoreError::Folder { .. })));
        match Store::open(&dir.path().join("missing")) {
            Err(StoreError::Io { path, source }) => {
                assert_eq!(path, dir.path().join("missing"));
                assert_eq!(source.kind(), io::ErrorKind::NotFound);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn database_file_symlink_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, b"precious").unwrap();
        let folder = dir.path().join("dumps");
        fs::create_dir(&folder).unwrap();
        symlink(&victim, folder.join(DB_NAME)).unwrap();
        match Store::open(&folder) {
            Err(StoreError::Open { path, .. }) => assert_eq!(path, folder.join(DB_NAME)),
            other => panic!("{other:?}"),
        }
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
    }

    #[test]
    fn every_field_round_trips() {
        let (_dir, mut s) = open_tmp();
        let mut n = sample("/opt/\u{1b}[31mevil\nname", 1_700_000_000);
        n.tier = Tier::Runtime;
        n.jit = JitOutcome::TimedOut;
        n.reported = false;
        n.sensitive = true;
        n.start_time = u64::MAX;
        n.fault_addr = Some(0xffff_ffff_ff60_0000);
        n.suppressed_before = u64::MAX - 1;
        n.container = Some("pid:[4026532198]".into());
        n.dumpable = None;
        n.cwd = None;
        n.signature = Some("SIGSEGV in f".into());
        n.bucket = Some("abc123".into());
        n.analysis_json = Some("{\"v\":1}".into());
        n.truncated = true;
        n.dumps[1].truncated = true;
        n.dumps[1].bytes = u64::MAX;
        n.cmdline = vec!["a\0b".into(), "".into(), "\"quoted\"".into()];
        n.notes = vec![];
        n.pid = u32::MAX;
        n.signal = -1;
        n.si_code = i32::MIN;
        n.time_nsec = 999_999_999;
        let id = s.insert(&n).unwrap();
        let got = s.get(id).unwrap().unwrap();
        assert_eq!(got.id, id);
        assert_eq!(got.to_new(), n);
        assert!(s.get(ReportId(id.0 + 100)).unwrap().is_none());
        // And through list.
        assert_eq!(s.list(&Filter::default()).unwrap(), vec![got]);
    }

    #[test]
    fn list_is_newest_first_and_filters_match_as_data() {
        let (_dir, mut s) = open_tmp();
        let mut a = sample("/usr/bin/alpha", 100);
        a.comm = "alpha-main".into();
        a.bucket = Some("b1-x".into());
        let mut b = sample("/usr/bin/beta", 200);
        b.signal = 6;
        b.bucket = Some("b1-y".into());
        b.tier = Tier::OnDemand;
        let mut c = sample("/other/alpha", 300);
        c.bucket = Some("b%".into());
        let mut d = sample("/usr/bin/beta", 200);
        d.time_nsec = b.time_nsec + 1; // same second, later
        let ia = s.insert(&a).unwrap().0;
        let ib = s.insert(&b).unwrap().0;
        let ic = s.insert(&c).unwrap().0;
        let id = s.insert(&d).unwrap().0;
        let q = |f: Filter| ids(&s.list(&f).unwrap());
        assert_eq!(q(Filter::default()), [ic, id, ib, ia]);
        let exe = |e: &str| Filter {
            exe: Some(e.into()),
            ..Filter::default()
        };
        assert_eq!(q(exe("alpha")), [ic, ia]);
        assert_eq!(q(exe("/usr/bin/alpha")), [ia]);
        assert_eq!(q(exe("alpha-main")), [ia]);
        assert_eq!(q(exe("alp")), Vec::<i64>::new());
        assert_eq!(
            q(Filter {
                signal: Some(6),
                ..Filter::default()
            }),
            [ib]
        );
        assert_eq!(
            q(Filter {
                since: Some(200),
                ..Filter::default()
            }),
            [ic, id, ib]
        );
        let bucket = |b: &str| Filter {
            bucket: Some(b.into()),
            ..Filter::default()
        };
        assert_eq!(q(bucket("b1-")), [ib, ia]);
        assert_eq!(q(bucket("b1-x")), [ia]);
        assert_eq!(q(bucket("b%")), [ic]); // no LIKE wildcards
        assert_eq!(q(bucket("b_")), Vec::<i64>::new());
        assert_eq!(
            q(Filter {
                tier: Some(Tier::OnDemand),
                ..Filter::default()
            }),
            [ib]
        );
        assert_eq!(
            q(Filter {
                limit: Some(2),
                ..Filter::default()
            }),
            [ic, id]
        );
        assert_eq!(
            q(Filter {
                exe: Some("beta".into()),
                signal: Some(11),
                ..Filter::default()
            }),
            [id]
        );
    }

    #[test]
    fn buckets_group_and_count() {
        let (_dir, mut s) = open_tmp();
        let mut last = ReportId(0);
        for (i, t) in [10, 30, 20].into_iter().enumerate() {
            let mut n = sample(&format!("/bin/p{i}"), t);
            n.bucket = Some("bk-A".into());
            n.signature = Some(format!("sig {i}"));
            last = s.insert(&n).unwrap();
        }
        let mut n = sample("/bin/q", 50);
        n.bucket = Some("bk-B".into());
        let b = s.insert(&n).unwrap();
        let u1 = s.insert(&sample("/bin/unanalysed", 5)).unwrap();
        let u2 = s.insert(&sample("/bin/unanalysed", 6)).unwrap();
        let _u3 = s.insert(&sample("/bin/other", 7)).unwrap();
        let g = s.buckets(&Filter::default()).unwrap();
        assert_eq!(g.len(), 4, "{g:?}");
        assert_eq!(g[0].bucket.as_deref(), Some("bk-A"));
        assert_eq!(g[0].count, 3);
        assert_eq!((g[0].first_time, g[0].last_time), (10, 30));
        assert_eq!(g[0].newest, last);
        assert_eq!(g[0].signature.as_deref(), Some("sig 2"));
        assert_eq!(g[0].exe, "/bin/p2");
        assert_eq!(g[1].bucket, None);
        assert_eq!(
            (g[1].exe.as_str(), g[1].count, g[1].newest),
            ("/bin/unanalysed", 2, u2)
        );
        assert!(u1 < u2);
        // Ties on count: the most recent group first.
        assert_eq!((g[2].bucket.as_deref(), g[2].newest), (Some("bk-B"), b));
        assert_eq!(g[3].exe, "/bin/other");
        let only_a = s
            .buckets(&Filter {
                bucket: Some("bk-A".into()),
                ..Filter::default()
            })
            .unwrap();
        assert_eq!(only_a.len(), 1);
        let limited = s
            .buckets(&Filter {
                limit: Some(1),
                ..Filter::default()
            })
            .unwrap();
        assert_eq!(limited.len(), 1);
    }

    #[test]
    fn set_analysis_updates_and_names_missing_ids() {
        let (_dir, mut s) = open_tmp();
        let id = s.insert(&sample("/bin/a", 1)).unwrap();
        s.set_analysis(id, "sig", "bucket-1", "{}").unwrap();
        let r = s.get(id).unwrap().unwrap();
        assert_eq!(
            (
                r.signature.as_deref(),
                r.bucket.as_deref(),
                r.analysis_json.as_deref()
            ),
            (Some("sig"), Some("bucket-1"), Some("{}"))
        );
        match s.set_analysis(ReportId(999), "s", "b", "{}") {
            Err(StoreError::NoSuchReport { id }) => assert_eq!(id, ReportId(999)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn insert_refuses_bad_names_and_writes_nothing() {
        let (_dir, mut s) = open_tmp();
        for bad in ["../x", ".hidden", "a\0b", "..", "reports.db-wal"] {
            let mut n = sample("/bin/a", 1);
            n.dumps[1].name = bad.into();
            match s.insert(&n) {
                Err(StoreError::BadName { name, .. }) => assert_eq!(name, bad),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        assert!(s.list(&Filter::default()).unwrap().is_empty());
    }

    #[test]
    fn delete_removes_files_and_the_row() {
        let (dir, mut s) = open_tmp();
        let n = sample("/bin/a", 1);
        write_dumps(dir.path(), &n);
        let keep = sample("/bin/a", 2);
        write_dumps(dir.path(), &keep);
        let id = s.insert(&n).unwrap();
        let kept = s.insert(&keep).unwrap();
        let removed = s.delete(id).unwrap();
        assert_eq!(removed.id, Some(id));
        assert_eq!(
            removed.files,
            [n.dumps[0].name.clone(), n.dumps[1].name.clone()]
        );
        assert_eq!(removed.bytes, 300);
        assert!(removed.problems.is_empty(), "{:?}", removed.problems);
        for d in &n.dumps {
            assert!(!dir.path().join(&d.name).exists());
        }
        for d in &keep.dumps {
            assert!(dir.path().join(&d.name).exists());
        }
        assert!(s.get(id).unwrap().is_none());
        assert!(s.get(kept).unwrap().is_some());
        assert!(matches!(s.delete(id), Err(StoreError::NoSuchReport { .. })));
        let orphans: i64 = s
            .conn
            .query_row(
                "SELECT COUNT(*) FROM dump_files WHERE report_id = ?1",
                [id.0],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(orphans, 0);
    }

    #[test]
    fn delete_unlinks_a_symlink_not_its_target_and_leaves_directories() {
        let (dir, mut s) = open_tmp();
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("target");
        fs::write(&target, b"not yours").unwrap();
        let n = sample("/bin/a", 1);
        symlink(&target, dir.path().join(&n.dumps[0].name)).unwrap();
        fs::create_dir(dir.path().join(&n.dumps[1].name)).unwrap();
        let id = s.insert(&n).unwrap();
        let removed = s.delete(id).unwrap();
        assert_eq!(removed.files, [n.dumps[0].name.clone()]);
        assert_eq!(removed.bytes, 0);
        assert!(fs::symlink_metadata(dir.path().join(&n.dumps[0].name)).is_err());
        assert_eq!(fs::read(&target).unwrap(), b"not yours");
        assert!(dir.path().join(&n.dumps[1].name).is_dir());
        assert_eq!(removed.problems.len(), 1);
        assert!(
            removed.problems[0].contains("directory"),
            "{:?}",
            removed.problems
        );
        assert!(s.get(id).unwrap().is_none());
    }

    #[test]
    fn delete_refuses_a_tampered_name_and_a_shared_file() {
        let (dir, mut s) = open_tmp();
        let outside = dir.path().join("sub");
        fs::create_dir(&outside).unwrap();
        let victim = outside.join("victim");
        fs::write(&victim, b"x").unwrap();
        let folder = dir.path().join("dumps");
        fs::create_dir(&folder).unwrap();
        drop(s);
        s = Store::open(&folder).unwrap();
        let n = sample("/bin/a", 1);
        write_dumps(&folder, &n);
        let id = s.insert(&n).unwrap();
        // Someone with write access to the database points a row outside.
        s.conn
            .execute(
                "UPDATE dump_files SET name = '../sub/victim' WHERE report_id = ?1 AND seq = 0",
                [id.0],
            )
            .unwrap();
        // And a second report lists the other file too.
        let mut other = sample("/bin/b", 2);
        other.dumps = vec![n.dumps[1].clone()];
        let other_id = s.insert(&other).unwrap();
        let removed = s.delete(id).unwrap();
        assert!(removed.files.is_empty());
        assert_eq!(removed.problems.len(), 2, "{:?}", removed.problems);
        assert!(removed.problems[0].contains("../sub/victim"));
        assert!(victim.exists());
        assert!(folder.join(&n.dumps[1].name).exists());
        // The last report listing it removes it.
        assert_eq!(s.delete(other_id).unwrap().files, [n.dumps[1].name.clone()]);
        assert!(!folder.join(&n.dumps[1].name).exists());
    }

    #[test]
    fn damaged_rows_are_errors_not_panics() {
        let (_dir, mut s) = open_tmp();
        let id = s.insert(&sample("/bin/a", 1)).unwrap();
        s.conn
            .execute(
                "UPDATE reports SET tier = 'martian', cmdline = '{' WHERE id = ?1",
                [id.0],
            )
            .unwrap();
        match s.get(id) {
            Err(StoreError::Corrupt { id: got, what }) => {
                assert_eq!(got, id);
                assert!(what.contains("martian"));
            }
            other => panic!("{other:?}"),
        }
        s.conn
            .execute(
                "UPDATE reports SET tier = 'kernel', pid = -5 WHERE id = ?1",
                [id.0],
            )
            .unwrap();
        assert!(matches!(s.get(id), Err(StoreError::Sql { .. })));
        assert!(s.list(&Filter::default()).is_err());
    }

    #[test]
    fn was_reported_matches_runtime_rows_of_the_same_process() {
        let (_dir, mut s) = open_tmp();
        let mut n = sample("/bin/a", 1);
        n.tier = Tier::Runtime;
        n.start_time = u64::MAX - 3;
        s.insert(&n).unwrap();
        let mut k = sample("/bin/k", 1);
        k.pid = 77;
        s.insert(&k).unwrap(); // kernel tier: does not count
        assert!(s.was_reported(&n.boot_id, n.pid, n.start_time).unwrap());
        assert!(!s.was_reported(&n.boot_id, n.pid, n.start_time - 1).unwrap());
        assert!(!s.was_reported("other-boot", n.pid, n.start_time).unwrap());
        assert!(!s.was_reported(&n.boot_id, n.pid + 1, n.start_time).unwrap());
        assert!(!s.was_reported(&k.boot_id, 77, k.start_time).unwrap());
    }

    #[test]
    fn two_handles_insert_concurrently() {
        let dir = tempfile::tempdir().unwrap();
        let per_thread = 40;
        let threads: Vec<_> = (0..2)
            .map(|t| {
                let folder = dir.path().to_path_buf();
                std::thread::spawn(move || {
                    let mut s = Store::open(&folder).unwrap();
                    for i in 0..per_thread {
                        s.insert(&sample(&format!("/bin/t{t}"), i)).unwrap();
                        s.admit(&format!("/bin/t{t}"), i, &Default::default())
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(
            s.list(&Filter::default()).unwrap().len(),
            2 * per_thread as usize
        );
        for t in 0..2 {
            let f = Filter {
                exe: Some(format!("t{t}")),
                ..Filter::default()
            };
            assert_eq!(s.list(&f).unwrap().len(), per_thread as usize);
        }
    }
}
