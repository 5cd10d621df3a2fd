//! A period named in a task's words ("in March", "last week", "since
//! 2026-02-01", "from March to May", "2026") as the first and last day,
//! `YYYY-MM-DD..YYYY-MM-DD`, for a skill's `period` parameter. A month
//! without a year is the latest one not after today; relative periods are
//! counted from `today`. Weeks start on Monday.

use super::matching::dates::MONTHS;

/// A day as days since 1970-01-01.
type Days = i64;

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> Days {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil(z: Days) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, m, d)
}

/// The first and last day of `YYYY-MM-DD` (itself) or `YYYY-MM` (its month).
pub fn span_of(date: &str) -> Option<(String, String)> {
    if date.len() == 10 {
        return parse_day(date).map(|_| (date.to_owned(), date.to_owned()));
    }
    let (y, m) = date.split_once('-')?;
    let (y, m) = (y.parse().ok()?, m.parse().ok().filter(|m| (1..=12).contains(m))?);
    let (from, to) = month_span(y, m);
    Some((iso(from), iso(to)))
}

fn iso(z: Days) -> String {
    let (y, m, d) = civil(z);
    format!("{y:04}-{m:02}-{d:02}")
}

fn month_span(y: i64, m: u32) -> (Days, Days) {
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    (days_from_civil(y, m, 1), days_from_civil(ny, nm, 1) - 1)
}

/// Today, in UTC, from the system clock.
pub fn today() -> Days {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    i64::try_from(secs / 86_400).unwrap_or(0)
}

/// `2026-04-15` as days, for tests and evals.
pub fn parse_day(s: &str) -> Option<Days> {
    let mut parts = s.split('-').map(str::parse::<i64>);
    let (y, m, d) = (parts.next()?.ok()?, parts.next()?.ok()?, parts.next()?.ok()?);
    let (m, d) = (u32::try_from(m).ok()?, u32::try_from(d).ok()?);
    (civil(days_from_civil(y, m, d)) == (y, m, d)).then(|| days_from_civil(y, m, d))
}

fn month(word: &str) -> Option<u32> {
    MONTHS
        .iter()
        .position(|m| *m == word || (word.len() >= 3 && word != "may" && m.starts_with(word) && word.len() <= 4))
        .or_else(|| (word == "may").then_some(4))
        .map(|i| i as u32 + 1)
}

fn year(word: &str) -> Option<i64> {
    (word.len() == 4)
        .then(|| word.parse::<i64>().ok())
        .flatten()
        .filter(|y| (1900..=2099).contains(y))
}

/// Words that put a following month name or year in time ("in March").
const LEADS: &[&str] = &[
    "in", "for", "during", "of", "from", "since", "between", "until", "to", "and", "through",
];

/// The span named by the words at `i`, and how many words it took.
fn point(w: &[&str], i: usize, today: Days, led: bool) -> Option<((Days, Days), usize)> {
    let at = |k: usize| w.get(i + k).copied().unwrap_or("");
    if let Some(m) = month(at(0)) {
        // "may" and short forms are words of their own too: only after a lead or before a year.
        let y = year(at(1));
        if !led && y.is_none() {
            return None;
        }
        let (ty, tm, _) = civil(today);
        let y = y.unwrap_or(if m <= tm { ty } else { ty - 1 });
        return Some((month_span(y, m), 1 + usize::from(year(at(1)).is_some())));
    }
    if let Some(y) = year(at(0)).filter(|_| led) {
        return Some(((days_from_civil(y, 1, 1), days_from_civil(y, 12, 31)), 1));
    }
    match at(0) {
        "today" => return Some(((today, today), 1)),
        "yesterday" => return Some(((today - 1, today - 1), 1)),
        _ => {}
    }
    let (ty, tm, _) = civil(today);
    let monday = today - (today + 3).rem_euclid(7);
    let unit = at(1).trim_end_matches('s');
    match (at(0), unit) {
        ("this", "week") => Some(((monday, today), 2)),
        ("last" | "previous" | "past", "week") => Some(((monday - 7, monday - 1), 2)),
        ("this", "month") => Some(((month_span(ty, tm).0, today), 2)),
        ("last" | "previous" | "past", "month") => {
            let (y, m) = if tm == 1 { (ty - 1, 12) } else { (ty, tm - 1) };
            Some((month_span(y, m), 2))
        }
        ("this", "year") => Some(((days_from_civil(ty, 1, 1), today), 2)),
        ("last" | "previous" | "past", "year") => {
            Some(((days_from_civil(ty - 1, 1, 1), days_from_civil(ty - 1, 12, 31)), 2))
        }
        ("last" | "past", _) => {
            let n: i64 = at(1).parse().ok().filter(|n| (1..=3660).contains(n))?;
            let days = match at(2).trim_end_matches('s') {
                "day" => n,
                "week" => 7 * n,
                "month" => 30 * n,
                _ => return None,
            };
            Some(((today - days + 1, today), 3))
        }
        _ => None,
    }
}

/// The first period the words name, as `YYYY-MM-DD..YYYY-MM-DD`, and the
/// words that named it.
pub fn find(words: &[&str], today: Days) -> Option<(String, String)> {
    for i in 0..words.len() {
        let lead = i.checked_sub(1).map(|p| words[p]).filter(|p| LEADS.contains(p));
        let Some(((from, to), n)) = point(words, i, today, lead.is_some()) else {
            continue;
        };
        let mut end = i + n;
        let (from, to) = match lead {
            Some("since") => (from, today),
            Some("from" | "between") if matches!(words.get(end), Some(&("to" | "until" | "and" | "through"))) => {
                match point(words, end + 1, today, true) {
                    Some(((_, last), m)) => {
                        end += 1 + m;
                        // "from March to May 2025": the start is in the end's year, or the one before.
                        let (_, fm, fd) = civil(from);
                        let mut start = from;
                        for y in [civil(last).0, civil(last).0 - 1] {
                            if start > last {
                                start = days_from_civil(y, fm, fd);
                            }
                        }
                        (start.min(last), last)
                    }
                    _ => (from, to),
                }
            }
            _ => (from, to),
        };
        let start = i - usize::from(lead.is_some());
        return Some((format!("{}..{}", iso(from), iso(to)), words[start..end].join(" ")));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find_in(text: &str) -> Option<String> {
        let lower = text.to_lowercase();
        let words: Vec<&str> = lower
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect();
        find(&words, parse_day("2026-04-15").unwrap()).map(|p| p.0)
    }

    #[test]
    fn days_round_trip() {
        for day in ["1970-01-01", "2024-02-29", "2026-04-15", "1999-12-31"] {
            assert_eq!(iso(parse_day(day).unwrap()), day);
        }
        assert!(parse_day("2026-02-30").is_none());
    }

    #[test]
    fn periods_in_words() {
        let cases = [
            ("how much did I spend in March?", Some("2026-03-01..2026-03-31")),
            ("expenses from March", Some("2026-03-01..2026-03-31")),
            ("expenses in May", Some("2025-05-01..2025-05-31")),
            ("receipts from march 2025", Some("2025-03-01..2025-03-31")),
            ("from March to May 2025", Some("2025-03-01..2025-05-31")),
            ("between jan and feb", Some("2026-01-01..2026-02-28")),
            ("since February", Some("2026-02-01..2026-04-15")),
            ("notes of last week", Some("2026-04-06..2026-04-12")),
            ("this week", Some("2026-04-13..2026-04-15")),
            ("last month", Some("2026-03-01..2026-03-31")),
            ("the last 30 days", Some("2026-03-17..2026-04-15")),
            ("spending in 2025", Some("2025-01-01..2025-12-31")),
            ("today", Some("2026-04-15..2026-04-15")),
            ("the 2026 offsite folder", None),
            ("you may merge them", None),
            ("march the files", None),
            ("make an expense report", None),
        ];
        for (text, expected) in cases {
            assert_eq!(find_in(text).as_deref(), expected, "{text}");
        }
    }
}
