//! Retention: which reports go when the folder holds too many, too large,
//! or leaves too little free space (WER `DumpCount`, systemd-coredump
//! `MaxUse` / `KeepFree`). Oldest first, never the protected report, every
//! loop bounded by the number of reports. Must not delete anything but
//! whole reports through [`Store::delete`].

use std::collections::{HashMap, HashSet};
use std::path::Path;

use crate::error::StoreError;
use crate::model::{GcOutcome, Removed, ReportId, Retention};
use crate::store::Store;
use crate::text::escape;

/// Bytes available to unprivileged writers on the file system holding
/// `path` (statvfs `f_bavail * f_frsize`).
pub fn free_space(path: &Path) -> Result<u64, StoreError> {
    let st = nix::sys::statvfs::statvfs(path).map_err(|e| StoreError::Io {
        path: path.to_path_buf(),
        source: e.into(),
    })?;
    // Both are 32-bit on 32-bit targets; the conversion is for them.
    #[allow(clippy::useless_conversion)]
    let (avail, frsize) = (
        u64::from(st.blocks_available()),
        u64::from(st.fragment_size()),
    );
    Ok(avail.saturating_mul(frsize))
}

impl Store {
    /// Apply `r`, oldest reports first: keep at most `count_per_exe`
    /// reports per executable (or its own `count_for` entry), keep the dump files (plus `reserve`, the
    /// bytes about to be written) under `max_use`, and keep `keep_free`
    /// (plus `reserve`) bytes free on the folder's file system. Deleting a
    /// report deletes its files. `protect` (the report just inserted) is
    /// never deleted. A limit that cannot be met once everything else is
    /// gone is reported in [`GcOutcome::problems`], as are files that could
    /// not be removed.
    pub fn gc(
        &mut self,
        r: &Retention,
        reserve: u64,
        protect: Option<ReportId>,
    ) -> Result<GcOutcome, StoreError> {
        let mut out = GcOutcome::default();
        let oldest_first = self.oldest_first()?;
        let mut gone: HashSet<ReportId> = HashSet::new();

        if r.count_per_exe > 0 || r.count_for.values().any(|n| *n > 0) {
            let mut excess: HashMap<&str, usize> = HashMap::new();
            for (_, exe) in &oldest_first {
                *excess.entry(exe.as_str()).or_default() += 1;
            }
            for (exe, n) in excess.iter_mut() {
                let base = exe.rsplit('/').next().unwrap_or(exe);
                let keep = r.count_for.get(base).copied().unwrap_or(r.count_per_exe);
                *n = match keep {
                    0 => 0,
                    k => n.saturating_sub(k as usize),
                };
            }
            // Oldest first across executables, like the other limits.
            for (id, exe) in &oldest_first {
                if Some(*id) == protect {
                    continue;
                }
                if let Some(n) = excess.get_mut(exe.as_str()) {
                    if *n > 0 {
                        *n -= 1;
                        self.remove(*id, &mut out, &mut gone)?;
                    }
                }
            }
        }

        let candidates: Vec<ReportId> = oldest_first
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| Some(*id) != protect)
            .collect();

        if let Some(max_use) = r.max_use {
            let mut used = 0u64;
            for (id, _) in &oldest_first {
                if !gone.contains(id) {
                    for name in self.dump_names(*id)? {
                        used = used.saturating_add(self.file_size(&name));
                    }
                }
            }
            for id in &candidates {
                if used.saturating_add(reserve) <= max_use {
                    break;
                }
                if gone.contains(id) {
                    continue;
                }
                if let Some(removed) = self.remove(*id, &mut out, &mut gone)? {
                    used = used.saturating_sub(removed.bytes);
                }
            }
            if used.saturating_add(reserve) > max_use {
                out.problems.push(format!(
                    "cannot get under max_use: {used} bytes of dumps + {reserve} to write > \
                     {max_use}, and nothing more may be deleted"
                ));
            }
        }

        if let Some(keep_free) = r.keep_free {
            let want = keep_free.saturating_add(reserve);
            let mut free = free_space(&self.folder)?;
            for id in &candidates {
                if free >= want {
                    break;
                }
                if gone.contains(id) {
                    continue;
                }
                if let Some(removed) = self.remove(*id, &mut out, &mut gone)? {
                    free = free.saturating_add(removed.bytes);
                }
            }
            if free < want {
                out.problems.push(format!(
                    "cannot keep {keep_free} bytes free (+ {reserve} to write): {free} free \
                     in {}, and nothing more may be deleted",
                    escape(&self.folder.to_string_lossy())
                ));
            }
        }
        Ok(out)
    }

    /// Every report as (id, exe), oldest first.
    fn oldest_first(&self) -> Result<Vec<(ReportId, String)>, StoreError> {
        let what = "list reports for retention";
        let mut stmt = self
            .conn
            .prepare("SELECT id, exe FROM reports ORDER BY time, time_nsec, id")
            .map_err(StoreError::sql(what))?;
        let rows = stmt
            .query_map([], |r| Ok((ReportId(r.get(0)?), r.get(1)?)))
            .map_err(StoreError::sql(what))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(StoreError::sql(what));
        rows
    }

    /// Delete one report for gc, folding the result into `out`. A report
    /// another process deleted meanwhile is skipped (`None`).
    fn remove(
        &mut self,
        id: ReportId,
        out: &mut GcOutcome,
        gone: &mut HashSet<ReportId>,
    ) -> Result<Option<Removed>, StoreError> {
        gone.insert(id);
        match self.delete(id) {
            Ok(removed) => {
                out.reports_removed += 1;
                out.files_removed += removed.files.len();
                out.bytes_freed = out.bytes_freed.saturating_add(removed.bytes);
                out.problems.extend(removed.problems.iter().cloned());
                Ok(Some(removed))
            }
            Err(StoreError::NoSuchReport { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Filter, NewReport};
    use crate::test_support::{sample, write_dumps};

    /// A store with `times.len()` reports of `exe`, files on disk (300
    /// bytes each report).
    fn fill(s: &mut Store, exe: &str, times: &[i64]) -> Vec<(ReportId, NewReport)> {
        times
            .iter()
            .map(|&t| {
                let n = sample(exe, t);
                write_dumps(s.folder(), &n);
                (s.insert(&n).unwrap(), n)
            })
            .collect()
    }

    fn remaining(s: &Store) -> Vec<ReportId> {
        let mut ids: Vec<ReportId> = s
            .list(&Filter::default())
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        ids.sort();
        ids
    }

    fn files_exist(s: &Store, n: &NewReport) -> bool {
        n.dumps.iter().all(|d| s.folder().join(&d.name).exists())
    }

    #[test]
    fn count_per_exe_deletes_oldest_and_honours_protect() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        // Inserted out of time order: age is by time, not by id.
        let a = fill(&mut s, "/bin/a", &[10, 50, 20, 40, 30]);
        let b = fill(&mut s, "/bin/b", &[1, 2]);
        let protect = a[0].0; // the oldest /bin/a report
        let r = Retention {
            count_per_exe: 2,
            ..Retention::default()
        };
        let out = s.gc(&r, 0, Some(protect)).unwrap();
        assert_eq!(out.reports_removed, 3);
        assert_eq!(out.files_removed, 6);
        assert_eq!(out.bytes_freed, 900);
        assert!(out.problems.is_empty(), "{:?}", out.problems);
        // Kept: the protected one and the newest (time 50); times 20, 30, 40 gone.
        let mut want = vec![a[0].0, a[1].0, b[0].0, b[1].0];
        want.sort();
        assert_eq!(remaining(&s), want);
        assert!(!files_exist(&s, &a[2].1) && !files_exist(&s, &a[3].1));
        assert!(files_exist(&s, &a[0].1) && files_exist(&s, &a[1].1));
        // Unlimited count: nothing more.
        let out = s.gc(&Retention::default(), 0, None).unwrap();
        assert_eq!(out, GcOutcome::default());
    }

    #[test]
    fn per_executable_count_overrides_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let a = fill(&mut s, "/bin/a", &[1, 2, 3, 4]);
        let b = fill(&mut s, "/usr/bin/b", &[5, 6, 7]);
        let c = fill(&mut s, "/bin/c", &[8, 9, 10]);
        let r = Retention {
            count_per_exe: 2,
            // b keeps 1; c is unlimited though the default is 2.
            count_for: [("b".to_owned(), 1), ("c".to_owned(), 0)].into(),
            ..Retention::default()
        };
        let out = s.gc(&r, 0, None).unwrap();
        assert_eq!(out.reports_removed, 4, "{out:?}");
        let mut want = vec![a[2].0, a[3].0, b[2].0, c[0].0, c[1].0, c[2].0];
        want.sort();
        assert_eq!(remaining(&s), want);
        // Only overrides, default unlimited: still applied.
        let r = Retention {
            count_for: [("c".to_owned(), 1)].into(),
            ..Retention::default()
        };
        assert_eq!(s.gc(&r, 0, None).unwrap().reports_removed, 2);
    }

    #[test]
    fn max_use_counts_real_file_sizes_and_reserve() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let a = fill(&mut s, "/bin/a", &[1, 2, 3, 4]);
        // The row claims far more than the file holds: the file counts.
        let mut big_claim = sample("/bin/z", 5);
        big_claim.dumps.truncate(1);
        big_claim.dumps[0].bytes = 10;
        write_dumps(s.folder(), &big_claim);
        big_claim.dumps[0].bytes = 1 << 40;
        let z = s.insert(&big_claim).unwrap();
        let r = Retention {
            max_use: Some(700),
            ..Retention::default()
        };
        // 1210 bytes on disk: two oldest go (1210 -> 910 -> 610).
        let out = s.gc(&r, 0, None).unwrap();
        assert_eq!((out.reports_removed, out.bytes_freed), (2, 600));
        assert!(out.problems.is_empty(), "{:?}", out.problems);
        assert_eq!(remaining(&s), [a[2].0, a[3].0, z]);
        // 300 bytes about to be written: one more.
        let out = s.gc(&r, 300, None).unwrap();
        assert_eq!(out.reports_removed, 1);
        assert_eq!(remaining(&s), [a[3].0, z]);
    }

    #[test]
    fn max_use_that_cannot_be_met_is_a_problem() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let a = fill(&mut s, "/bin/a", &[1, 2]);
        let r = Retention {
            max_use: Some(10),
            ..Retention::default()
        };
        let out = s.gc(&r, 0, Some(a[1].0)).unwrap();
        assert_eq!(out.reports_removed, 1);
        assert_eq!(out.problems.len(), 1, "{:?}", out.problems);
        assert!(out.problems[0].contains("max_use"));
        assert_eq!(remaining(&s), [a[1].0]);
    }

    #[test]
    fn keep_free_out_of_reach_deletes_all_but_protected_and_stops() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let a = fill(&mut s, "/bin/a", &[1, 2, 3]);
        let b = fill(&mut s, "/bin/b", &[4]);
        let r = Retention {
            keep_free: Some(u64::MAX / 2),
            ..Retention::default()
        };
        let out = s.gc(&r, u64::MAX, Some(a[1].0)).unwrap();
        assert_eq!(out.reports_removed, 3);
        assert_eq!(out.bytes_freed, 900);
        assert_eq!(out.problems.len(), 1, "{:?}", out.problems);
        assert!(out.problems[0].contains("free"));
        assert_eq!(remaining(&s), [a[1].0]);
        assert!(!files_exist(&s, &b[0].1));
        assert!(files_exist(&s, &a[1].1));
    }

    #[test]
    fn keep_free_within_reach_deletes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        fill(&mut s, "/bin/a", &[1, 2]);
        let r = Retention {
            keep_free: Some(0),
            ..Retention::default()
        };
        assert_eq!(s.gc(&r, 0, None).unwrap(), GcOutcome::default());
        assert_eq!(remaining(&s).len(), 2);
    }

    #[test]
    fn free_space_of_a_real_folder_and_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_space(dir.path()).unwrap() > 0);
        let missing = dir.path().join("missing");
        match free_space(&missing) {
            Err(StoreError::Io { path, .. }) => assert_eq!(path, missing),
            other => panic!("{other:?}"),
        }
    }
}
