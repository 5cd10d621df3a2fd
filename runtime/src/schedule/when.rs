//! When a schedule runs: a five-field cron expression read in an IANA time
//! zone, from a phrase a person types ("every weekday at 8:00") or from cron
//! itself, and the run times that follow.
//!
//! What holds: a phrase maps to exactly one cron expression here, in
//! deskhand (never the OS); "first working day of the month" is croner's
//! `1W` (the weekday closest to the 1st without leaving the month: a Saturday
//! 1st runs on Monday the 3rd, a Sunday 1st on Monday the 2nd). Times are
//! wall-clock times in the zone, and daylight saving is deliberate (croner
//! 4.0.3, proved in this module's tests): a time that does not exist on the
//! spring-forward day runs at the first valid minute after it, and a time
//! that happens twice on the fall-back day runs once, at its first instant.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

use super::ScheduleError;

/// The phrases `--every` understands, for error messages and help.
pub const PHRASES: &str = "\"every weekday at 8:00\" (or \"weekday 08:00\", \"every working day 8am\"), \
\"every day 18:30\", \"every Monday 07:00\" (any weekday name; \"every Monday and Thursday 9:15\"), \
\"every weekend 10:00\", \"first working day of the month 09:00\", \"last day of the month 17:00\", \
\"every hour\" (or \"hourly\", \"every 2 hours\", \"every 15 minutes\")";

/// A cron expression (five fields: minute hour day-of-month month
/// day-of-week) and the zone its times are read in, checked.
#[derive(Debug, Clone)]
pub struct When {
    cron: Cron,
    expression: String,
    zone: Tz,
}

impl When {
    /// `expression` in `zone` (an IANA name such as "Europe/Berlin").
    pub fn new(expression: &str, zone: &str) -> Result<When, ScheduleError> {
        let zone = parse_zone(zone)?;
        let expression = expression.split_whitespace().collect::<Vec<_>>().join(" ");
        let fields = expression.split(' ').filter(|f| !f.is_empty()).count();
        if fields != 5 {
            return Err(ScheduleError::BadCron {
                cron: expression,
                problem: format!("it has {fields} fields, and a schedule's cron has five"),
            });
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(&expression)
            .map_err(|e| ScheduleError::BadCron {
                cron: expression.clone(),
                problem: e.to_string(),
            })?;
        let when = When { cron, expression, zone };
        // A pattern that never matches (February 30th) is refused now, not at its first run.
        when.next_after(Utc::now()).map(|_| when)
    }

    /// The cron expression, as stored.
    pub fn cron(&self) -> &str {
        &self.expression
    }

    /// The expression in English words ("At 17:00, on Friday."), by croner.
    pub fn describe(&self) -> String {
        self.cron.describe()
    }

    /// The zone's IANA name.
    pub fn zone(&self) -> &str {
        self.zone.name()
    }

    pub fn tz(&self) -> Tz {
        self.zone
    }

    /// The first run time strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Result<DateTime<Utc>, ScheduleError> {
        self.cron
            .find_next_occurrence(&after.with_timezone(&self.zone), false)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| ScheduleError::BadCron {
                cron: self.expression.clone(),
                problem: format!("no run time follows {after}: {e}"),
            })
    }

    /// The next `n` run times after `after`.
    pub fn next_times(&self, after: DateTime<Utc>, n: usize) -> Result<Vec<DateTime<Utc>>, ScheduleError> {
        let mut times = Vec::with_capacity(n);
        let mut t = after;
        for _ in 0..n {
            t = self.next_after(t)?;
            times.push(t);
        }
        Ok(times)
    }

    /// `t` as a person in the schedule's zone reads it: "Mon 2026-03-30 08:00 CEST".
    pub fn local(&self, t: DateTime<Utc>) -> String {
        in_zone(t, self.zone)
    }
}

/// `t` as a person in `zone` reads it: "Mon 2026-03-30 08:00 CEST".
pub fn in_zone(t: DateTime<Utc>, zone: Tz) -> String {
    t.with_timezone(&zone).format("%a %Y-%m-%d %H:%M %Z").to_string()
}

/// An IANA zone name, or an error naming it with the closest names there are.
pub fn parse_zone(name: &str) -> Result<Tz, ScheduleError> {
    let name = name.trim();
    if let Ok(tz) = Tz::from_str(name) {
        return Ok(tz);
    }
    if let Some(tz) = chrono_tz::TZ_VARIANTS
        .iter()
        .find(|tz| tz.name().eq_ignore_ascii_case(name))
    {
        return Ok(*tz);
    }
    Err(ScheduleError::UnknownZone {
        zone: name.to_owned(),
        suggestions: suggest_zones(name),
    })
}

/// Up to three zone names close to `name`: those whose city is `name`, then
/// the nearest by edit distance.
fn suggest_zones(name: &str) -> Vec<String> {
    let wanted = name.to_ascii_lowercase().replace(' ', "_");
    let city = |z: &str| z.rsplit('/').next().unwrap_or(z).to_ascii_lowercase();
    let mut scored: Vec<(usize, &str)> = chrono_tz::TZ_VARIANTS
        .iter()
        .map(|tz| {
            let z = tz.name();
            let whole = distance(&wanted, &z.to_ascii_lowercase());
            let by_city = distance(wanted.rsplit('/').next().unwrap_or(&wanted), &city(z));
            (whole.min(by_city), z)
        })
        .collect();
    scored.sort();
    let limit = (wanted.len() / 3).max(2);
    scored
        .into_iter()
        .filter(|(d, _)| *d <= limit)
        .take(3)
        .map(|(_, z)| z.to_owned())
        .collect()
}

/// Levenshtein distance, on characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The cron expression a phrase means, or an error listing the phrases that work.
pub fn phrase_to_cron(phrase: &str) -> Result<String, ScheduleError> {
    parse_phrase(phrase).ok_or_else(|| ScheduleError::BadPhrase {
        phrase: phrase.to_owned(),
    })
}

fn parse_phrase(phrase: &str) -> Option<String> {
    let lower = phrase.trim().to_lowercase().replace(',', " ");
    let mut words: Vec<&str> = lower.split_whitespace().collect();
    if words.first().is_some_and(|w| *w == "every" || *w == "each") {
        words.remove(0);
    }
    // Repeating within the day: "hourly", "every hour", "every 2 hours", "every 15 minutes".
    match words.as_slice() {
        ["hourly"] | ["hour"] => return Some("0 * * * *".into()),
        [n, unit] if n.parse::<u32>().is_ok() => {
            let n: u32 = n.parse().ok()?;
            return match *unit {
                "hours" | "hour" if (1..24).contains(&n) && 24 % n == 0 => Some(if n == 1 {
                    "0 * * * *".into()
                } else {
                    format!("0 */{n} * * *")
                }),
                "minutes" | "minute" | "mins" | "min" if (1..60).contains(&n) && 60 % n == 0 => Some(if n == 1 {
                    "* * * * *".into()
                } else {
                    format!("*/{n} * * * *")
                }),
                _ => None,
            };
        }
        _ => {}
    }
    // The time of day is the last word (or two: "8 am"); "at" before it is optional.
    let (hour, minute) = match words.as_slice() {
        [.., t, ampm @ ("am" | "pm")] => {
            let t = format!("{t}{ampm}");
            let hm = parse_time(&t)?;
            words.truncate(words.len() - 2);
            hm
        }
        [.., t] => {
            let hm = parse_time(t)?;
            words.pop();
            hm
        }
        [] => return None,
    };
    if words.last() == Some(&"at") {
        words.pop();
    }
    let days = words.join(" ");
    let (dom, dow) = match days.as_str() {
        "day" | "daily" | "days" | "" => ("*", "*".to_owned()),
        "weekday" | "weekdays" | "working day" | "working days" | "workday" | "workdays" | "business day"
        | "business days" => ("*", "1-5".to_owned()),
        "weekend" | "weekends" | "weekend day" | "weekend days" => ("*", "0,6".to_owned()),
        "first working day of the month"
        | "first weekday of the month"
        | "first business day of the month"
        | "first workday of the month"
        | "first working day of each month"
        | "first working day of every month"
        | "month on the first working day" => ("1W", "*".to_owned()),
        "first day of the month" | "first of the month" | "month" | "monthly" => ("1", "*".to_owned()),
        "last day of the month" | "last of the month" => ("L", "*".to_owned()),
        names => {
            let mut numbers: Vec<u32> = Vec::new();
            for name in names
                .split(|c: char| c.is_whitespace())
                .filter(|w| *w != "and" && !w.is_empty())
            {
                numbers.push(weekday_number(name)?);
            }
            numbers.sort_unstable();
            numbers.dedup();
            let list: Vec<String> = numbers.iter().map(u32::to_string).collect();
            ("*", list.join(","))
        }
    };
    Some(format!("{minute} {hour} {dom} * {dow}"))
}

/// 0 = Sunday, as cron counts; names in full, short or plural.
fn weekday_number(name: &str) -> Option<u32> {
    let name = name.trim_end_matches('s');
    let days = [
        ("sunday", "sun"),
        ("monday", "mon"),
        ("tuesday", "tue"),
        ("wednesday", "wed"),
        ("thursday", "thu"),
        ("friday", "fri"),
        ("saturday", "sat"),
    ];
    days.iter()
        .position(|(full, short)| {
            name == full.trim_end_matches('s') || name == *short || (name.len() >= 3 && full.starts_with(name))
        })
        .and_then(|i| u32::try_from(i).ok())
}

/// "8:00", "08:00", "8", "8am", "5:30pm", "17.30", "noon", "midnight" as (hour, minute).
fn parse_time(t: &str) -> Option<(u32, u32)> {
    match t {
        "noon" => return Some((12, 0)),
        "midnight" => return Some((0, 0)),
        _ => {}
    }
    let (t, offset) = if let Some(t) = t.strip_suffix("am") {
        (t, Some(0))
    } else if let Some(t) = t.strip_suffix("pm") {
        (t, Some(12))
    } else {
        (t, None)
    };
    let (h, m) = match t.split_once([':', '.', 'h']) {
        Some((h, m)) => (h, if m.is_empty() { "0" } else { m }),
        None => (t, "0"),
    };
    if h.is_empty() || h.len() > 2 || m.len() > 2 || !h.chars().chain(m.chars()).all(|c| c.is_ascii_digit()) {
        return None;
    }
    let (mut hour, minute): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    if minute > 59 {
        return None;
    }
    match offset {
        Some(add) => {
            if !(1..=12).contains(&hour) {
                return None;
            }
            hour = hour % 12 + add;
        }
        None if hour > 23 => return None,
        None => {}
    }
    Some((hour, minute))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

    use chrono::TimeZone;

    use super::*;

    #[test]
    fn phrases_map_to_cron() {
        let table = [
            ("every weekday at 8:00", "0 8 * * 1-5"),
            ("weekday 08:00", "0 8 * * 1-5"),
            ("Every working day 8am", "0 8 * * 1-5"),
            ("weekdays at 7:45 am", "45 7 * * 1-5"),
            ("every Monday 07:00", "0 7 * * 1"),
            ("every monday and thursday 9:15", "15 9 * * 1,4"),
            ("every Mon, Wed, Fri at 6pm", "0 18 * * 1,3,5"),
            ("every day 18:30", "30 18 * * *"),
            ("daily at 12:30pm", "30 12 * * *"),
            ("every Friday at 17:00", "0 17 * * 5"),
            ("every Sunday at midnight", "0 0 * * 0"),
            ("every weekend 10:00", "0 10 * * 0,6"),
            ("first working day of the month 09:00", "0 9 1W * *"),
            ("first working day of the month at 9:00", "0 9 1W * *"),
            ("first day of the month 06:00", "0 6 1 * *"),
            ("last day of the month 17:00", "0 17 L * *"),
            ("at 12am", "0 0 * * *"),
            ("every hour", "0 * * * *"),
            ("hourly", "0 * * * *"),
            ("every 2 hours", "0 */2 * * *"),
            ("every 15 minutes", "*/15 * * * *"),
        ];
        for (phrase, cron) in table {
            assert_eq!(phrase_to_cron(phrase).unwrap(), cron, "{phrase}");
            When::new(cron, "Europe/Berlin").unwrap();
        }
        for bad in [
            "",
            "every weekday",
            "weekday 25:00",
            "every Funday 8:00",
            "every 7 minutes",
            "13pm",
            "every day 8:60",
            "sometimes 8:00",
        ] {
            let e = phrase_to_cron(bad).unwrap_err().to_string();
            assert!(e.contains("every weekday at 8:00"), "{bad}: {e}");
        }
    }

    fn berlin(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        chrono_tz::Europe::Berlin
            .with_ymd_and_hms(y, mo, d, h, mi, 0)
            .earliest()
            .unwrap()
            .with_timezone(&Utc)
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_time_the_spring_forward_day_skips_runs_at_the_first_valid_minute_after_it() {
        // Europe/Berlin, 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist.
        let when = When::new("30 2 * * *", "Europe/Berlin").unwrap();
        let times = when.next_times(berlin(2026, 3, 27, 12, 0), 4).unwrap();
        assert_eq!(
            times,
            [
                utc("2026-03-28T01:30:00Z"), // 02:30 CET
                utc("2026-03-29T01:00:00Z"), // 03:00 CEST, the first valid minute after 02:30
                utc("2026-03-30T00:30:00Z"), // 02:30 CEST
                utc("2026-03-31T00:30:00Z"),
            ]
        );
        assert_eq!(when.local(times[1]), "Sun 2026-03-29 03:00 CEST");
    }

    #[test]
    fn a_time_the_fall_back_day_repeats_runs_once() {
        // Europe/Berlin, 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice.
        let when = When::new("30 2 * * *", "Europe/Berlin").unwrap();
        let times = when.next_times(berlin(2026, 10, 24, 12, 0), 3).unwrap();
        assert_eq!(
            times,
            [
                utc("2026-10-25T00:30:00Z"), // 02:30 CEST, the first of the two
                utc("2026-10-26T01:30:00Z"), // the next day, 02:30 CET: not 01:30Z on the 25th
                utc("2026-10-27T01:30:00Z"),
            ]
        );
        // An hourly schedule runs every real hour through the change: the
        // repeated 02:00 is another hour, and runs.
        let hourly = When::new("0 * * * *", "Europe/Berlin").unwrap();
        let times = hourly.next_times(utc("2026-10-24T23:30:00Z"), 4).unwrap();
        assert_eq!(
            times,
            [
                utc("2026-10-25T00:00:00Z"), // 02:00 CEST
                utc("2026-10-25T01:00:00Z"), // 02:00 CET
                utc("2026-10-25T02:00:00Z"), // 03:00 CET
                utc("2026-10-25T03:00:00Z"),
            ]
        );
    }

    #[test]
    fn weekdays_at_eight_in_new_york_stay_at_eight_across_both_changes() {
        let when = When::new("0 8 * * 1-5", "America/New_York").unwrap();
        // 2026-03-08 (a Sunday) springs forward: Friday 8:00 EST, then Monday 8:00 EDT.
        let times = when.next_times(utc("2026-03-05T20:00:00Z"), 3).unwrap();
        assert_eq!(
            times,
            [
                utc("2026-03-06T13:00:00Z"), // Fri 08:00 EST (UTC-5)
                utc("2026-03-09T12:00:00Z"), // Mon 08:00 EDT (UTC-4)
                utc("2026-03-10T12:00:00Z"),
            ]
        );
        // 2026-11-01 (a Sunday) falls back: Friday 8:00 EDT, then Monday 8:00 EST.
        let times = when.next_times(utc("2026-10-29T20:00:00Z"), 3).unwrap();
        assert_eq!(
            times,
            [
                utc("2026-10-30T12:00:00Z"),
                utc("2026-11-02T13:00:00Z"),
                utc("2026-11-03T13:00:00Z"),
            ]
        );
        for t in when.next_times(utc("2026-03-01T00:00:00Z"), 260).unwrap() {
            let local = when.local(t);
            assert!(local.contains(" 08:00 "), "{local}");
            assert!(!local.starts_with("Sat") && !local.starts_with("Sun"), "{local}");
        }
    }

    #[test]
    fn the_first_working_day_of_the_month_never_leaves_the_month() {
        let when = When::new(
            &phrase_to_cron("first working day of the month 09:00").unwrap(),
            "Europe/Berlin",
        )
        .unwrap();
        let days: Vec<String> = when
            .next_times(utc("2026-01-01T12:00:00Z"), 12)
            .unwrap()
            .into_iter()
            .map(|t| when.local(t))
            .collect();
        assert_eq!(
            days,
            [
                "Mon 2026-02-02 09:00 CET",  // Feb 1st is a Sunday
                "Mon 2026-03-02 09:00 CET",  // Mar 1st is a Sunday
                "Wed 2026-04-01 09:00 CEST", // a weekday 1st is itself
                "Fri 2026-05-01 09:00 CEST",
                "Mon 2026-06-01 09:00 CEST",
                "Wed 2026-07-01 09:00 CEST",
                "Mon 2026-08-03 09:00 CEST", // Aug 1st is a Saturday: Monday the 3rd, not Friday July 31st
                "Tue 2026-09-01 09:00 CEST",
                "Thu 2026-10-01 09:00 CEST",
                "Mon 2026-11-02 09:00 CET", // Nov 1st is a Sunday
                "Tue 2026-12-01 09:00 CET",
                "Fri 2027-01-01 09:00 CET",
            ]
        );
    }

    #[test]
    fn bad_cron_and_unknown_zones_are_named() {
        let e = When::new("0 8 * *", "UTC").unwrap_err().to_string();
        assert!(e.contains("0 8 * *") && e.contains("five"), "{e}");
        let e = When::new("0 25 * * *", "UTC").unwrap_err().to_string();
        assert!(e.contains("0 25 * * *"), "{e}");
        let e = When::new("0 8 30 2 *", "UTC").unwrap_err().to_string();
        assert!(e.contains("0 8 30 2 *"), "{e}");
        let e = When::new("0 8 * * *", "Europe/Berln").unwrap_err().to_string();
        assert!(e.contains("Europe/Berln") && e.contains("Europe/Berlin"), "{e}");
        let e = When::new("0 8 * * *", "Berlin").unwrap_err().to_string();
        assert!(e.contains("Europe/Berlin"), "{e}");
        assert_eq!(When::new("0 8 * * *", "europe/berlin").unwrap().zone(), "Europe/Berlin");
        assert_eq!(
            When::new("0 17 * * 5", "UTC").unwrap().describe(),
            "At 17:00, on Friday."
        );
    }
}
