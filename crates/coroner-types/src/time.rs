//! Calendar time in UTC from seconds since the epoch, for the
//! `YYMMDD_HHMMSS` / `YYYYMMDD-HHMMSS` parts of dump names (no time zone
//! database, no I/O).

/// A UTC date and time of day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UtcTime {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

impl UtcTime {
    /// Seconds since 1970-01-01T00:00:00Z.
    pub fn from_epoch(secs: u64) -> UtcTime {
        let (year, month, day) = civil_from_days((secs / 86_400) as i64);
        let rem = secs % 86_400;
        UtcTime {
            year,
            month,
            day,
            hour: (rem / 3600) as u32,
            minute: (rem % 3600 / 60) as u32,
            second: (rem % 60) as u32,
        }
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        let t = |y, mo, d, h, mi, s| UtcTime {
            year: y,
            month: mo,
            day: d,
            hour: h,
            minute: mi,
            second: s,
        };
        assert_eq!(UtcTime::from_epoch(0), t(1970, 1, 1, 0, 0, 0));
        assert_eq!(
            UtcTime::from_epoch(1_700_000_000),
            t(2023, 11, 14, 22, 13, 20)
        );
        // A leap day and the day after it.
        assert_eq!(UtcTime::from_epoch(951_782_400), t(2000, 2, 29, 0, 0, 0));
        assert_eq!(UtcTime::from_epoch(951_868_799), t(2000, 2, 29, 23, 59, 59));
        assert_eq!(UtcTime::from_epoch(951_868_800), t(2000, 3, 1, 0, 0, 0));
    }
}
