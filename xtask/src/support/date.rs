//! Calendar arithmetic for SOURCE_DATE_EPOCH (pure; no clock is ever read).

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Howard Hinnant's algorithm (proleptic Gregorian calendar).
    let z = days + 719_468;
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

pub struct Utc {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// 0 = Sunday
    pub weekday: u32,
}

pub fn utc(epoch: i64) -> Utc {
    let days = epoch.div_euclid(86_400);
    let secs = epoch.rem_euclid(86_400) as u32;
    let (year, month, day) = civil_from_days(days);
    Utc {
        year,
        month,
        day,
        hour: secs / 3600,
        minute: secs / 60 % 60,
        second: secs % 60,
        weekday: (days + 4).rem_euclid(7) as u32,
    }
}

const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `date -u` style, as the kernel prints its build time: `Thu Nov 26 12:00:00 UTC 2026`.
pub fn kernel_timestamp(epoch: i64) -> String {
    let t = utc(epoch);
    format!(
        "{} {} {:2} {:02}:{:02}:{:02} UTC {}",
        WEEKDAYS[t.weekday as usize],
        MONTHS[t.month as usize - 1],
        t.day,
        t.hour,
        t.minute,
        t.second,
        t.year
    )
}

/// ISO 8601: `2026-11-26T12:00:00Z`.
pub fn iso8601(epoch: i64) -> String {
    let t = utc(epoch);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_date() {
        // `date -u -d @0` and `date -u -d @1700000000`
        assert_eq!(kernel_timestamp(0), "Thu Jan  1 00:00:00 UTC 1970");
        assert_eq!(
            kernel_timestamp(1_700_000_000),
            "Tue Nov 14 22:13:20 UTC 2023"
        );
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601(4_107_542_399), "2100-02-28T23:59:59Z");
    }
}
