//! Rate limits: how a crash loop becomes a counter instead of a thousand
//! dumps. Owns the `rate_exe` / `rate_global` tables (fixed windows that
//! start at the first report after the previous window ran out). Must be
//! called before any dump is written, and must not touch report rows.

use rusqlite::{params, OptionalExtension, Transaction, TransactionBehavior};

use crate::error::StoreError;
use crate::model::{Admission, RateLimits};
use crate::store::Store;
use crate::text::escape;

impl Store {
    /// Decide whether a crash of `exe` at `now` (epoch seconds) is
    /// recorded. At most `per_exe_burst` reports of one executable and
    /// `global_burst` of all together per `interval_secs` (0 = unlimited).
    ///
    /// Over a limit: the executable's persistent suppressed counter goes up
    /// and [`Admission::Suppress`] carries its new value (the size of the
    /// flood so far). Within the limits: the report counts against both
    /// windows and [`Admission::Record`] carries the number suppressed since
    /// the executable's previous recorded report; that counter is reset.
    /// A clock that went backwards starts a new window.
    pub fn admit(
        &mut self,
        exe: &str,
        now: i64,
        limits: &RateLimits,
    ) -> Result<Admission, StoreError> {
        let what = || format!("rate limit for {}", escape(exe));
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::sql(what()))?;
        let decision = decide(&tx, exe, now, limits).map_err(StoreError::sql(what()))?;
        tx.commit().map_err(StoreError::sql(what()))?;
        Ok(decision)
    }
}

/// Whether the window that began at `start` is over at `now`.
fn window_over(start: i64, now: i64, interval: i64) -> bool {
    interval == 0 || now < start || now.saturating_sub(start) >= interval
}

fn decide(
    tx: &Transaction<'_>,
    exe: &str,
    now: i64,
    limits: &RateLimits,
) -> rusqlite::Result<Admission> {
    let interval = i64::try_from(limits.interval_secs).unwrap_or(i64::MAX);
    let (mut start, mut count, suppressed): (i64, i64, i64) = tx
        .query_row(
            "SELECT window_start, window_count, suppressed FROM rate_exe WHERE exe = ?1",
            [exe],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?
        .unwrap_or((now, 0, 0));
    if window_over(start, now, interval) {
        (start, count) = (now, 0);
    }
    let (mut gstart, mut gcount): (i64, i64) = tx
        .query_row(
            "SELECT window_start, window_count FROM rate_global WHERE id = 0",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?
        .unwrap_or((now, 0));
    if window_over(gstart, now, interval) {
        (gstart, gcount) = (now, 0);
    }
    let over = |count: i64, burst: u32| burst != 0 && count >= i64::from(burst);
    let limited =
        interval > 0 && (over(count, limits.per_exe_burst) || over(gcount, limits.global_burst));
    let (decision, exe_row, global_row) = if limited {
        let suppressed = suppressed.saturating_add(1);
        (
            Admission::Suppress {
                suppressed: suppressed as u64,
            },
            (start, count, suppressed),
            (gstart, gcount),
        )
    } else {
        (
            Admission::Record {
                suppressed_before: suppressed.max(0) as u64,
            },
            (start, count + 1, 0),
            (gstart, gcount + 1),
        )
    };
    tx.execute(
        "INSERT INTO rate_exe (exe, window_start, window_count, suppressed)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(exe) DO UPDATE SET window_start = excluded.window_start,
             window_count = excluded.window_count, suppressed = excluded.suppressed",
        params![exe, exe_row.0, exe_row.1, exe_row.2],
    )?;
    tx.execute(
        "INSERT INTO rate_global (id, window_start, window_count) VALUES (0, ?1, ?2)
         ON CONFLICT(id) DO UPDATE SET window_start = excluded.window_start,
             window_count = excluded.window_count",
        params![global_row.0, global_row.1],
    )?;
    // Forget executables whose window ran out and that owe no counter, so
    // hostile or one-off names do not pile up.
    tx.execute(
        "DELETE FROM rate_exe WHERE exe <> ?1 AND suppressed = 0
           AND (window_start > ?2 OR ?2 - window_start >= ?3)",
        params![exe, now, interval],
    )?;
    Ok(decision)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_exe: u32, global: u32) -> RateLimits {
        RateLimits {
            interval_secs: 60,
            per_exe_burst: per_exe,
            global_burst: global,
        }
    }

    #[test]
    fn a_flood_becomes_a_counter_carried_by_the_next_report() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let l = limits(10, 0);
        let t0 = 1_000_000;
        let mut records = 0;
        let mut last_suppressed = 0;
        for i in 0..1000 {
            match s.admit("/usr/bin/crashy", t0 + i % 60, &l).unwrap() {
                Admission::Record { suppressed_before } => {
                    assert_eq!(suppressed_before, 0);
                    assert!(last_suppressed == 0, "a Record after suppression began");
                    records += 1;
                }
                Admission::Suppress { suppressed } => {
                    assert_eq!(suppressed, last_suppressed + 1);
                    last_suppressed = suppressed;
                }
            }
        }
        assert_eq!(records, 10);
        assert_eq!(last_suppressed, 990);
        // The counter survives a new handle (another helper process).
        drop(s);
        let mut s = Store::open(dir.path()).unwrap();
        assert_eq!(
            s.admit("/usr/bin/crashy", t0 + 60, &l).unwrap(),
            Admission::Record {
                suppressed_before: 990
            }
        );
        // ...and was reset by that Record.
        assert_eq!(
            s.admit("/usr/bin/crashy", t0 + 61, &l).unwrap(),
            Admission::Record {
                suppressed_before: 0
            }
        );
    }

    #[test]
    fn global_burst_spans_executables_and_counts_per_exe() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let l = limits(10, 3);
        let t = 5_000;
        for exe in ["/a", "/b", "/c"] {
            assert!(matches!(
                s.admit(exe, t, &l).unwrap(),
                Admission::Record { .. }
            ));
        }
        assert_eq!(
            s.admit("/d", t + 1, &l).unwrap(),
            Admission::Suppress { suppressed: 1 }
        );
        assert_eq!(
            s.admit("/a", t + 2, &l).unwrap(),
            Admission::Suppress { suppressed: 1 }
        );
        assert_eq!(
            s.admit("/d", t + 3, &l).unwrap(),
            Admission::Suppress { suppressed: 2 }
        );
        // Next window: /d's record says what it lost.
        assert_eq!(
            s.admit("/d", t + 60, &l).unwrap(),
            Admission::Record {
                suppressed_before: 2
            }
        );
    }

    #[test]
    fn zero_means_unlimited() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        for (l, n) in [
            (limits(0, 0), 50),
            (
                RateLimits {
                    interval_secs: 0,
                    per_exe_burst: 1,
                    global_burst: 1,
                },
                50,
            ),
        ] {
            for _ in 0..n {
                assert!(matches!(
                    s.admit("/x", 7, &l).unwrap(),
                    Admission::Record { .. }
                ));
            }
        }
    }

    #[test]
    fn clock_going_backwards_starts_a_new_window() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let l = limits(1, 0);
        assert!(matches!(
            s.admit("/x", 1000, &l).unwrap(),
            Admission::Record { .. }
        ));
        assert!(matches!(
            s.admit("/x", 1001, &l).unwrap(),
            Admission::Suppress { .. }
        ));
        assert_eq!(
            s.admit("/x", 10, &l).unwrap(),
            Admission::Record {
                suppressed_before: 1
            }
        );
    }

    #[test]
    fn idle_executables_are_forgotten_but_owed_counters_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let l = limits(1, 0);
        s.admit("/once", 0, &l).unwrap();
        s.admit("/flood", 0, &l).unwrap();
        s.admit("/flood", 1, &l).unwrap(); // suppressed: owes a counter
        s.admit("/other", 100, &l).unwrap();
        let names: Vec<String> = s
            .conn
            .prepare("SELECT exe FROM rate_exe ORDER BY exe")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(names, ["/flood", "/other"]);
    }
}
