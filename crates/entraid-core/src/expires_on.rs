//! [`parse_expires_on`]: an expiry as unix seconds or as one of the date forms token responses use (ISO 8601, the
//! Azure CLI's `2006-01-02 15:04:05.000000`, and the month-first form with `AM`/`PM` of older App Service hosts).
//! The calendar itself is [`crate::date`].

use std::time::SystemTime;

use crate::date::{MAX_UNIX_SECONDS, digits, midnight, parse_utc_offset, unix_time};

/// Parses an expiry given as unix seconds or as a date string (see [`TokenResponse::from_json`](crate::TokenResponse::from_json)).
///
/// Works on any text: `None` for anything else, including times before 1970 or after 9999. Dates may carry
/// `AM`/`PM` after the time (`12/01/2026 09:30:00 PM +00:00`, as older App Service and `MSI_ENDPOINT` hosts
/// send on Windows): `PM` adds 12 hours to an hour before 12, `12 AM` is midnight.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use entraid_core::parse_expires_on;
///
/// let t = UNIX_EPOCH + Duration::from_secs(1_750_156_200);
/// assert_eq!(parse_expires_on("1750156200"), Some(t));
/// assert_eq!(parse_expires_on("2025-06-17T10:30:00Z"), Some(t));
/// assert_eq!(parse_expires_on("2025-06-17 10:30:00.000000"), Some(t));
/// assert_eq!(parse_expires_on("06/17/2025 10:30:00 +00:00"), Some(t));
/// assert_eq!(parse_expires_on("6/17/2025 10:30:00 AM +00:00"), Some(t));
/// assert_eq!(parse_expires_on("99999999999999999999"), None);
/// ```
pub fn parse_expires_on(text: &str) -> Option<SystemTime> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return unix_time(seconds);
    }
    if text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        // A fractional unix time ("1750156200.5"); anything that reads as a huge number is out of range.
        let seconds = text.parse::<f64>().ok()?;
        return (seconds.is_finite() && seconds >= 0.0 && seconds <= MAX_UNIX_SECONDS as f64)
            .then(|| unix_time(seconds as u64))
            .flatten();
    }
    let seconds = parse_date(text)?;
    unix_time(u64::try_from(seconds).ok()?)
}

/// "15:04:05" with an optional fraction ".999999": seconds into the day, and the hour.
fn hms(s: &str) -> Option<(i64, i64)> {
    let (s, fraction) = s.split_once('.').unwrap_or((s, "0"));
    if fraction.is_empty() || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut parts = s.split(':');
    let (h, m, sec) = (
        digits(parts.next()?)?,
        digits(parts.next()?)?,
        digits(parts.next()?)?,
    );
    (parts.next().is_none() && h < 24 && m < 60 && sec <= 60).then_some((m * 60 + sec, h))
}

/// Splits "time[offset]" into the time and the offset text.
fn split_offset(s: &str) -> (&str, &str) {
    if let Some(stripped) = s.strip_suffix(['Z', 'z']) {
        return (stripped, "Z");
    }
    match s.rfind(['+', '-']) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    }
}

/// Unix seconds for `2006-01-02T15:04:05[.fff][Z|±hh:mm]`, `2006-01-02 15:04:05[.ffffff]`,
/// `01/02/2006 15:04:05 [AM|PM] [±hh:mm]` (month first; one-digit months, days and hours too).
fn parse_date(text: &str) -> Option<i64> {
    let (day_part, rest) = text.split_once(['T', 't', ' '])?;
    let day = if day_part.contains('/') {
        let mut p = day_part.split('/');
        let (m, d, y) = (digits(p.next()?)?, digits(p.next()?)?, digits(p.next()?)?);
        if p.next().is_some() {
            return None;
        }
        midnight(y, m, d)?
    } else {
        let mut p = day_part.split('-');
        let (y, m, d) = (digits(p.next()?)?, digits(p.next()?)?, digits(p.next()?)?);
        if p.next().is_some() {
            return None;
        }
        midnight(y, m, d)?
    };
    let mut words = rest.split_whitespace();
    let first = words.next()?;
    let (time_text, mut offset_text) = split_offset(first);
    let mut meridiem = None;
    for word in words {
        match word {
            w if meridiem.is_none() && offset_text.is_empty() && w.eq_ignore_ascii_case("AM") => {
                meridiem = Some(false);
            }
            w if meridiem.is_none() && offset_text.is_empty() && w.eq_ignore_ascii_case("PM") => {
                meridiem = Some(true);
            }
            w if offset_text.is_empty() => offset_text = w,
            _ => return None,
        }
    }
    let (minutes_seconds, hour) = hms(time_text)?;
    // As Go's time.Parse (which azidentity uses): PM moves an hour before 12 to the afternoon, 12 AM is 0.
    let hour = match meridiem {
        Some(true) if hour < 12 => hour + 12,
        Some(false) if hour == 12 => 0,
        _ => hour,
    };
    Some(day + hour * 3600 + minutes_seconds - parse_utc_offset(offset_text)?)
}

#[cfg(test)]
mod tests {
    use super::parse_date as parse;

    #[test]
    fn formats() {
        assert_eq!(parse("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse("2025-06-17T14:30:00.000Z"), Some(1_750_170_600));
        assert_eq!(parse("2025-06-17T16:30:00+02:00"), Some(1_750_170_600));
        assert_eq!(parse("2025-06-17T09:30:00-0500"), Some(1_750_170_600));
        assert_eq!(parse("2025-06-17 14:30:00.000000"), Some(1_750_170_600));
        assert_eq!(parse("06/17/2025 14:30:00 +00:00"), Some(1_750_170_600));
        assert_eq!(parse("06/17/2025 14:30:00"), Some(1_750_170_600));
        assert_eq!(parse("6/17/2025 2:30:00 PM +00:00"), Some(1_750_170_600));
        assert_eq!(parse("2024-02-29T00:00:00Z"), Some(1_709_164_800));
        assert_eq!(parse("9999-12-31T23:59:59Z"), Some(253_402_300_799));
    }

    #[test]
    fn twelve_hour_clock() {
        // 2026-12-01T00:00:00Z is 1_796_083_200.
        let midnight = 1_796_083_200;
        assert_eq!(
            parse("12/01/2026 09:30:00 AM +00:00"),
            Some(midnight + 9 * 3600 + 1800)
        );
        assert_eq!(
            parse("12/01/2026 09:30:00 PM +00:00"),
            Some(midnight + 21 * 3600 + 1800)
        );
        assert_eq!(parse("12/01/2026 12:00:00 AM +00:00"), Some(midnight));
        assert_eq!(
            parse("12/01/2026 12:00:00 PM +00:00"),
            Some(midnight + 12 * 3600)
        );
        assert_eq!(parse("12/01/2026 12:59:59 am"), Some(midnight + 3599));
        // A 24-hour time with a redundant PM, as Go reads it.
        assert_eq!(
            parse("12/01/2026 15:04:05 PM +00:00"),
            Some(midnight + 15 * 3600 + 245)
        );
        assert_eq!(
            parse("12/01/2026 09:30:00 PM -01:00"),
            Some(midnight + 22 * 3600 + 1800)
        );
        assert_eq!(
            parse("12/01/2026 21:30:00 +00:00"),
            Some(midnight + 21 * 3600 + 1800)
        );
    }

    #[test]
    fn garbage() {
        for s in [
            "",
            "tomorrow",
            "2025-13-01T00:00:00Z",
            "2025-06-17T25:00:00Z",
            "2025-06-17",
            "a-b-c d",
            "2025-06-17T14:30Z",
            "06/17/2025 14:30:00 +0",
            "1969-12-31T00:00:00Z",
            "2025-02-30T00:00:00Z",
            "2025-06-17T14:30:00+1é1",
            "2025-06-17T14:30:00+é1",
            "2025-06-17T14:30:00.1é",
            "10000-01-01T00:00:00Z",
            "300000000000-01-01T00:00:00Z",
            "12/01/2026 09:30:00 AM PM",
            "12/01/2026 09:30:00 +00:00 AM",
            "12/01/2026 09:30:00 +00:00 +00:00",
            "12/01/2026 09:30:00 XM",
            "2025-06-17T14:30:00+24:00",
        ] {
            assert_eq!(parse(s), None, "{s}");
        }
    }
}
