//! Finding a date in a file or folder name.
//!
//! The forms read, each bounded by non-digits (and month names by
//! non-letters), with years 1900-2099:
//! - `2026-03-02`, `2026_03_02`, `2026.03.02` and `20260302`: year first.
//! - `14.03.2026`: dotted dates are day first (the European convention; no
//!   one writes dotted dates month first).
//! - `14-03-2026`, `14_03_2026` (and `03/14/2026` where a slash can occur):
//!   read whichever way is valid; when both numbers are 12 or less and
//!   differ (`03-04-2026`) the date is ambiguous and reported, not guessed.
//! - `14 March 2026`, `March 14, 2026`, `Mar 2026`: English month names and
//!   their three-letter abbreviations (`Sept` too), any case. A month and
//!   year without a day is [`Found::Month`]; the caller decides the day.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    Date { year: u32, month: u32, day: u32 },
    Month { year: u32, month: u32 },
    Ambiguous(String),
}

/// A date found in a name, and the byte range of its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub found: Found,
    pub start: usize,
    pub end: usize,
}

/// The first date in `name` (the one that starts earliest).
pub fn find(name: &str) -> Option<Match> {
    let bytes = name.as_bytes();
    for start in 0..bytes.len() {
        let prev = start.checked_sub(1).map(|i| bytes[i]);
        let b = bytes[start];
        let found = if b.is_ascii_digit() && !prev.is_some_and(|p| p.is_ascii_digit()) {
            numeric(bytes, start).or_else(|| day_month_year(bytes, start))
        } else if b.is_ascii_alphabetic() && !prev.is_some_and(|p| p.is_ascii_alphabetic()) {
            month_first(bytes, start)
        } else {
            None
        };
        if let Some((found, end)) = found {
            return Some(Match { found, start, end });
        }
    }
    None
}

/// True when `name` already starts with a valid `YYYY-MM-DD`.
pub fn has_date_prefix(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.len() >= 10
        && !bytes.get(10).is_some_and(u8::is_ascii_digit)
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && matches!(
            (digits(&bytes[0..4]), digits(&bytes[5..7]), digits(&bytes[8..10])),
            (Some(y), Some(m), Some(d)) if valid(y, m, d)
        )
}

/// The value of an all-digit slice.
fn digits(bytes: &[u8]) -> Option<u32> {
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    bytes
        .iter()
        .try_fold(0u32, |acc, b| acc.checked_mul(10)?.checked_add(u32::from(b - b'0')))
}

/// The end of the digit run starting at `i`.
fn digit_run(bytes: &[u8], i: usize) -> usize {
    bytes[i..]
        .iter()
        .position(|b| !b.is_ascii_digit())
        .map_or(bytes.len(), |n| i + n)
}

pub fn valid(year: u32, month: u32, day: u32) -> bool {
    (1900..=2099).contains(&year) && (1..=12).contains(&month) && day >= 1 && day <= days_in_month(year, month)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => 29,
        2 => 28,
        _ => 31,
    }
}

/// `YYYYMMDD`, `YYYY-MM-DD` (one separator of `-_.`, the same twice) or
/// `DD?MM?YYYY` starting at the digit run at `i`.
fn numeric(bytes: &[u8], i: usize) -> Option<(Found, usize)> {
    let run = digit_run(bytes, i);
    let first = &bytes[i..run];
    match first.len() {
        8 => {
            let (y, m, d) = (digits(&first[0..4])?, digits(&first[4..6])?, digits(&first[6..8])?);
            valid(y, m, d).then_some((
                Found::Date {
                    year: y,
                    month: m,
                    day: d,
                },
                run,
            ))
        }
        4 => {
            let sep = *bytes.get(run)?;
            if !matches!(sep, b'-' | b'_' | b'.') {
                return None;
            }
            let (m, after_m) = two_digits(bytes, run + 1)?;
            if bytes.get(after_m) != Some(&sep) {
                return None;
            }
            let (d, end) = two_digits(bytes, after_m + 1)?;
            let y = digits(first)?;
            valid(y, m, d).then_some((
                Found::Date {
                    year: y,
                    month: m,
                    day: d,
                },
                end,
            ))
        }
        1 | 2 => {
            let sep = *bytes.get(run)?;
            if !matches!(sep, b'-' | b'_' | b'.' | b'/') {
                return None;
            }
            let second_end = digit_run(bytes, run + 1);
            let second = &bytes[run + 1..second_end];
            if !(1..=2).contains(&second.len()) || bytes.get(second_end) != Some(&sep) {
                return None;
            }
            let year_end = digit_run(bytes, second_end + 1);
            if year_end - (second_end + 1) != 4 {
                return None;
            }
            let (a, b, y) = (
                digits(first)?,
                digits(second)?,
                digits(&bytes[second_end + 1..year_end])?,
            );
            let day_first = valid(y, b, a);
            let found = if sep == b'.' {
                day_first.then_some(Found::Date {
                    year: y,
                    month: b,
                    day: a,
                })?
            } else {
                match (day_first, valid(y, a, b)) {
                    (true, true) if a != b => {
                        Found::Ambiguous(String::from_utf8_lossy(&bytes[i..year_end]).into_owned())
                    }
                    (true, _) => Found::Date {
                        year: y,
                        month: b,
                        day: a,
                    },
                    (false, true) => Found::Date {
                        year: y,
                        month: a,
                        day: b,
                    },
                    (false, false) => return None,
                }
            };
            Some((found, year_end))
        }
        _ => None,
    }
}

/// Exactly two digits at `i`, not followed by a third.
fn two_digits(bytes: &[u8], i: usize) -> Option<(u32, usize)> {
    let end = digit_run(bytes, i);
    (end - i == 2).then_some(())?;
    Some((digits(&bytes[i..end])?, end))
}

/// Separators allowed between the parts of a date written with a month name.
fn skip_separators(bytes: &[u8], mut i: usize) -> Option<usize> {
    let start = i;
    while bytes
        .get(i)
        .is_some_and(|b| matches!(b, b' ' | b'_' | b'-' | b'.' | b','))
    {
        i += 1;
    }
    (i > start).then_some(i)
}

/// The months' English names, January first (the runtime's period reading uses them too).
pub const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

fn month_name(word: &[u8]) -> Option<u32> {
    let word = String::from_utf8_lossy(word).to_ascii_lowercase();
    if word == "sept" {
        return Some(9);
    }
    MONTHS
        .iter()
        .position(|m| *m == word || (word.len() == 3 && m.starts_with(&word)))
        .and_then(|n| u32::try_from(n + 1).ok())
}

/// A month word at `i`, then its end.
fn month_at(bytes: &[u8], i: usize) -> Option<(u32, usize)> {
    let end = bytes[i..]
        .iter()
        .position(|b| !b.is_ascii_alphabetic())
        .map_or(bytes.len(), |n| i + n);
    Some((month_name(&bytes[i..end])?, end))
}

/// A four-digit year at `i`, then its end.
fn year_at(bytes: &[u8], i: usize) -> Option<(u32, usize)> {
    let end = digit_run(bytes, i);
    (end - i == 4).then_some(())?;
    Some((digits(&bytes[i..end])?, end))
}

/// `March 2026` or `March 14, 2026`.
fn month_first(bytes: &[u8], i: usize) -> Option<(Found, usize)> {
    let (month, after_month) = month_at(bytes, i)?;
    let next = skip_separators(bytes, after_month)?;
    if let Some((year, end)) = year_at(bytes, next) {
        return (1900..=2099)
            .contains(&year)
            .then_some((Found::Month { year, month }, end));
    }
    let day_end = digit_run(bytes, next);
    if !(1..=2).contains(&(day_end - next)) {
        return None;
    }
    let day = digits(&bytes[next..day_end])?;
    let (year, end) = year_at(bytes, skip_separators(bytes, day_end)?)?;
    valid(year, month, day).then_some((Found::Date { year, month, day }, end))
}

/// `14 March 2026`.
fn day_month_year(bytes: &[u8], i: usize) -> Option<(Found, usize)> {
    let day_end = digit_run(bytes, i);
    if !(1..=2).contains(&(day_end - i)) {
        return None;
    }
    let day = digits(&bytes[i..day_end])?;
    let (month, after_month) = month_at(bytes, skip_separators(bytes, day_end)?)?;
    let (year, end) = year_at(bytes, skip_separators(bytes, after_month)?)?;
    valid(year, month, day).then_some((Found::Date { year, month, day }, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(name: &str) -> Option<Found> {
        find(name).map(|m| m.found)
    }

    fn ymd(year: u32, month: u32, day: u32) -> Option<Found> {
        Some(Found::Date { year, month, day })
    }

    #[test]
    fn reads_each_form() {
        assert_eq!(date("taxi 2026-03-02"), ymd(2026, 3, 2));
        assert_eq!(date("scan_2026_03_02_a"), ymd(2026, 3, 2));
        assert_eq!(date("IMG_20260302_123456"), ymd(2026, 3, 2));
        assert_eq!(date("lunch 14.03.2026"), ymd(2026, 3, 14));
        assert_eq!(date("lunch 02.03.2026"), ymd(2026, 3, 2));
        assert_eq!(date("fee 14-03-2026"), ymd(2026, 3, 14));
        assert_eq!(date("fee 03-14-2026"), ymd(2026, 3, 14));
        assert_eq!(date("hotel march 2026"), Some(Found::Month { year: 2026, month: 3 }));
        assert_eq!(date("Hotel Mar_2026"), Some(Found::Month { year: 2026, month: 3 }));
        assert_eq!(date("minutes 14 March 2026"), ymd(2026, 3, 14));
        assert_eq!(date("minutes March 14, 2026"), ymd(2026, 3, 14));
    }

    #[test]
    fn reports_ambiguous_and_ignores_non_dates() {
        assert_eq!(date("fee 03-04-2026"), Some(Found::Ambiguous("03-04-2026".into())));
        assert_eq!(date("invoice 123456789"), None);
        assert_eq!(date("2026-13-02"), None);
        assert_eq!(date("2025-02-29"), None);
        assert_eq!(date("marching 2026"), None);
        assert_eq!(date("may"), None);
        assert_eq!(date("report v2"), None);
    }

    #[test]
    fn prefix() {
        assert!(has_date_prefix("2026-03-02 taxi.txt"));
        assert!(has_date_prefix("2026-03-02"));
        assert!(!has_date_prefix("2026-03-022"));
        assert!(!has_date_prefix("2026-14-02 x"));
        assert!(!has_date_prefix("taxi 2026-03-02"));
    }
}
