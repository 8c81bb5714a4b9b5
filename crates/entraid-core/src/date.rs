//! The one calendar of entraid-rs: civil dates to days and back, UTC offsets, and HTTP dates. Every crate of the
//! workspace reads and writes dates through this module (token expiries, `Retry-After`, the emulator's
//! timestamps), so no date crate is needed and the arithmetic is written once.
//!
//! Works on any input: every number is range-checked (years 1970..=9999) before any arithmetic, and anything
//! else gives `None`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The latest time this module reads or writes: 9999-12-31T23:59:59Z, in unix seconds.
pub const MAX_UNIX_SECONDS: u64 = 253_402_300_799;

/// Days from 1970-01-01 to the civil date (Howard Hinnant's `days_from_civil`). The caller checks the date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date (year, month, day) of a day counted from 1970-01-01 (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Whether `year` is a leap year of the Gregorian calendar.
pub fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Unix seconds of midnight (UTC) of a civil date; `None` unless it is a real date in 1970..=9999.
pub fn midnight(year: i64, month: i64, day: i64) -> Option<i64> {
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => return None,
    };
    ((1970..=9999).contains(&year) && (1..=days_in_month).contains(&day))
        .then(|| days_from_civil(year, month, day) * 86_400)
}

/// `UNIX_EPOCH + seconds`, for seconds up to the end of 9999 ([`MAX_UNIX_SECONDS`]).
pub fn unix_time(seconds: u64) -> Option<SystemTime> {
    (seconds <= MAX_UNIX_SECONDS)
        .then(|| UNIX_EPOCH.checked_add(Duration::from_secs(seconds)))
        .flatten()
}

/// A run of 1 to 9 ASCII digits.
pub(crate) fn digits(s: &str) -> Option<i64> {
    (!s.is_empty() && s.len() <= 9 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// A UTC offset such as `Z`, `+00:00`, `-0500` (or nothing, read as UTC), in seconds east of UTC.
///
/// ```
/// use entraid_core::date::parse_utc_offset;
///
/// assert_eq!(parse_utc_offset("+05:30"), Some(19_800));
/// assert_eq!(parse_utc_offset("-0800"), Some(-28_800));
/// assert_eq!(parse_utc_offset("Z"), Some(0));
/// assert_eq!(parse_utc_offset("+24:00"), None);
/// ```
pub fn parse_utc_offset(s: &str) -> Option<i64> {
    if s.is_empty() || s == "Z" || s == "z" {
        return Some(0);
    }
    let (sign, rest) = if let Some(rest) = s.strip_prefix('+') {
        (1, rest)
    } else if let Some(rest) = s.strip_prefix('-') {
        (-1, rest)
    } else {
        return None;
    };
    let (hours, minutes) = match rest.split_once(':') {
        Some((h, m)) => (h, m),
        None if rest.len() == 4 && rest.is_ascii() => rest.split_at(2),
        None => return None,
    };
    if hours.len() != 2 || minutes.len() != 2 {
        return None;
    }
    let (hours, minutes) = (digits(hours)?, digits(minutes)?);
    (hours <= 23 && minutes < 60).then_some(sign * (hours * 3600 + minutes * 60))
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the HTTP date format (`Retry-After`, `Date`).
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use entraid_core::date::parse_http_date;
///
/// let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
/// assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(t));
/// assert_eq!(parse_http_date("Sun, 06 Nov 10000 08:49:37 GMT"), None);
/// ```
pub fn parse_http_date(text: &str) -> Option<SystemTime> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (_, rest) = text.split_once(", ")?;
    let mut parts = rest.split(' ');
    let day = digits(parts.next()?)?;
    let month_name = parts.next()?;
    let month = MONTHS.iter().position(|m| *m == month_name)?;
    let year = digits(parts.next()?)?;
    let mut hms = parts.next()?.split(':');
    let (h, m, s) = (
        digits(hms.next()?)?,
        digits(hms.next()?)?,
        digits(hms.next()?)?,
    );
    if hms.next().is_some() || parts.next()? != "GMT" || parts.next().is_some() {
        return None;
    }
    if h > 23 || m > 59 || s > 60 {
        return None;
    }
    let seconds = midnight(year, i64::try_from(month).ok()? + 1, day)? + h * 3600 + m * 60 + s;
    unix_time(u64::try_from(seconds).ok()?)
}

/// Formats unix seconds as `YYYY-MM-DD HH:MM:SSZ` (the form of Entra's error `timestamp`).
///
/// ```
/// assert_eq!(entraid_core::date::format_utc(1_750_156_200), "2025-06-17 10:30:00Z");
/// ```
pub fn format_utc(unix: i64) -> String {
    let (y, m, d) = civil_from_days(unix.div_euclid(86_400));
    let secs = unix.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z",
        secs / 3600,
        (secs % 3600) / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days_round_trip() {
        assert_eq!(midnight(1970, 1, 1), Some(0));
        assert_eq!(midnight(2024, 2, 29), Some(1_709_164_800));
        assert_eq!(midnight(2025, 2, 29), None);
        assert_eq!(midnight(1969, 12, 31), None);
        assert_eq!(midnight(10_000, 1, 1), None);
        assert_eq!(midnight(2025, 13, 1), None);
        for days in [0, 1, 59, 365, 11_016, 20_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(midnight(y, m, d), Some(days * 86_400), "{days}");
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn offsets() {
        assert_eq!(parse_utc_offset(""), Some(0));
        assert_eq!(parse_utc_offset("+0000"), Some(0));
        assert_eq!(parse_utc_offset("+0530"), Some(19_800));
        assert_eq!(parse_utc_offset("-08:00"), Some(-28_800));
        for bad in [
            "0530", "+5", "+05:3", "+2400", "+05:60", "+é1", "+1é1", "UTC",
        ] {
            assert_eq!(parse_utc_offset(bad), None, "{bad}");
        }
    }

    #[test]
    fn http_dates() {
        assert_eq!(
            parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"),
            Some(UNIX_EPOCH)
        );
        assert_eq!(
            parse_http_date("Tue, 17 Jun 2025 10:30:00 GMT"),
            Some(UNIX_EPOCH + Duration::from_secs(1_750_156_200))
        );
        assert_eq!(
            parse_http_date("Fri, 31 Dec 9999 23:59:59 GMT"),
            unix_time(MAX_UNIX_SECONDS)
        );
        for bad in [
            "",
            "Tue, 17 Foo 2025 10:30:00 GMT",
            "Tue, 17 Jun 2025 10:30:00 UTC",
            "Tue, 32 Jun 2025 10:30:00 GMT",
            "Tue, 30 Feb 2025 10:30:00 GMT",
            "Tue, 17 Jun 2025 25:30:00 GMT",
            "Tue, 17 Jun 2025 10:30:00:00 GMT",
            "Tue, 17 Jun 2025 10:30:00 GMT extra",
            "Sun, 06 Nov 1969 08:49:37 GMT",
            "Sun, 06 Nov 300000000000 08:49:37 GMT",
            "Sun, 06 Nov -1994 08:49:37 GMT",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn timestamps() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00Z");
        assert_eq!(format_utc(1_750_156_200), "2025-06-17 10:30:00Z");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00:00Z");
        assert_eq!(format_utc(-1), "1969-12-31 23:59:59Z");
    }
}
